#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { toolVersion } from '../engine/manifest.ts';
import { badInput, describe, kindOf, WpbError } from '../errors.ts';
import type { Command, CommandContext } from './command.ts';
import { agentCommand } from './commands/agent.ts';
import { ALERT_COMMANDS } from './commands/alerts.ts';
import { backupStart, backupWatch } from './commands/backup-remote.ts';
import { backupCommand } from './commands/backup.ts';
import { nodesJoinCode, nodesRevokeKey, nodesRotateKey, nodesSetLimit } from './commands/nodes.ts';
import { schedulesClear, schedulesSet, schedulesShow } from './commands/schedules.ts';
import { restoreCommand } from './commands/restore.ts';
import { backupsPin, backupsUnpin, pruneCommand, retentionClear, retentionSet, retentionShow, storageReconcile } from './commands/retention.ts';
import { serverCommand } from './commands/server.ts';
import { sitesScan } from './commands/sites.ts';
import { loginCommand } from './commands/login.ts';
import { installServiceCommand, uninstallServiceCommand } from './commands/install-service.ts';
import { usersCreateCommand, usersListCommand, usersResetMfaCommand } from './commands/users.ts';
import { EXIT, exitCodeFor } from './exit-codes.ts';

// The wpbackup command: finds the subcommand, parses its options, runs it, and turns any
// error into one readable line and an exit code. Stack traces only with WPBACKUP_DEBUG=1.

export const COMMANDS: Command[] = [
  backupCommand, backupStart, backupWatch, restoreCommand, sitesScan, serverCommand, usersCreateCommand, usersListCommand, usersResetMfaCommand, loginCommand, nodesJoinCode, nodesRotateKey, nodesRevokeKey, agentCommand,
  retentionShow, retentionSet, retentionClear, backupsPin, backupsUnpin, pruneCommand, storageReconcile,
  installServiceCommand, uninstallServiceCommand,
  ...ALERT_COMMANDS,
  schedulesShow, schedulesSet, schedulesClear, nodesSetLimit,
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.path.join(' ').length));
  const lines = COMMANDS.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`);
  return `wpbackup ${toolVersion()}: staged, streaming WordPress backups\n\nUsage: wpbackup <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'wpbackup <command> --help' for a command's options.\n`;
}

function commandHelp(c: Command): string {
  return `Usage: wpbackup ${c.usage}\n\n${c.summary}.\n\n${c.help}\n`;
}

/** The longest command path that prefixes argv. */
function findCommand(argv: string[]): { cmd: Command; rest: string[] } | undefined {
  const sorted = [...COMMANDS].sort((a, b) => b.path.length - a.path.length);
  for (const cmd of sorted) {
    if (cmd.path.every((w, i) => argv[i] === w)) return { cmd, rest: argv.slice(cmd.path.length) };
  }
  return undefined;
}

function parse(cmd: Command, rest: string[]): { values: Record<string, string | boolean | string[] | boolean[] | undefined>; positionals: string[] } {
  try {
    return parseArgs({ args: rest, options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: cmd.allowPositionals, strict: true });
  } catch (err) {
    throw badInput((err as Error).message.replace(/\. To specify.*$/s, ''), `See 'wpbackup ${cmd.path.join(' ')} --help'`);
  }
}

/**
 * A terminal's Ctrl-C, `timeout` and systemd signal a whole process group: with the Node
 * launcher in front (bin/wpbackup.js on an older node), which passes signals on, one request
 * arrives twice. A repeat within this long is that copy, not a second request.
 */
const SAME_REQUEST_MS = 1000;

function signalController(ctx: { stderr: NodeJS.WritableStream }): AbortController {
  const ac = new AbortController();
  let firstAt = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (ac.signal.aborted) {
      if (performance.now() - firstAt >= SAME_REQUEST_MS) process.exit(EXIT.stopped);
      return;
    }
    firstAt = performance.now();
    ctx.stderr.write(`\nwpbackup: ${sig} received, stopping and cleaning up (again to quit at once)\n`);
    ac.abort();
  };
  // SIGHUP too: a closed terminal or ssh session stops a backup cleanly instead of killing it mid-write.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  return ac;
}

export async function main(argv: string[], ctx: Omit<CommandContext, 'signal'>): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    ctx.stdout.write(usage());
    return argv.length === 0 ? EXIT.badInput : EXIT.ok;
  }
  if (argv[0] === '--version' || argv[0] === 'version') {
    ctx.stdout.write(`wpbackup ${toolVersion()}\n`);
    return EXIT.ok;
  }
  const found = findCommand(argv);
  const json = argv.includes('--json');
  try {
    if (!found) throw badInput(`Unknown command '${argv.join(' ')}'`, "Run 'wpbackup --help' for the list");
    const { values, positionals } = parse(found.cmd, found.rest);
    if (values.help) {
      ctx.stdout.write(commandHelp(found.cmd));
      return EXIT.ok;
    }
    const ac = signalController(ctx);
    return await found.cmd.run(values, positionals, { ...ctx, signal: ac.signal });
  } catch (err) {
    const kind = kindOf(err);
    const stage = err instanceof WpbError ? err.stage : undefined;
    if (json) ctx.stdout.write(JSON.stringify({ type: 'error', kind, stage: stage ?? null, message: describe(err) }) + '\n');
    ctx.stderr.write(`wpbackup: ${kind === 'stopped' ? 'stopped; temp files removed' : describe(err)}\n`);
    if (ctx.env.WPBACKUP_DEBUG && err instanceof Error) ctx.stderr.write(`${err.stack}\n${err.cause ? `cause: ${String((err.cause as Error).stack ?? err.cause)}\n` : ''}`);
    return exitCodeFor(kind);
  }
}

/**
 * Under the Node launcher (bin/wpbackup.js on an older node), fd 3 is a pipe the launcher
 * holds open. If the launcher is killed outright (kill -9), the pipe closes: that is a
 * hang-up, so the run stops and cleans up instead of going on with nobody to report to.
 */
async function watchLauncher(env: NodeJS.ProcessEnv): Promise<void> {
  if (env.WPBACKUP_LAUNCHER_PIPE !== '3') return;
  delete env.WPBACKUP_LAUNCHER_PIPE; // for this process only, not the programs it runs
  const { Socket } = await import('node:net');
  const pipe = new Socket({ fd: 3, readable: true, writable: false });
  pipe.on('error', () => {});
  pipe.on('close', () => process.kill(process.pid, 'SIGHUP'));
  pipe.resume();
  pipe.unref();
}

/** The process entry: stdout/stderr are synchronous for files, pipes and TTYs on Linux, so exiting at once loses no output and no idle socket keeps the process alive. */
export async function cli(): Promise<never> {
  await watchLauncher(process.env);
  const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
  process.exit(code);
}

if (import.meta.main) await cli();
