import { readSync, writeSync } from 'node:fs';
import { BLOCK, entryHeader, ustarInto, type TarEntry } from './tar-header.ts';

// The reader process's output: one buffer filled by headers and by file reads straight into
// it, written out with blocking writes when full. The reader does nothing else, so a blocked
// write is the backpressure, and a small file costs no more than its own system calls: no
// promise, no thread-pool round trip, no buffer per file (tar's own way of working).

/** Blocks until all of `b` is written to the blocking descriptor `fd`. */
export function writeAll(fd: number, b: Buffer): void {
  for (let at = 0; at < b.length; ) at += writeSync(fd, b, at);
}

export class SyncSink {
  protected readonly fd: number;
  private readonly buf: Buffer;
  private readonly size: number;
  private used = 0;

  constructor(fd: number, size = 1 << 20) {
    this.fd = fd;
    this.size = size;
    this.buf = Buffer.allocUnsafe(size);
  }

  put(b: Buffer): void {
    for (let at = 0; at < b.length; ) {
      if (this.used === this.size) this.flush();
      const n = b.copy(this.buf, this.used, at);
      this.used += n;
      at += n;
    }
  }

  header(e: TarEntry): void {
    if (this.size - this.used < BLOCK) this.flush();
    if (ustarInto(e, this.buf, this.used)) this.used += BLOCK;
    else this.put(entryHeader(e));
  }

  zeros(count: number): void {
    for (let left = count; left > 0; ) {
      if (this.used === this.size) this.flush();
      const n = Math.min(left, this.size - this.used);
      this.buf.fill(0, this.used, this.used + n);
      this.used += n;
      left -= n;
    }
  }

  /**
   * Reads up to `size` bytes of the open file `from` into the archive. Returns how many it got
   * (fewer when the file shrank) and the read error, if one cut it short.
   */
  readFrom(from: number, size: number): { n: number; error?: NodeJS.ErrnoException } {
    let n = 0;
    while (n < size) {
      if (this.used === this.size) this.flush();
      let got: number;
      try {
        got = readSync(from, this.buf, this.used, Math.min(size - n, this.size - this.used), null);
      } catch (err) {
        return { n, error: err as NodeJS.ErrnoException };
      }
      if (got === 0) break;
      this.used += got;
      n += got;
    }
    return { n };
  }

  flush(): void {
    if (this.used > 0) this.emit(this.fd, this.buf.subarray(0, this.used));
    this.used = 0;
  }

  /** Writes out one buffer's worth: blocks until all of it is written. */
  protected emit(fd: number, data: Buffer): void {
    writeAll(fd, data);
  }
}
