import { stopped, WpbError } from '../../errors.ts';
import type { PendingUpload, PutResult, Storage } from '../../storage/storage.ts';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ChunkReader, ConcatReader, type Part } from '../../concat-reader.ts';
import { openFifo } from '../../fd-readable.ts';
import { startChild, type Child } from '../child.ts';
import { tailFrames, type TailMember } from '../frame-tail.ts';
import { PipeGroup } from '../pipe-group.ts';
import { writeTar, type TarSource, type TarStats } from '../tar-stream.ts';
import { Throttle } from '../throttle.ts';

// The bundle pipe: tar (files read in place) -> zstd -> a streamed upload, all at once,
// as one PipeGroup. Already-compressed media, with `storeMedia`, goes first as a stored
// zstd frame that never passes through zstd (see stored-frame.ts).
// The upload runs while the bundle is made; what is left after the last byte is
// compressed (final parts, completing, checking the stored size) is upload_remote.

/**
 * Two threads, 1 MiB jobs: -T0 keeps two 8 MiB jobs in and out per core (54 MB on 2 cores, and
 * more, with more CPU taken, on a big production server); 1 MiB jobs cost 0.3% of ratio and 13 MB.
 */
const ZSTD_THREADS = ['-T2', '-B1M'];

export interface BundleOptions {
  storage: Storage;
  key: string;
  /** The run's temp dir, for the FIFO zstd writes into. */
  workDir: string;
  /**
   * What goes in, in order. A function is called once the pipe exists, with its signal, and
   * may start parts of its own (the reader process): `running` fails the pipe if they do.
   * With storeMedia it gets the descriptor the stored frame is to be written to, and owns it.
   */
  sources: TarSource[] | ((signal: AbortSignal, storedFd?: number) => { sources: TarSource[]; running: Promise<unknown> });
  /**
   * The archive's last members, appended as frames of their own after zstd's (frame-tail.ts),
   * given what went into zstd; without it, zstd's frame ends the archive.
   */
  tail?: (stats: TarStats) => Promise<TailMember[]>;
  zstdLevel: number;
  /** Store the sources' `stored` entries (already-compressed media) as they are rather than compress them. */
  storeMedia?: boolean;
  nice?: number;
  sizeHint?: number;
  /** Upload bandwidth cap in bytes per second. */
  limitBytesPerSec?: number;
  signal?: AbortSignal;
  onTarBytes?: (n: number) => void;
  onSourceDone?: (name: string) => void;
  onStoredBytes?: (n: number) => void;
  onUploadStarted?: (p: PendingUpload) => void | Promise<void>;
  /** Called once all input is compressed and only the upload is left. */
  onBundled?: (stats: TarStats) => void;
}

export async function bundleAndUpload(o: BundleOptions): Promise<{ put: PutResult; stats: TarStats }> {
  const group = new PipeGroup(o.signal);
  const cleanups: (() => void)[] = [];
  try {
    // zstd writes into a FIFO the uploader reads straight into its part buffers.
    const fifo = await openFifo(join(o.workDir, 'zstd.out'));
    cleanups.push(() => fifo.reader.destroy());
    let zstd: Child;
    try {
      zstd = startChild('zstd', [...ZSTD_THREADS, '-q', '-c', `-${o.zstdLevel}`], { signal: group.signal, nice: o.nice, stdio: ['pipe', fifo.writeFd, 'pipe'] });
    } finally {
      fifo.closeWriter();
    }
    const stdin = zstd.proc.stdin;
    if (!stdin) throw new Error('zstd has no stdin');
    // The archive is the stored frame (when there is one), what zstd writes, then the tail.
    const storedFifo = o.storeMedia ? await openFifo(join(o.workDir, 'stored.out')) : undefined;
    // Set once zstd's input exists; the tail is only read after zstd's frame ends.
    const later: { members?: Promise<TailMember[]> } = {};
    const tailOut = Promise.withResolvers<void>();
    const tail = o.tail && new ChunkReader(tailOf(o, () => later.members as Promise<TailMember[]>, tailOut.resolve));
    // A pipe that stops before the tail is read never resolves it: `bundled` must settle all the
    // same (and a stop after a failure on the way here is no unhandled rejection).
    tailOut.promise.catch(() => {});
    group.signal.addEventListener('abort', () => tailOut.reject(stopped()), { once: true });
    if (!o.tail) tailOut.resolve();
    const parts: Part[] = [...(storedFifo ? [storedFifo.reader] : []), fifo.reader, ...(tail ? [tail] : [])];
    const archive = parts.length > 1 ? new ConcatReader(parts) : fifo.reader;
    cleanups.push(() => archive.destroy());
    let made: { sources: TarSource[]; running?: Promise<unknown> };
    try {
      made = typeof o.sources === 'function' ? o.sources(group.signal, storedFifo?.writeFd) : { sources: o.sources };
    } finally {
      // The reader has its copy: the read end sees the end when the reader closes it.
      storedFifo?.closeWriter();
    }
    const { sources, running } = made;
    const tar = writeTar(sources, stdin, { signal: group.signal, onBytes: o.onTarBytes, onSourceDone: o.onSourceDone, endOfArchive: !o.tail });
    // Awaited by the tail when the upload reaches it, and by `bundled` (the dump is in them).
    const members = (later.members = o.tail ? tar.then(o.tail) : Promise.resolve([]));
    // Bundled once the last byte of the archive is made: zstd's, then the tail's, handed to the upload.
    const bundled = group.watch(
      Promise.all([tar, zstd.done, running, members, tailOut.promise]).then(([made]) => {
        o.onBundled?.(made);
        return made;
      }),
    );
    const body = o.limitBytesPerSec ? throttled(archive, o.limitBytesPerSec) : archive;
    const put = group.watch(o.storage.put(o.key, body, { signal: group.signal, sizeHint: o.sizeHint, onProgress: o.onStoredBytes, onUploadStarted: o.onUploadStarted }));
    const [b, p] = await Promise.allSettled([bundled, put]);
    const putResult = p.status === 'fulfilled' ? p.value : undefined;
    if (putResult && group.failed) {
      // The upload won a race with a failure upstream: what it stored may be cut short.
      await o.storage.delete(o.key).catch(() => {});
    }
    group.throwIfFailed();
    if (!putResult || b.status !== 'fulfilled') throw new WpbError('failed', 'The bundle ended without a result');
    return { put: putResult, stats: b.value };
  } finally {
    group.close();
    for (const c of cleanups) c();
  }
}

/** The tail's frames, once its members are known; they count as tarred as each goes out. */
async function* tailOf(o: BundleOptions, members: () => Promise<TailMember[]>, out: () => void): AsyncGenerator<Buffer> {
  yield* tailFrames(await members(), (m) => {
    o.onTarBytes?.(m.kind === 'compressed' ? m.size : m.data.length);
    o.onSourceDone?.(m.name);
  });
  out();
}

/**
 * The archive through a Throttle. pipe() does not pass errors on, so the archive's go to the
 * body, where the upload's reads see them; one that fails before the upload reads is
 * reported by the part that failed, never as an unhandled 'error' event.
 */
function throttled(archive: Readable, bytesPerSec: number): Readable {
  const body = new Throttle(bytesPerSec);
  archive.on('error', (err) => body.destroy(err));
  body.on('error', () => {});
  return archive.pipe(body);
}
