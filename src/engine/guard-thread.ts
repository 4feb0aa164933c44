import { closeSync, readSync } from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { failure, kindOf, WpbError, type ErrorKind } from '../errors.ts';
import { writeAll } from './sync-sink.ts';
import { TarFilter, type TarGuardOptions, type TarGuardReport } from './tar-guard.ts';

// The thread between zstd -d and tar on restore (see extract.ts): it reads zstd's output from
// a FIFO and writes what TarFilter lets through into tar's, with blocking calls and one reused
// buffer each way, so 2 GB of media cost the main thread nothing and make no garbage. This
// file is both: startGuardThread() for the main thread, and the thread's own loop.

interface ThreadData {
  role: 'tar-guard';
  /** zstd's output (a FIFO's read end). */
  input: number;
  /** tar's input (a FIFO's write end; the main thread closes it when told 'tar-end'). */
  output: number;
  opts: TarGuardOptions;
}

type ThreadMessage =
  | { type: 'tar-end' }
  | { type: 'done'; report: TarGuardReport }
  | { type: 'error'; kind: ErrorKind; message: string; hint?: string; code?: string };

/** A pipe hands over at most 64 KiB per read; more room costs nothing. */
const READ = 256 << 10;
/**
 * Young generation as small as the main thread's (bin/wpbackup), and an old one that is
 * collected well before it costs much RSS: the thread holds names and links, its data is in
 * one buffer.
 */
const LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 };

export interface GuardThread {
  /** TarFilter's report once the whole input went through; rejects with its refusal. */
  done: Promise<TarGuardReport>;
}

/** Starts the thread, which owns both descriptors from here on (even if it fails to start). */
export function startGuardThread(input: number, output: number, opts: TarGuardOptions): GuardThread {
  const fds = new Set([input, output]);
  const close = (fd: number): void => {
    if (fds.delete(fd)) closeSync(fd);
  };
  const closeAll = (): void => fds.forEach(close);
  let worker: Worker;
  try {
    const data: ThreadData = { role: 'tar-guard', input, output, opts };
    worker = new Worker(new URL(import.meta.url), { workerData: data, resourceLimits: LIMITS });
  } catch (err) {
    closeAll();
    throw err;
  }
  const done = new Promise<TarGuardReport>((resolve, reject) => {
    worker.on('message', (m: ThreadMessage) => {
      // tar stops at the end marker and may exit while the ignored rest of zstd's output drains.
      if (m.type === 'tar-end') return close(output);
      closeAll();
      if (m.type === 'done') resolve(m.report);
      else reject(Object.assign(new WpbError(m.kind, m.message, { hint: m.hint }), { code: m.code }));
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

function threadMain({ input, output, opts }: ThreadData): void {
  const post = (m: ThreadMessage): void => parentPort?.postMessage(m);
  const filter = new TarFilter({ sync: true, write: (b) => writeAll(output, b), end: () => post({ type: 'tar-end' }) }, opts);
  const buf = Buffer.allocUnsafe(READ);
  try {
    for (;;) {
      const n = readSync(input, buf, 0, READ, null);
      if (n === 0) break;
      filter.feed(buf.subarray(0, n));
    }
    filter.end();
    post({ type: 'done', report: filter.report });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    post({ type: 'error', kind: kindOf(err), message: e.message, hint: err instanceof WpbError ? err.hint : undefined, code: e.code });
  }
}

if (!isMainThread && (workerData as Partial<ThreadData> | null)?.role === 'tar-guard') threadMain(workerData as ThreadData);
