import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { toolVersion } from '../../engine/manifest.ts';
import { badInput } from '../../errors.ts';
import { installedUnit, installService, under, uninstallService, type InstalledUnit } from '../../service/install.ts';
import { DEFAULTS, unitName, unitText, type ServiceKind, type UnitSpec } from '../../service/units.ts';
import type { Command, CommandContext } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { str, strs } from '../values.ts';
import { agentCommand } from './agent.ts';
import { serverCommand } from './server.ts';

// `wpbackup install-service server|agent` and `uninstall-service`: a hardened systemd unit for
// this install (src/service/units.ts), its data dir, a 0600 env file for secrets and, for
// the server, its system user. Running it again upgrades the unit and keeps everything else.

/** This install's root: bin/wpbackup is what the unit runs, whatever the current dir or PATH. */
const ROOT = resolve(import.meta.dirname, '..', '..', '..');

/** Options the unit sets itself, or that must not sit in a world-readable unit. */
const NOT_PASSED_ON: Record<string, string> = {
  'data-dir': 'use install-service --data-dir',
  'join-code': "a secret: give it to install-service through WPBACKUP_JOIN_CODE or '--join-code -'",
  once: 'a service keeps running',
  help: 'not for a service',
};

function kindOf(pos: string[], cmd: string): ServiceKind {
  const kind = pos[0];
  if (kind !== 'server' && kind !== 'agent') throw badInput(`${cmd} needs 'server' or 'agent', not ${kind === undefined ? 'nothing' : `'${kind}'`}`, `Example: wpbackup ${cmd} server`);
  return kind;
}

/** The words after `--`, checked against the service command's own options now rather than at its first start. */
function serviceArgs(kind: ServiceKind, args: string[]): string[] {
  const target = kind === 'server' ? serverCommand : agentCommand;
  let tokens;
  try {
    ({ tokens } = parseArgs({ args, options: target.options, allowPositionals: false, strict: true, tokens: true }));
  } catch (err) {
    throw badInput(`Arguments for 'wpbackup ${kind}': ${(err as Error).message.replace(/\. To specify.*$/s, '')}`, `See 'wpbackup ${kind} --help'`);
  }
  for (const t of tokens) {
    if (t.kind === 'option' && NOT_PASSED_ON[t.name]) throw badInput(`--${t.name} cannot go into the unit: ${NOT_PASSED_ON[t.name]}`);
  }
  // The server's user cannot read the sites on this machine: install the agent here for them.
  return kind === 'server' && !args.includes('--no-local-agent') ? ['--no-local-agent', ...args] : args;
}

async function readCode(stdin: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stdin) text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
  return text.trim();
}

/** Joins the control server before the unit exists, so the code never lands in a file. */
async function joinIfAsked(v: Record<string, unknown>, dataDir: string, ctx: CommandContext & { stdin?: NodeJS.ReadableStream }): Promise<string> {
  const flag = str(v['join-code'] as string | undefined);
  if (flag !== undefined && flag !== '-') throw badInput('--join-code takes only "-" (read from stdin)', 'A code on the command line is visible to every user (ps): use WPBACKUP_JOIN_CODE or pipe it in');
  const code = flag === '-' ? await readCode(ctx.stdin ?? process.stdin) : ctx.env.WPBACKUP_JOIN_CODE?.trim() || undefined;
  const { ensureIdentity, identityPath, loadIdentity } = await import('../../agent/identity.ts');
  if (code === undefined) {
    const stored = loadIdentity(dataDir);
    if (stored) return `node ${stored.node_id} of ${stored.server} (identity kept in ${identityPath(dataDir)})`;
    if (str(v.server as string | undefined)) throw badInput('--server needs a join code to join with', "Pass it in WPBACKUP_JOIN_CODE or pipe it to '--join-code -'");
    return `not joined yet: run 'WPBACKUP_JOIN_CODE=<code> wpbackup install-service agent --server URL' again before starting it`;
  }
  const { identity } = await ensureIdentity({ dataDir, server: str(v.server as string | undefined), joinCode: code, hostname: str(v.hostname as string | undefined) });
  return `joined ${identity.server} as node ${identity.node_id}; identity saved in ${identityPath(dataDir)}`;
}

