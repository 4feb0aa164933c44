import { closeSync } from 'node:fs';
import { lstat, readlink, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashTap } from '../hash-tap.ts';
import { fifoPair } from '../fd-readable.ts';
import { startFeed } from './archive-feed.ts';
import { startChild, type Child } from './child.ts';
import { PipeGroup } from './pipe-group.ts';
import { CHILD_DIR } from './restore-staging.ts';
import { startGuardThread } from './guard-thread.ts';
import type { TarGuardReport } from './tar-guard.ts';

// archive -> sha256 -> zstd -d -> TarGuard -> GNU tar -x into a staging dir, all in one pipe.
// A local archive is read, hashed and fed to zstd by a thread of its own (archive-feed.ts), and
// TarGuard runs on another between zstd and tar (guard-thread.ts), both with blocking calls on
// FIFOs, so the main thread only waits. TarGuard decides what tar sees (see tar-guard.ts),
// owners included: none, or the site's owner it writes itself into the headers of
// wp-content's members, which tar then sets as it extracts (no chown pass over the tree
// afterwards). After extraction, each symlink is followed through the tree as extracted, since
// a chain of links that each look fine alone can still lead out of wp-content.

export interface ExtractResult {
  /** sha256 of the archive's bytes as they came (compressed). */
  sha256: string;
  bytes: number;
  warnings: string[];
  /** Of database.sql as extracted, checked by sql-guard.ts on its way (see tar-guard.ts). */
  databaseSha256?: string;
}

const ZSTD_ARGS = ['-d', '-q', '-c'];
const TAR_ARGS = ['--extract', '--file=-', '--preserve-permissions', '--delay-directory-restore'];
/** Owners as numbers, never looked up by the (empty) names TarGuard writes. */
const OWNER_ARGS = { none: ['--no-same-owner'], guard: ['--same-owner', '--numeric-owner'] };
const MAX_HOPS = 40;

/** Where to extract: a path for this process (`ref`) and the same dir as a descriptor for tar. */
export interface ExtractDir {
  ref: string;
  fd: number;
}

export interface ExtractOptions {
  signal?: AbortSignal;
  onBytes?: (n: number) => void;
  /** Who gets wp-content's files (the site's owner, when root restores); else whoever runs tar. */
  owner?: { uid: number; gid: number };
}

/** Takes `source` over: a stream is consumed or destroyed, a file closed. */
export async function extractArchive(source: Readable | FileHandle, into: ExtractDir, opts: ExtractOptions): Promise<ExtractResult> {
  const group = new PipeGroup(opts.signal);
  const fds = new Set<number>();
  let archive: { sha256: string; bytes: number } | undefined;
  let report: TarGuardReport | undefined;
  try {
    const { fed, guarded, zstd, tar } = await startPipe(source, into, opts, group, fds);
    const parts = [fed.then((r) => void (archive = r)), guarded.then((r) => void (report = r)), zstd.done, tar.done];
    await Promise.allSettled(parts.map((p) => group.watch(p)));
    group.throwIfFailed();
  } finally {
    group.close();
    for (const fd of fds) closeFd(fds, fd);
    if (source instanceof Readable) source.destroy();
    else await source.close();
  }
  const { warnings, symlinks, databaseSha256 } = report as TarGuardReport;
  await dropEscapingLinks(into.ref, symlinks, warnings);
  const { sha256, bytes } = archive as { sha256: string; bytes: number };
  return { sha256, bytes, warnings, databaseSha256 };
}

interface Pipe extends Fed {
  guarded: Promise<TarGuardReport>;
  tar: Child;
}

/**
 * zstd -> FIFO -> the guard thread -> FIFO -> tar, each end given to one side only; what is
 * left in `fds` is the caller's to close. A failure on the way stops what was started.
 */
