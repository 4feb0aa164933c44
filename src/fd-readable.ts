import { execFileSync } from 'node:child_process';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { badInput, failure } from './errors.ts';

// A child's output read through a FIFO instead of a pipe stream: a consumer that has
// buffers of its own (the multipart uploader's part buffers) reads straight into them with
// readInto(), and no per-chunk buffer is ever allocated. Everyone else reads it as a
// plain Readable.

const CHUNK = 1 << 20;

export interface ReadInto {
  /** Reads up to length bytes into buf at offset; 0 means end of stream. */
  readInto(buf: Buffer, offset: number, length: number): Promise<number>;
}

export function canReadInto(x: unknown): x is ReadInto {
  return typeof (x as Partial<ReadInto>).readInto === 'function';
}

export class FdReadable extends Readable implements ReadInto {
  private readonly fh: FileHandle;

  constructor(fh: FileHandle) {
    super({ highWaterMark: CHUNK });
    this.fh = fh;
  }

  async readInto(buf: Buffer, offset: number, length: number): Promise<number> {
    const { bytesRead } = await this.fh.read(buf, offset, length, null);
    if (bytesRead === 0) this.push(null);
    return bytesRead;
  }

  override _read(size: number): void {
    const buf = Buffer.allocUnsafe(Math.max(size, 64 * 1024));
    this.fh.read(buf, 0, buf.length, null).then(
      ({ bytesRead }) => this.push(bytesRead === 0 ? null : buf.subarray(0, bytesRead)),
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.fh.close().then(
      () => cb(err),
      () => cb(err),
    );
  }
}

/**
 * Makes a FIFO at path and opens both ends. Each open waits for the other end, so both run
 * at once (on the threadpool). The write end is write-only on purpose: if this process
 * dies, the child writing into it gets SIGPIPE and exits instead of blocking forever. It
 * goes to the child as stdout and is closed here once the child has it, so the reader sees
 * end-of-stream when the child exits.
 */
export async function openFifo(path: string): Promise<{ reader: FdReadable; writeFd: number; closeWriter(): void }> {
  try {
    execFileSync('mkfifo', ['-m', '600', path], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw badInput('mkfifo is not installed (not found on PATH)', 'Install it (apt-get install coreutils) or put it on PATH', err);
    throw failure(`Cannot make the FIFO ${path}: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`, err);
  }
  const [r, w] = await Promise.all([open(path, 'r'), open(path, 'w')]);
  let closed = false;
  return {
    reader: new FdReadable(r),
    writeFd: w.fd,
    closeWriter: () => {
      if (!closed) void w.close();
      closed = true;
    },
  };
}
