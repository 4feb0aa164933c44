import { pipeline } from 'node:stream/promises';
import { stopped, WpbError } from '../../errors.ts';
import type { PendingUpload, PutResult, Storage } from '../../storage/storage.ts';
import { startChild } from '../child.ts';
import { tarStream, type TarSource, type TarStats } from '../tar-stream.ts';
import { Throttle } from '../throttle.ts';

// Stages create_bundle and upload_remote, run as one pipe: tar (read in place) -> zstd -T0
// -> a streamed upload. The upload runs while the bundle is made; what is left after the
// last byte is compressed (final parts, completing, checking the stored size) is
// upload_remote.

export interface BundleOptions {
  storage: Storage;
  key: string;
  sources: TarSource[];
  zstdLevel: number;
  nice?: number;
  sizeHint?: number;
  /** Upload bandwidth cap in bytes per second. */
  limitBytesPerSec?: number;
  signal?: AbortSignal;
  onTarBytes?: (n: number) => void;
  onStoredBytes?: (n: number) => void;
  onUploadStarted?: (p: PendingUpload) => void | Promise<void>;
  /** Called once all input is compressed and only the upload is left. */
  onBundled?: (stats: TarStats) => void;
}

export async function bundleAndUpload(o: BundleOptions): Promise<{ put: PutResult; stats: TarStats }> {
  // One controller for the whole pipe: the first failure anywhere stops every part of it.
  const inner = new AbortController();
  const stopAll = (): void => inner.abort();
  o.signal?.addEventListener('abort', stopAll, { once: true });
  let firstError: unknown;
  const fail = (err: unknown): never => {
    firstError ??= err;
    inner.abort();
    throw err;
  };
  try {
    const zstd = startChild('zstd', ['-T0', '-q', '-c', `-${o.zstdLevel}`], { signal: inner.signal, nice: o.nice });
    const { stdin, stdout } = zstd.proc;
    if (!stdin || !stdout) throw new Error('zstd has no pipes');
    const tar = tarStream(o.sources, { signal: inner.signal, onBytes: o.onTarBytes });
    const bundled = Promise.all([pipeline(tar.stream, stdin, { signal: inner.signal }), zstd.done])
      .then(() => o.onBundled?.(tar.stats))
      .catch(fail);
    const body = o.limitBytesPerSec ? stdout.pipe(new Throttle(o.limitBytesPerSec)) : stdout;
    const put = o.storage.put(o.key, body, { signal: inner.signal, sizeHint: o.sizeHint, onProgress: o.onStoredBytes, onUploadStarted: o.onUploadStarted }).catch(fail);
    const results = await Promise.allSettled([bundled, put]);
    const putResult = results[1].status === 'fulfilled' ? results[1].value : undefined;
    if (putResult && (firstError !== undefined || o.signal?.aborted)) {
      // The upload won a race with a failure upstream: what it stored may be cut short.
      await o.storage.delete(o.key).catch(() => {});
    }
    if (o.signal?.aborted) throw stopped();
    if (firstError !== undefined) throw firstError;
    if (!putResult) throw new WpbError('failed', 'Upload ended without a result');
    return { put: putResult, stats: tar.stats };
  } finally {
    o.signal?.removeEventListener('abort', stopAll);
  }
}
