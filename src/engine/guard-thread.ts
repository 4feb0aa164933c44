import { closeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { failure, WpbError, type ErrorKind } from '../errors.ts';
import type { ExtractWorkerData, ExtractWorkerMessage } from './extract-worker.ts';
import type { TarGuardOptions, TarGuardReport } from './tar-guard.ts';

// Starts extract-worker.ts (TarFilter between zstd's and tar's FIFOs on a thread of its own)
// and owns both descriptors it is given: each is closed here once the thread no longer needs
// it, tar's as soon as the end marker went out, so tar may finish while the rest drains.

export interface GuardThread {
  /** TarFilter's report once the whole input went through; rejects with its refusal. */
  done: Promise<TarGuardReport>;
}

/** Young generation as small as the main thread's (bin/wpbackup): the data is in one buffer. */
const LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 };

export function startGuardThread(input: number, output: number, opts: TarGuardOptions): GuardThread {
  const fds = new Set([input, output]);
  const close = (fd: number): void => {
    if (fds.delete(fd)) closeSync(fd);
  };
  const closeAll = (): void => fds.forEach(close);
  let worker: Worker;
  try {
    const workerData: ExtractWorkerData = { input, output, opts };
    worker = new Worker(new URL('./extract-worker.ts', import.meta.url), { workerData, resourceLimits: LIMITS });
  } catch (err) {
    closeAll();
    throw err;
  }
  const done = new Promise<TarGuardReport>((resolve, reject) => {
    worker.on('message', (m: ExtractWorkerMessage) => {
      if (m.type === 'tar-end') return close(output);
      closeAll();
      if (m.type === 'done') resolve(m.report);
      else reject(Object.assign(new WpbError(m.kind as ErrorKind, m.message, { hint: m.hint }), { code: m.code }));
    });
    worker.on('error', (err) => {
      closeAll();
      reject(failure(`The restore's tar thread failed: ${err.message}`, err));
    });
    worker.on('exit', (code) => {
      if (fds.size === 0) return;
      closeAll();
      reject(failure(`The restore's tar thread exited (${code}) before the end of the archive`));
    });
  });
  done.catch(() => {});
  return { done };
}
