import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { setPriority } from 'node:os';
import { badInput, failure, stopped } from '../errors.ts';

// Child processes (mysqldump, zstd, tar, mysql) that die with the run: killed on abort,
// their stderr kept (the tail) for error messages, their exit turned into a promise.

const STDERR_KEEP = 8192;
const KILL_GRACE_MS = 800;

export interface Child {
  proc: ChildProcess;
  /** Resolves when the process exits 0; rejects with its stderr tail otherwise. */
  done: Promise<void>;
  stderrTail(): string;
  kill(): void;
}

export interface ChildOptions extends SpawnOptions {
  signal?: AbortSignal;
  /** Raise the child's nice value (lower priority) so a busy web server keeps its CPU. */
  nice?: number;
}

export function startChild(cmd: string, args: string[], opts: ChildOptions = {}): Child {
  const { signal, nice, ...spawnOpts } = opts;
  if (signal?.aborted) throw stopped();
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOpts });
  let tail = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (s: string) => {
    tail = (tail + s).slice(-STDERR_KEEP);
  });
  if (nice && proc.pid) {
    try {
      setPriority(proc.pid, nice);
    } catch {
      // Not fatal: priority is a courtesy to the web server.
    }
  }
  let exited = false;
  const kill = (): void => {
    if (exited) return;
    proc.kill('SIGTERM');
    setTimeout(() => exited || proc.kill('SIGKILL'), KILL_GRACE_MS).unref();
  };
  signal?.addEventListener('abort', kill, { once: true });
  const done = new Promise<void>((resolve, reject) => {
    proc.once('error', (err: NodeJS.ErrnoException) => {
      exited = true;
      signal?.removeEventListener('abort', kill);
      // A missing program is the machine's setup to fix, like a missing database client (mysql.ts).
      if (err.code === 'ENOENT') reject(badInput(`${cmd} is not installed (not found on PATH)`, `Install it (apt-get install ${cmd}) or put it on PATH`, err));
      else reject(failure(`Cannot run ${cmd}: ${err.message}`, err, `Install ${cmd} or put it on PATH`));
    });
    proc.once('close', (code, sig) => {
      exited = true;
      signal?.removeEventListener('abort', kill);
      if (signal?.aborted) return reject(stopped());
      if (code === 0) return resolve();
      const why = tail.trim().split('\n').slice(-3).join(' ').trim();
      reject(failure(`${cmd} ${sig ? `was killed by ${sig}` : `exited with code ${code}`}${why ? `: ${why}` : ''}`));
    });
  });
  // A caller that only awaits a stream must not crash the process on an unobserved rejection.
  done.catch(() => {});
  return { proc, done, stderrTail: () => tail, kill };
}

/** Finds the first of several program names on PATH. */
export async function which(names: string[]): Promise<string | undefined> {
  const { access, constants } = await import('node:fs/promises');
  const dirs = (process.env.PATH ?? '/usr/bin:/bin').split(':');
  for (const name of names) {
    for (const dir of dirs) {
      const p = `${dir}/${name}`;
      try {
        await access(p, constants.X_OK);
        return p;
      } catch {
        // keep looking
      }
    }
  }
  return undefined;
}
