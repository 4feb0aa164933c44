import { once } from 'node:events';
import type { Writable } from 'node:stream';

// A few fixed buffers reused for every file read, so streaming a 2 GB wp-content allocates
// nothing per chunk (per-chunk buffers cost more in GC than the copying itself).

export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiting: ((b: Buffer) => void)[] = [];

  constructor(count: number, size: number) {
    for (let i = 0; i < count; i++) this.free.push(Buffer.allocUnsafe(size));
  }

  take(): Promise<Buffer> {
    const b = this.free.pop();
    return b ? Promise.resolve(b) : new Promise((resolve) => this.waiting.push(resolve));
  }

  give(b: Buffer): void {
    const next = this.waiting.shift();
    if (next) next(b);
    else this.free.push(b);
  }
}

/**
 * Writes to a stream that lets go of a chunk once its write callback ran (pipes, sockets,
 * files do; a pass-through Transform would not, so it must not be the target).
 */
export class PooledWriter {
  private readonly out: Writable;
  private readonly signal: AbortSignal | undefined;
  private failed: Error | undefined;

  constructor(out: Writable, signal?: AbortSignal) {
    this.out = out;
    this.signal = signal;
    out.on('error', (err) => (this.failed ??= err));
  }

  /** Writes chunk; `release` runs once the stream no longer needs the bytes. */
  async write(chunk: Buffer, release?: () => void): Promise<void> {
    if (this.failed) throw this.failed;
    const ok = this.out.write(chunk, release ? () => release() : undefined);
    if (!ok) await once(this.out, 'drain', { signal: this.signal });
  }

  end(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      this.out.once('error', reject);
      this.out.end(() => resolve());
    });
  }
}
