import { open } from 'node:fs/promises';
import { rawFrame } from './stored-frame.ts';
import { END_OF_ARCHIVE, padding } from './tar-header.ts';
import { ownFileHeader } from './tar-stream.ts';

// The archive's last members, appended after the frame zstd makes, as frames of their own.
// The dump was compressed while it was made (stages/backup-db.ts), so its compressed bytes go
// in as they are: the bundle never compresses it again, nor waits for that once wp-content is
// done. The tar header before it, and its padding, the manifest and the end of the archive
// after it, are raw frames (stored-frame.ts). A zstd decoder reads concatenated frames as one
// stream (RFC 8878, 3.1), so the archive is still a plain .tar.zst with the same members.

export type TailMember =
  /** A zstd file whose content is `size` bytes, stored under `name` as it is. */
  | { kind: 'compressed'; name: string; path: string; size: number; mode: number }
  | { kind: 'generated'; name: string; data: Buffer };

const CHUNK = 1 << 20;

/**
 * The frames of `members` and of the end of the archive; `onMember` is told as each one is out.
 * A chunk is only valid until the next one is asked for (a compressed file's are read into one
 * reused buffer), which is how ChunkReader (concat-reader.ts) takes them.
 */
export async function* tailFrames(members: TailMember[], onMember?: (m: TailMember) => void): AsyncGenerator<Buffer> {
  let raw: Buffer[] = [];
  for (const m of members) {
    if (m.kind === 'generated') {
      raw.push(ownFileHeader(m.name, m.data.length, 0o644), m.data, padding(m.data.length));
      onMember?.(m);
      continue;
    }
    raw.push(ownFileHeader(m.name, m.size, m.mode));
    yield rawFrame(Buffer.concat(raw));
    yield* fileChunks(m.path);
    raw = [padding(m.size)];
    onMember?.(m);
  }
  raw.push(END_OF_ARCHIVE);
  yield rawFrame(Buffer.concat(raw));
}

async function* fileChunks(path: string): AsyncGenerator<Buffer> {
  const fh = await open(path, 'r');
  const buf = Buffer.allocUnsafe(CHUNK);
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}
