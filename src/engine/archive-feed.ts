import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { failure } from '../errors.ts';
import { makeFifo } from '../fd-readable.ts';

// The compressed side of a restore from a local file, off the main thread: a worker reads the
// archive, hashes (sha256) exactly the bytes it hands on, and writes them into a FIFO that is
// zstd's stdin, all with blocking calls. So the main thread never touches the compressed bytes
// and the hash runs on the other core, while zstd reads what was hashed and nothing else.

/** One read and one write per MiB. */
const CHUNK = 1 << 20;
/** Progress every 16 MiB. */
const REPORT = 16 << 20;

interface FeedMessage {
  bytes: number;
  sha256?: string;
  error?: { message: string; code?: string };
}

// Runs in the worker, from its source text (eval): only fs and crypto, no module to load.
function feedMain(): void {
  const { readSync, writeSync } = process.getBuiltinModule('node:fs');
  const { createHash } = process.getBuiltinModule('node:crypto');
  const { parentPort, workerData } = process.getBuiltinModule('node:worker_threads');
  const { src, dest, chunk, report } = workerData as { src: number; dest: number; chunk: number; report: number };
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(chunk);
  let bytes = 0;
  let reported = 0;
  try {
    for (;;) {
      const n = readSync(src, buf, 0, chunk, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      for (let at = 0; at < n; ) at += writeSync(dest, buf, at, n - at);
      bytes += n;
      if (bytes - reported >= report) {
        reported = bytes;
        parentPort?.postMessage({ bytes });
      }
    }
    parentPort?.postMessage({ bytes, sha256: hash.digest('hex') });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    parentPort?.postMessage({ bytes, error: { message: e.message, code: e.code } });
  }
}

/**
 * A FIFO between a child and a thread, both ends blocking (zstd and tar use plain blocking
 * reads and writes, and so do the threads). Its name is gone before this returns, so no one
 * else can open it.
 */
export async function fifoPair(): Promise<{ readFd: number; writeFd: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'wpbackup-feed-'));
  const path = join(dir, 'fifo');
  try {
    makeFifo(path);
    // A non-blocking read end first, so the blocking opens after it return at once.
    const probe = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const writeFd = openSync(path, constants.O_WRONLY);
      try {
        return { readFd: openSync(path, constants.O_RDONLY), writeFd };
      } catch (err) {
        closeSync(writeFd);
        throw err;
      }
    } finally {
      closeSync(probe);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface Feed {
  /** Resolves once every byte went into the FIFO, with their sha256 and count. */
  done: Promise<{ sha256: string; bytes: number }>;
}

/**
 * Starts a worker that copies `src` (a file descriptor, read from its current position to the
 * end) into `dest` (a FIFO's write end), hashing on the way. `dest` is closed here once the
 * worker is done, whatever happened, so zstd sees the end (or the worker's EPIPE says that
 * zstd is gone: killed on a stop, or failed).
 */
export function startFeed(src: number, dest: number, onBytes?: (n: number) => void): Feed {
  const source = `(${feedMain.toString()})()`;
  let open = true;
  const closeDest = (): void => {
    if (open) closeSync(dest);
    open = false;
  };
  let worker: Worker;
  try {
    worker = new Worker(source, { eval: true, workerData: { src, dest, chunk: CHUNK, report: REPORT }, resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 } });
  } catch (err) {
    closeDest();
    throw err;
  }
  const done = new Promise<{ sha256: string; bytes: number }>((resolve, reject) => {
    worker.on('message', (m: FeedMessage) => {
      if (m.error) {
        closeDest();
        reject(Object.assign(failure(`Cannot read the archive into zstd: ${m.error.message}`), { code: m.error.code }));
      } else if (m.sha256 !== undefined) {
        closeDest();
        onBytes?.(m.bytes);
        resolve({ sha256: m.sha256, bytes: m.bytes });
      } else onBytes?.(m.bytes);
    });
    worker.on('error', (err) => {
      closeDest();
      reject(failure(`The archive reader thread failed: ${err.message}`, err));
    });
    worker.on('exit', (code) => {
      if (!open) return;
      closeDest();
      reject(failure(`The archive reader thread exited (${code}) before the end of the archive`));
    });
  });
  done.catch(() => {});
  return { done };
}
