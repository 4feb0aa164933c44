import { Writable } from 'node:stream';
import type { ReadInto } from '../fd-readable.ts';

// Media that is already compressed (JPEG, MP4, ZIP...) gains nothing from zstd, yet it is
// most of a site's bytes and so most of zstd's CPU. Its tar entries go into the archive as
// one zstd frame of raw ("stored") blocks written here, ahead of the frame the zstd program
// makes of everything else. Any zstd decoder reads concatenated frames as one stream
// (RFC 8878, section 3.1), so the archive is still a plain .tar.zst.

/** The largest block a frame with a 128 KiB window may hold (RFC 8878, 3.1.1.2.4). */
export const STORED_BLOCK_MAX = 128 * 1024;

// Magic number, then a frame header descriptor of 0 (no content size, no checksum, not
// single-segment) and a window descriptor of 128 KiB (2^(10+7)): no decoder is asked for a
// large window, however large the media.
const FRAME_HEADER = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]);

/** A block header: bit 0 marks the last block, bits 1-2 the type (0, raw), bits 3-23 the size. */
export function rawBlockHeader(size: number, last: boolean): Buffer {
  const v = size * 8 + (last ? 1 : 0);
  return Buffer.from([v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff]);
}

interface Pending {
  chunk: Buffer;
  pos: number;
  release: () => void;
}

/**
 * Tar bytes written to `writable` come out of readInto() framed as stored zstd blocks. A
 * chunk is released (its write completes) once it is copied out, so a writer reusing its
 * buffers may. Nothing comes out for a lane that got no bytes; a lane destroyed before its
 * writer ended makes readInto() fail instead of closing a frame that would look complete.
 */
export class StoredFrameLane implements ReadInto {
  readonly writable: Writable;
  private pending: Pending | undefined;
  private prefix: Buffer = Buffer.alloc(0);
  private prefixPos = 0;
  private blockLeft = 0;
  private started = false;
  private finished = false;
  private eof = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor() {
    this.writable = new Writable({
      highWaterMark: 4 << 20,
      write: (chunk: Buffer, _enc, cb) => {
        this.pending = { chunk, pos: 0, release: () => cb() };
        this.notify();
      },
      final: (cb) => {
        this.finished = true;
        this.notify();
        cb();
      },
      destroy: (err, cb) => {
        if (!this.finished) this.failure ??= err ?? new Error('The stored-media stream was closed before it ended');
        this.notify();
        cb(err);
      },
    });
  }

  async readInto(buf: Buffer, offset: number, length: number): Promise<number> {
    for (;;) {
      if (this.failure) throw this.failure;
      const n = this.fill(buf, offset, length);
      if (n > 0 || this.eof) return n;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Ends the lane from the reading side; the writer's next write fails. */
  destroy(err?: Error): void {
    this.failure ??= err ?? new Error('The stored-media stream was closed');
    // No error event: the writer learns of it from its failed write, not from a listener.
    this.writable.destroy();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private setPrefix(b: Buffer): void {
    this.prefix = b;
    this.prefixPos = 0;
  }

  /** Copies what is ready without waiting: header bytes first, then block data. */
  private fill(buf: Buffer, offset: number, length: number): number {
    let n = 0;
    while (n < length) {
      if (this.prefixPos < this.prefix.length) {
        const c = this.prefix.copy(buf, offset + n, this.prefixPos);
        this.prefixPos += c;
        n += c;
        continue;
      }
      if (this.eof) break;
      const p = this.pending;
      if (p && p.pos === p.chunk.length) {
        this.pending = undefined;
        p.release();
        continue;
      }
      if (this.blockLeft === 0) {
        if (!this.nextBlock(p)) break;
        continue;
      }
      if (!p) break;
      const c = p.chunk.copy(buf, offset + n, p.pos, p.pos + Math.min(this.blockLeft, length - n));
      p.pos += c;
      this.blockLeft -= c;
      n += c;
    }
    return n;
  }

  /** Starts the next block (or ends the frame); false when neither can be done yet. */
  private nextBlock(p: Pending | undefined): boolean {
    if (p) {
      // A block never spans chunks, so its size is known when its header goes out.
      this.blockLeft = Math.min(STORED_BLOCK_MAX, p.chunk.length - p.pos);
      const header = rawBlockHeader(this.blockLeft, false);
      this.setPrefix(this.started ? header : Buffer.concat([FRAME_HEADER, header]));
      this.started = true;
      return true;
    }
    if (!this.finished) return false;
    this.eof = true;
    if (this.started) this.setPrefix(rawBlockHeader(0, true));
    return true;
  }
}
