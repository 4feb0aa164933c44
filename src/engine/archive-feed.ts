import { closeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { failure } from '../errors.ts';

// The compressed side of a restore from a local file, off the main thread: a worker reads the
// archive, hashes (sha256) exactly the bytes it hands on, and writes them into a FIFO that is
// zstd's stdin, all with blocking calls. So the main thread never touches the compressed bytes
// and the hash runs on the other core, while zstd reads what was hashed and nothing else.

/** One read per MiB. */
const CHUNK = 1 << 20;
/**
 * Written, then hashed, a pipe's worth at a time: zstd works on one piece while the next is
 * hashed, where hashing a whole MiB first would leave it waiting on an empty pipe.
 */
const PIECE = 64 << 10;
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
  const { src, dest, chunk, piece, report } = workerData as { src: number; dest: number; chunk: number; piece: number; report: number };
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(chunk);
  let bytes = 0;
  let reported = 0;
  try {
    for (;;) {
      const n = readSync(src, buf, 0, chunk, null);
      if (n === 0) break;
      for (let at = 0; at < n; ) {
        const end = Math.min(n, at + piece);
        for (let w = at; w < end; ) w += writeSync(dest, buf, w, end - w);
        hash.update(buf.subarray(at, end));
        at = end;
      }
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
    worker = new Worker(source, { eval: true, workerData: { src, dest, chunk: CHUNK, piece: PIECE, report: REPORT }, resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 } });
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