async function startPipe(source: Readable | FileHandle, into: ExtractDir, opts: ExtractOptions, group: PipeGroup, fds: Set<number>): Promise<Pipe> {
  const unzipped = await fifoPair();
  const guardedFifo = await fifoPair();
  for (const fd of [unzipped.readFd, unzipped.writeFd, guardedFifo.readFd, guardedFifo.writeFd]) fds.add(fd);
  const tar = startChild('tar', [...TAR_ARGS, ...OWNER_ARGS[opts.owner ? 'guard' : 'none'], `--directory=${CHILD_DIR}`], { signal: group.signal, stdio: [guardedFifo.readFd, 'ignore', 'pipe', into.fd] });
  let feeding: Fed | undefined;
  try {
    feeding = source instanceof Readable ? feedStream(source, unzipped.writeFd, group, opts) : await feedFile(source, unzipped.writeFd, group, opts);
    // The children hold their ends now: a side that goes away is seen by the other at once.
    for (const fd of [unzipped.writeFd, guardedFifo.readFd]) closeFd(fds, fd);
    // The thread owns the other two ends from here on, even if it fails to start.
    fds.delete(unzipped.readFd);
    fds.delete(guardedFifo.writeFd);
    const guard = startGuardThread(unzipped.readFd, guardedFifo.writeFd, { owner: opts.owner });
    return { ...feeding, guarded: afterPipe(guard.done, tar), tar };
  } catch (err) {
    feeding?.zstd.kill();
    tar.kill();
    throw err;
  }
}

/** Removes the links that lead out of wp-content through other links, each with a note. */
async function dropEscapingLinks(dir: string, symlinks: string[], warnings: string[]): Promise<void> {
  for (const link of symlinks) {
    const why = await linkEscapes(dir, link);
    if (!why) continue;
    await unlink(join(dir, link)).catch(() => {});
    warnings.push(`${link} leads ${why} through other links; it was not restored`);
  }
}

function closeFd(fds: Set<number>, fd: number): void {
  if (fds.delete(fd)) closeSync(fd);
}

/** A write that failed because the reader died says less than the reader's own error: that one first. */
async function afterPipe<T>(part: Promise<T>, reader: Child): Promise<T> {
  return part.catch(async (err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') await reader.done;
    throw err;
  });
}

interface Fed {
  zstd: Child;
  /** The archive's sha256 and size, once all of it went into zstd. */
  fed: Promise<{ sha256: string; bytes: number }>;
}

/** A download: hashed on the main thread on its way into zstd's stdin. */
function feedStream(source: Readable, out: number, group: PipeGroup, opts: ExtractOptions): Fed {
  const zstd = startChild('zstd', ZSTD_ARGS, { signal: group.signal, stdio: ['pipe', out, 'pipe'] });
  const tap = new HashTap(opts.onBytes);
  const fed = pipeline(source, tap, zstd.proc.stdin!, { signal: group.signal }).then(() => ({ sha256: tap.sha256(), bytes: tap.bytes }));
  fed.catch(() => {});
  return { zstd, fed };
}

/** A local file: read, hashed and written into zstd's stdin by a thread of its own (archive-feed.ts). */
async function feedFile(file: FileHandle, out: number, group: PipeGroup, opts: ExtractOptions): Promise<Fed> {
  const fifo = await fifoPair();
  let zstd: Child;
  try {
    zstd = startChild('zstd', ZSTD_ARGS, { signal: group.signal, stdio: [fifo.readFd, out, 'pipe'] });
  } catch (err) {
    closeSync(fifo.writeFd);
    throw err;
  } finally {
    // zstd holds the read end now: once it is gone, the writer gets EPIPE instead of waiting.
    closeSync(fifo.readFd);
  }
  const feed = startFeed(file.fd, fifo.writeFd, opts.onBytes);
  const fed = afterPipe(feed.done, zstd);
  fed.catch(() => {});
  return { zstd, fed };
}

/**
 * Follows the link `name` (an archive path under wp-content) through the extracted tree,
 * never leaving `dir/wp-content`; says where it leads when it would leave it.
 */
export async function linkEscapes(dir: string, name: string): Promise<string | undefined> {
  const root = join(dir, 'wp-content');
  const at = await lstat(join(dir, name)).catch(() => undefined);
  if (!at?.isSymbolicLink()) return undefined; // a later member replaced it
  const stack = name.split('/').slice(1, -1);
  const own = await readlink(join(dir, name));
  if (own.startsWith('/')) return `to ${own}`;
  let todo = own.split('/');
  let hops = 0;
  while (todo.length) {
    const c = todo.shift() as string;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (stack.length === 0) return 'out of wp-content';
      stack.pop();
      continue;
    }
    stack.push(c);
    const p = join(root, ...stack);
    const st = await lstat(p).catch(() => undefined);
    if (!st?.isSymbolicLink()) continue;
    if (++hops > MAX_HOPS) return 'in a loop';
    const target = await readlink(p);
    if (target.startsWith('/')) return `to ${target}`;
    stack.pop();
    todo = [...target.split('/'), ...todo];
  }
  return undefined;
}
