import { SyncSink, writeAll } from './sync-sink.ts';

// Media that is already compressed (JPEG, MP4, ZIP...) gains nothing from zstd, yet it is
// most of a site's bytes and so most of zstd's CPU. Its tar entries go into the archive as
// one zstd frame of raw ("stored") blocks, written by the reader process straight into a
// FIFO the upload reads, ahead of the frame the zstd program makes of everything else. Any
// zstd decoder reads concatenated frames as one stream (RFC 8878, section 3.1), so the
// archive is still a plain .tar.zst.

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

/** One frame of raw blocks holding `data` (a frame of one empty block when there is none). */
export function rawFrame(data: Buffer): Buffer {
  const parts: Buffer[] = [FRAME_HEADER];
  for (let at = 0; ; ) {
    const n = Math.min(STORED_BLOCK_MAX, data.length - at);
    const last = at + n === data.length;
    parts.push(rawBlockHeader(n, last), data.subarray(at, at + n));
    at += n;
    if (last) return Buffer.concat(parts);
  }
}

/**
 * A SyncSink whose output is one zstd frame of raw blocks, a block per buffer. Nothing at all
 * comes out of a sink that got no bytes; end() closes the frame.
 */
export class StoredFrameSink extends SyncSink {
  private started = false;

  constructor(fd: number) {
    super(fd, STORED_BLOCK_MAX);
  }

  protected override emit(fd: number, data: Buffer): void {
    const header = rawBlockHeader(data.length, false);
    writeAll(fd, this.started ? header : Buffer.concat([FRAME_HEADER, header]));
    this.started = true;
    writeAll(fd, data);
  }

  end(): void {
    this.flush();
    if (this.started) writeAll(this.fd, rawBlockHeader(0, true));
  }
}
