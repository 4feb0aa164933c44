import { readSync, writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { kindOf, WpbError } from '../errors.ts';
import { TarFilter, type TarGuardOptions } from './tar-guard.ts';

// The thread between zstd -d and tar on restore (see extract.ts): reads zstd's output from a
// FIFO and writes what TarFilter lets through into tar's, with blocking calls and one reused
// buffer each way, so 2 GB of media cost the main thread nothing and make no garbage.

export interface ExtractWorkerData {
  /** zstd's output (a FIFO's read end). */
  input: number;
  /** tar's input (a FIFO's write end; the main thread closes it when told 'tar-end'). */
  output: number;
  opts: TarGuardOptions;
}

export type ExtractWorkerMessage =
  | { type: 'tar-end' }
  | { type: 'done'; report: TarFilter['report'] }
  | { type: 'error'; kind: string; message: string; hint?: string; code?: string };

/** A pipe hands over at most 64 KiB per read; more room costs nothing. */
const READ = 256 << 10;

function run(): void {
  const { input, output, opts } = workerData as ExtractWorkerData;
  const post = (m: ExtractWorkerMessage): void => parentPort?.postMessage(m);
  const write = (b: Buffer): void => {
    for (let at = 0; at < b.length; ) at += writeSync(output, b, at, b.length - at);
  };
  const filter = new TarFilter({ sync: true, write, end: () => post({ type: 'tar-end' }) }, opts);
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

run();
