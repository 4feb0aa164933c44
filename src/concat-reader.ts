import { Readable } from 'node:stream';
import type { ReadInto } from './fd-readable.ts';

// One body made of several readers, one after the other: the archive's stored-media frame,
// then what zstd writes. Consumers with buffers of their own read straight into them with
// readInto(); everyone else reads a plain Readable.

export interface Part extends ReadInto {
  destroy(err?: Error): void;
}

export class ConcatReader extends Readable implements ReadInto {
  private readonly parts: Part[];
  private current = 0;

  constructor(parts: Part[]) {
    super({ highWaterMark: 1 << 20 });
    this.parts = parts;
  }

  async readInto(buf: Buffer, offset: number, length: number): Promise<number> {
    for (;;) {
      const part = this.parts[this.current];
      if (!part) return 0;
      const n = await part.readInto(buf, offset, length);
      if (n > 0) return n;
      this.current++;
    }
  }

  override _read(size: number): void {
    const buf = Buffer.allocUnsafe(Math.max(size, 64 * 1024));
    this.readInto(buf, 0, buf.length).then(
      (n) => this.push(n === 0 ? null : buf.subarray(0, n)),
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    // The error is this reader's to report, to whoever reads it; handed to the parts, which
    // nobody listens to, it would crash the process ("Unhandled 'error' event").
    for (const p of this.parts) p.destroy();
    cb(err);
  }
}

/**
 * A part made of chunks as an async iterable yields them (the archive's tail: frame-tail.ts).
 * The next chunk is asked for only once the last is used up, so a source may reuse its buffer.
 */
export class ChunkReader implements Part {
  private readonly chunks: AsyncIterator<Buffer>;
  private held: Buffer = Buffer.alloc(0);

  constructor(chunks: AsyncIterable<Buffer>) {
    this.chunks = chunks[Symbol.asyncIterator]();
  }

  async readInto(buf: Buffer, offset: number, length: number): Promise<number> {
    while (this.held.length === 0) {
      const next = await this.chunks.next();
      if (next.done) return 0;
      this.held = next.value;
    }
    const n = this.held.copy(buf, offset, 0, Math.min(length, this.held.length));
    this.held = this.held.subarray(n);
    return n;
  }

  destroy(): void {
    // Ends the iterable's work (an open file closed by its finally).
    this.chunks.return?.(undefined).catch(() => {});
  }
}
