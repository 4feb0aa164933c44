import { Worker } from 'node:worker_threads';
import { FILE_FLAGS } from './safe-open.ts';

// Read-ahead for the reader process. Its walk reads one file at a time with blocking calls,
// which costs next to nothing once the files are in the page cache, but from disk it waits
// for every small file in turn. A few threads open and read the files it will take next, up
// to WINDOW files ahead, so several reads are in flight and the walk finds its files cached.
// What they read is thrown away: they only warm the cache, so they need no checks beyond
// the walk's own flags (no link followed, no FIFO waited on).

/** How far ahead of the walk the threads may read, in files. */
const WINDOW = 512;
/** Bytes read of each file: the kernel's own read-ahead takes larger files on from there. */
const HEAD = 128 << 10;
/**
 * Files found in the page cache take the walk a few microseconds each; read-ahead then only
 * doubles the system calls. So the walk's pace is sampled every SAMPLE files, and read-ahead
 * is planned only while a file took longer than WARM_US on average.
 */
const SAMPLE = 64;
const WARM_US = 60;

export type PrefetchKind = 'read' | 'stat';

/**
 * One worker's share of what the walk will take next: every count-th file, from `first` on.
 * Strings, not arrays: a message of one string costs a copy, an array of 500 costs 500 clones.
 */
interface Batch {
  /** 'r' (read) or 's' (stat) for each path. */
  kinds: string;
  /** Joined with NUL, which no path holds. */
  paths: string;
  first: number;
}

// Runs in each worker, from its source text (eval), so a reader that dropped its privileges
// need not be able to read wpbackup's files to start it.
function workerMain(): void {
  const { closeSync, lstatSync, openSync, readSync } = process.getBuiltinModule('node:fs');
  const { parentPort, workerData } = process.getBuiltinModule('node:worker_threads');
  const { done, count, window, head, flags } = workerData as { done: SharedArrayBuffer; count: number; window: number; head: number; flags: number };
  const consumed = new Int32Array(done);
  const scratch = Buffer.allocUnsafe(head);
  parentPort?.on('message', (b: Batch) => {
    const paths = b.paths.split('\0');
    for (let i = 0; i < paths.length; i++) {
      const seq = b.first + i * count;
      let now = Atomics.load(consumed, 0);
      if (seq < now) continue; // the walk got there first
      while (seq - now > window) {
        Atomics.wait(consumed, 0, now, 20);
        now = Atomics.load(consumed, 0);
      }
      const path = paths[i] as string;
      try {
        if (b.kinds[i] === 's') lstatSync(path);
        else {
          const fd = openSync(path, flags);
          try {
            readSync(fd, scratch, 0, head, 0);
          } finally {
            closeSync(fd);
          }
        }
      } catch {
        // Gone, swapped or unreadable: the walk will see and say so.
      }
    }
  });
}

export class Prefetcher {
  private readonly workers: Worker[];
  private readonly consumed: Int32Array;
  private next = 0;
  private takenCount = 0;
  private sampledAt = performance.now();
  /** Until the walk shows otherwise, assume the files come from disk. */
  private cold = true;

  constructor(count = 2) {
    const done = new SharedArrayBuffer(4);
    this.consumed = new Int32Array(done);
    const source = `(${workerMain.toString()})()`;
    this.workers = Array.from({ length: count }, () => {
      const w = new Worker(source, { eval: true, workerData: { done, count, window: WINDOW, head: HEAD, flags: FILE_FLAGS }, resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 } });
      w.unref();
      // A worker that fails only costs its read-ahead.
      w.on('error', () => {});
      return w;
    });
  }

  /** The files the walk will take next, in its order; it calls taken() for each. */
  plan(files: { kind: PrefetchKind; path: string }[]): void {
    const count = this.workers.length;
    // Numbered all the same, so the walk's count of files taken stays comparable.
    if (this.cold) this.post(files, count);
    this.next += files.length;
  }

  private post(files: { kind: PrefetchKind; path: string }[], count: number): void {
    this.workers.forEach((w, index) => {
      // This worker's first file in the batch, then every count-th.
      const skip = (index - (this.next % count) + count) % count;
      const share = files.filter((_, i) => i % count === skip);
      if (share.length === 0) return;
      const batch: Batch = { kinds: share.map((f) => f.kind[0]).join(''), paths: share.map((f) => f.path).join('\0'), first: this.next + skip };
      w.postMessage(batch);
    });
  }

  taken(): void {
    Atomics.add(this.consumed, 0, 1);
    if (++this.takenCount % SAMPLE !== 0) return;
    const now = performance.now();
    this.cold = ((now - this.sampledAt) * 1000) / SAMPLE > WARM_US;
    this.sampledAt = now;
  }

  close(): Promise<unknown> {
    return Promise.all(this.workers.map((w) => w.terminate()));
  }
}
