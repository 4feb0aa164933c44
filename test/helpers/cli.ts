import { spawn, type ChildProcess } from 'node:child_process';
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
}

export function runCli(args: string[], o: CliOptions = {}): Promise<CliRun> {
  const argv = [...(o.prefix ?? []), process.execPath, MAIN, ...args];
  const started = performance.now();
  const child = spawn(argv[0] as string, argv.slice(1), { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