function nextSteps(kind: ServiceKind, unit: 'written' | 'updated', spec: UnitSpec): string {
  const name = unitName(kind).replace(/\.service$/, '');
  const start = unit === 'written' ? `systemctl enable --now ${name}` : `systemctl restart ${name}`;
  const lines = ['Next:', '  systemctl daemon-reload', `  ${start}`, `  journalctl -u ${name} -f`];
  if (kind === 'server') {
    lines.push(`The first admin (as the service's user, so the data dir stays its own):`, `  runuser -u ${spec.user} -- ${spec.exec} users create --email you@example.com --role super_admin --data-dir ${spec.dataDir}`);
  }
  return lines.join('\n') + '\n';
}

/** The unit to write: flags first, then what the installed unit says (an upgrade keeps its data dir), then defaults. */
function specFor(kind: ServiceKind, v: Record<string, unknown>, serviceArgv: string[], installed: InstalledUnit | undefined): UnitSpec {
  const dataDir = absolute(str(v['data-dir'] as string | undefined) ?? installed?.dataDir ?? DEFAULTS[kind].dataDir, '--data-dir');
  const user = str(v.user as string | undefined) ?? (kind === 'server' ? installed?.user : undefined) ?? DEFAULTS.server.user;
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) throw badInput(`--user ${user} is not a valid system user name`, 'Use lower-case letters, digits, - and _');
  const writable = v.writable !== undefined ? strs(v.writable as string[]) : (installed?.writable ?? []);
  return {
    kind, exec: join(ROOT, 'bin', 'wpbackup'), dataDir, envFile: installed?.envFile ?? join(DEFAULTS.envDir, `${kind}.env`), user: kind === 'server' ? user : undefined,
    writable: writable.map((p) => absolute(p, '--writable')), compileCache: join(ROOT, 'node_modules', '.cache', 'wpbackup-compile'),
    args: serviceArgs(kind, serviceArgv.length > 0 ? serviceArgv : (installed?.args ?? [])), version: toolVersion(),
  };
}

const SHARED_HELP = `  --prefix DIR         write every file under DIR (packaging, tests); the unit names the real paths
  --unit-dir DIR       where the unit goes (default ${DEFAULTS.unitDir})`;

export const installServiceCommand: Command = {
  path: ['install-service'],
  summary: 'Install the server or the agent as a hardened systemd service',
  usage: 'install-service server|agent [--data-dir DIR] [--user NAME] [--writable DIR]... [--server URL] [--dry-run] [-- SERVICE ARGS...]',
  help: `Writes /etc/systemd/system/wpbackup-server.service or wpbackup-agent.service for this install
(${join(ROOT, 'bin', 'wpbackup')}), its data dir and ${DEFAULTS.envDir}/<server|agent>.env (mode 0600: put
DATABASE_URL, WPBACKUP_SECRET_KEY and other secrets there, never in the unit). The server runs
as a system user (created with useradd when missing), the agent as root with only the
capabilities it needs (it reads every site and becomes each site's owner to do so). Running it
again upgrades the unit: settings not given (data dir, user, --writable, service arguments) are
kept from the installed unit, and so are the data dir's contents and the env file.

Options:
  --data-dir DIR       default ${DEFAULTS.server.dataDir} (server), ${DEFAULTS.agent.dataDir} (agent)
  --user NAME          the server's system user (default ${DEFAULTS.server.user})
  --writable DIR       another path the service may write (repeatable), e.g. a local storage
                       provider's directory: everything else outside the data dir is read-only
  --server URL         agent: join this control server now, with the one-time code from
                       WPBACKUP_JOIN_CODE or '--join-code -' (stdin); the key stays in the data dir
  --hostname NAME      agent: the name the server shows for this node when joining
  --dry-run            print the unit, change nothing
${SHARED_HELP}
Everything after -- goes to 'wpbackup server|agent', e.g.
  wpbackup install-service server -- --host 0.0.0.0 --public-url https://backup.example.com
The server unit gets --no-local-agent: its user cannot read this machine's sites; install the
agent on this machine too for them.`,
  options: {
    'data-dir': { type: 'string' },
    user: { type: 'string' },
    writable: { type: 'string', multiple: true },
    server: { type: 'string' },
    'join-code': { type: 'string' },
    hostname: { type: 'string' },
    'dry-run': { type: 'boolean' },
    prefix: { type: 'string' },
    'unit-dir': { type: 'string' },
  },
  allowPositionals: true,
  async run(v, pos, ctx) {
    const kind = kindOf(pos, 'install-service');
    const prefix = str(v.prefix) ?? '';
    if (kind === 'server' && (v.server !== undefined || v['join-code'] !== undefined)) throw badInput('--server and --join-code are for install-service agent');
    const unitDir = str(v['unit-dir']) ?? DEFAULTS.unitDir;
    const spec = specFor(kind, v, pos.slice(1), installedUnit({ kind, prefix, unitDir }));
    if (v['dry-run']) {
      ctx.stdout.write(unitText(spec));
      return EXIT.ok;
    }
    if (kind === 'server') checkReachable(ROOT);
    if (!prefix && process.getuid?.() !== 0) throw badInput('install-service writes to /etc and creates a system user', 'Run it as root (sudo)');
    const joined = kind === 'agent' ? await joinIfAsked(v, under(prefix, spec.dataDir), ctx) : undefined;
    const report = installService({ spec, prefix, unitDir });
    ctx.stdout.write(`${report.unit === 'written' ? 'Wrote' : 'Updated'} ${report.unitPath}\n${[...report.notes, ...(joined ? [joined] : [])].map((n) => `  ${n}\n`).join('')}`);
    ctx.stdout.write(nextSteps(kind, report.unit, spec));
    return EXIT.ok;
  },
};

