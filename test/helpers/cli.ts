import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { services } from './services.ts';

// Runs the real wpbackup CLI as a child process, the way users and the agent do.

export const REPO = join(import.meta.dirname, '..', '..');
export const MAIN = join(REPO, 'src', 'cli', 'main.ts');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** JSON lines from --json runs. */
  events: Record<string, unknown>[];
  ms: number;
}

export function s3Env(): NodeJS.ProcessEnv {
  const m = services().minio;
  return { AWS_ENDPOINT_URL: m.endpoint, AWS_ACCESS_KEY_ID: m.accessKey, AWS_SECRET_ACCESS_KEY: m.secretKey, AWS_REGION: m.region };
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  /** Words before node, e.g. withoutDacOverride's setpriv. */
  prefix?: string[];
  /** Called for each JSON line as it arrives; may signal the child. */
  onEvent?: (e: Record<string, unknown>, child: ChildProcess) => void;
  /** How wpbackup is started (see LAUNCHERS); default the pinned node on src/cli/main.ts. */
  command?: string[];
  /** Start it as the leader of its own process group, so a test can signal the group as a terminal does. */
  detached?: boolean;
}

export function runCli(args: string[], o: CliOptions = {}): Promise<CliRun> {
  const argv = [...(o.prefix ?? []), ...(o.command ?? [process.execPath, MAIN]), ...args];
  const started = performance.now();
  const child = spawn(argv[0] as string, argv.slice(1), { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: o.detached });
  const run: CliRun = { code: null, signal: null, stdout: '', stderr: '', events: [], ms: 0 };
  child.stderr.setEncoding('utf8').on('data', (s: string) => (run.stderr += s));
  createInterface({ input: child.stdout }).on('line', (line) => {
    run.stdout += line + '\n';
    if (!line.startsWith('{')) return;
    const e = JSON.parse(line) as Record<string, unknown>;
    run.events.push(e);
    o.onEvent?.(e, child);
  });
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      run.code = code;
      run.signal = signal;
      run.ms = performance.now() - started;
      resolve(run);
    });
  });
}

export function resultOf(run: CliRun): Record<string, unknown> {
  const r = run.events.find((e) => e.type === 'result');
  if (!r) throw new Error(`no result line; exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return r;
}

/** The system's own node (Debian's, older than 24): the first `node` on PATH that is not the pinned one. */
export function systemNode(): string {
  const pinned = realpathSync(process.execPath);
  for (const dir of (process.env.PATH ?? '').split(':').concat('/usr/bin', '/usr/local/bin')) {
    const p = join(dir, 'node');
    if (existsSync(p) && realpathSync(p) !== pinned) return p;
  }
  throw new Error('No system node on PATH besides the pinned Node 24: scripts/bootstrap.sh installs Debian\'s nodejs');
}

/**
 * The ways people start wpbackup: README's (bin/wpbackup, which bootstrap links as
 * /usr/local/bin/wpbackup; it execs the pinned node), the Node launcher under the system's
 * older node (as npx on Debian does; it runs the pinned node as a child), and the pinned node
 * on the sources (what the agent and most tests use).
 */
export const LAUNCHERS = {
  readme: () => [join(REPO, 'bin', 'wpbackup')],
  systemNode: () => [systemNode(), join(REPO, 'bin', 'wpbackup.js')],
  main: () => [process.execPath, MAIN],
} as const;

export type Launcher = keyof typeof LAUNCHERS;
