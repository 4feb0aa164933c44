import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stopped } from '../errors.ts';
import { startChild } from './child.ts';

// archive stream -> zstd -d -> GNU tar -x into a staging dir, all in one pipe. GNU tar
// refuses members with '..' and defers risky symlinks until the end of extraction.

export async function extractArchive(source: Readable, dir: string, opts: { signal?: AbortSignal; onBytes?: (n: number) => void }): Promise<void> {
  const inner = new AbortController();
  const stop = (): void => inner.abort();
  opts.signal?.addEventListener('abort', stop, { once: true });
  try {
    const zstd = startChild('zstd', ['-d', '-q', '-c'], { signal: inner.signal });
    const tar = startChild('tar', ['--extract', '--file=-', `--directory=${dir}`, '--preserve-permissions'], { signal: inner.signal, stdio: ['pipe', 'ignore', 'pipe'] });
    let n = 0;
    const count = new Transform({
      transform(chunk: Buffer, _e, cb) {
        n += chunk.length;
        opts.onBytes?.(n);
        cb(null, chunk);
      },
    });
    const parts = [
      pipeline(source, count, zstd.proc.stdin!, { signal: inner.signal }),
      pipeline(zstd.proc.stdout!, tar.proc.stdin!, { signal: inner.signal }),
      zstd.done,
      tar.done,
    ];
    // The first failure stops the rest, so nothing waits on a pipe nobody drains; it is
    // also the one worth reporting (the others only saw the stop).
    let first: unknown;
    await Promise.allSettled(parts.map((p) => p.catch((err: unknown) => {
      first ??= err;
      inner.abort();
    })));
    if (opts.signal?.aborted) throw stopped();
    if (first !== undefined) throw first;
  } finally {
    opts.signal?.removeEventListener('abort', stop);
  }
}
