import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startChild } from './child.ts';
import { PipeGroup } from './pipe-group.ts';

// archive stream -> zstd -d -> GNU tar -x into a staging dir, all in one pipe. GNU tar
// refuses members with '..' and defers risky symlinks until the end of extraction.

export async function extractArchive(source: Readable, dir: string, opts: { signal?: AbortSignal; onBytes?: (n: number) => void }): Promise<void> {
  const group = new PipeGroup(opts.signal);
  try {
    const zstd = startChild('zstd', ['-d', '-q', '-c'], { signal: group.signal });
    const tar = startChild('tar', ['--extract', '--file=-', `--directory=${dir}`, '--preserve-permissions'], { signal: group.signal, stdio: ['pipe', 'ignore', 'pipe'] });
    let n = 0;
    const count = new Transform({
      transform(chunk: Buffer, _e, cb) {
        n += chunk.length;
        opts.onBytes?.(n);
        cb(null, chunk);
      },
    });
    const parts = [
      pipeline(source, count, zstd.proc.stdin!, { signal: group.signal }),
      pipeline(zstd.proc.stdout!, tar.proc.stdin!, { signal: group.signal }),
      zstd.done,
      tar.done,
    ];
    await Promise.allSettled(parts.map((p) => group.watch(p)));
    group.throwIfFailed();
  } finally {
    group.close();
  }
}