/** The server runs as its own user with /home and /root hidden: it must be able to reach this install. */
function checkReachable(root: string): void {
  const hint = 'Install the release artifact (it goes to /opt/wpbackup, see README) and run its install-service';
  if (/^\/(root|home|run\/user)(\/|$)/.test(root)) throw badInput(`This install lives in ${root}, which the server's sandbox hides (ProtectHome)`, hint);
  for (let dir = root; dir !== '/'; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) throw badInput(`The server's user cannot reach ${root}: ${dir} is not searchable by others`, hint);
  }
}

function absolute(p: string, flag: string): string {
  if (!p.startsWith('/')) throw badInput(`${flag} must be an absolute path, not ${p}`);
  return resolve(p);
}

export const uninstallServiceCommand: Command = {
  path: ['uninstall-service'],
  summary: 'Remove the server or agent systemd unit (data kept unless --purge)',
  usage: 'uninstall-service server|agent [--purge]',
  help: `Stops and disables the service when systemd runs here, removes its unit and says what it left:
the data dir (backups' index, keys, the agent's identity), the env file and the server's user.

Options:
  --purge              also remove the data dir and the env file the unit names
  --data-dir DIR       the data dir to purge when the unit is gone already
${SHARED_HELP}`,
  options: { purge: { type: 'boolean' }, 'data-dir': { type: 'string' }, prefix: { type: 'string' }, 'unit-dir': { type: 'string' } },
  allowPositionals: true,
  async run(v, pos, ctx) {
    const kind = kindOf(pos, 'uninstall-service');
    if (pos.length > 1) throw badInput(`Unexpected argument '${pos[1]}'`);
    const prefix = str(v.prefix) ?? '';
    const unitDir = str(v['unit-dir']);
    if (!prefix && process.getuid?.() !== 0) throw badInput('uninstall-service changes /etc', 'Run it as root (sudo)');
    const name = unitName(kind);
    // Only for the real unit on a machine systemd runs: stop it before its file goes.
    const live = !prefix && unitDir === undefined && existsSync('/run/systemd/system');
    if (live) await systemctl(['disable', '--now', name]);
    const dataDirFlag = str(v['data-dir']);
    const report = uninstallService({ kind, prefix, unitDir: unitDir ?? DEFAULTS.unitDir, purge: v.purge === true, dataDir: dataDirFlag && absolute(dataDirFlag, '--data-dir') });
    if (live) await systemctl(['daemon-reload']);
    const list = (title: string, items: string[]): string => (items.length ? `${title}\n${items.map((i) => `  ${i}\n`).join('')}` : '');
    ctx.stdout.write(list('Removed:', report.removed) + list('Left:', report.left));
    if (!live && report.removed.length) ctx.stdout.write(`If it was running: systemctl disable --now ${name}; systemctl daemon-reload\n`);
    return EXIT.ok;
  },
};

async function systemctl(args: string[]): Promise<void> {
  const { spawnSync } = await import('node:child_process');
  spawnSync('systemctl', args, { stdio: ['ignore', 'ignore', 'inherit'] });
}
