import type { FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { BufferPool, PooledWriter } from './buffer-pool.ts';
import { resolveConfigFile, type ConfigFile } from './config-files.ts';
import { groupName, userName } from './owners.ts';
import { entryFor, entryHeader, END_OF_ARCHIVE, padding } from './tar-header.ts';
import { openBeneath, type Opened } from './safe-open.ts';
import type { WalkProblem } from './tree-walk.ts';

// Writes one tar archive from single files read in place (the dump, the config files),
// entries made elsewhere (wp-content's, by the reader process: reader-main.ts) and generated
// ones (the manifest): nothing is copied anywhere first, and file data moves through a few
// reused buffers. A file that cannot be opened is reported and left out; one that shrinks
// while read is padded so the archive stays valid.

export type TarSource =
  /**
   * One file stored under `name`; `ready` is awaited first (the dump still being written).
   * With `site`, it is a site's config file, read as config-files.ts allows.
   */
  | { kind: 'file'; name: string; path: string; ready?: Promise<unknown>; site?: string }
  /** Made when the writer reaches it, so it can describe everything before it. */
  | { kind: 'generated'; name: string; data: (soFar: TarStats) => Buffer | Promise<Buffer> }
  /**
   * Tar entries made elsewhere (the reader process, reader-process.ts), copied as they come.
   * `done` resolves once all of them were made, with what went in.
   */
  | { kind: 'entries'; name: string; main: Readable; done: Promise<TarStats> };

export interface TarStats {
  files: number;
  dirs: number;
  symlinks: number;
  /** Content bytes of regular files. */
  bytes: number;
  unreadable: WalkProblem[];
  skipped: WalkProblem[];
  changed: WalkProblem[];
  excluded: number;
  /** Of files and bytes: those stored as they are, not compressed (the stored frame: stored-frame.ts). */
  storedFiles: number;
  storedBytes: number;
}

export interface TarOptions {
  signal?: AbortSignal;
  /** Content bytes read so far, for progress. */
  onBytes?: (n: number) => void;
  /** Called as each source is finished. */
  onSourceDone?: (name: string) => void;
  /** False to leave out the two zero blocks that end an archive (more entries follow elsewhere). */
  endOfArchive?: boolean;
}

const CHUNK = 1 << 20;
const POOL = 4;

export function emptyTarStats(): TarStats {
  return { files: 0, dirs: 0, symlinks: 0, bytes: 0, unreadable: [], skipped: [], changed: [], excluded: 0, storedFiles: 0, storedBytes: 0 };
}

interface Ctx {
  w: PooledWriter;
  pool: BufferPool;
  opts: TarOptions;
}

/** Streams exactly `size` bytes of the file; zero-fills what it cannot read. */
async function copyContent(c: Ctx, fh: FileHandle, size: number, name: string, stats: TarStats): Promise<void> {
  let left = size;
  let readError: unknown;
  while (left > 0) {
    c.opts.signal?.throwIfAborted();
    const buf = await c.pool.take();
    let n = 0;
    try {
      n = (await fh.read(buf, 0, Math.min(buf.length, left), null)).bytesRead;
    } catch (err) {
      readError = err;
    }
    if (n === 0) {
      c.pool.give(buf);
      break;
    }
    left -= n;
    c.opts.onBytes?.(n);
    // Write errors (zstd gone) propagate: only read errors make a file "unreadable".
    await c.w.write(n === buf.length ? buf : buf.subarray(0, n), () => c.pool.give(buf));
  }
  if (left === 0) return;
  reportShortRead(stats, name, left, readError);
  for (; left > 0; left -= Math.min(left, CHUNK)) await c.w.write(Buffer.alloc(Math.min(left, CHUNK)));
}

/** Stores an opened file, or reports why it could not be opened (a vanished file is no problem). */
/**
 * Why a file could not be opened, under `changed` (swapped for a link or something else) or
 * `unreadable`; a file that vanished since it was listed is no problem.
 */
export function reportUnopened(stats: TarStats, name: string, why: { reason: string; code?: string }): void {
  if (why.code === 'ENOENT') return;
  const list = why.code === undefined || why.code === 'ELOOP' ? stats.changed : stats.unreadable;
  list.push({ rel: name, reason: why.reason });
}

/** A file that gave `missing` bytes fewer than its header promised: they are stored as zeros. */
export function reportShortRead(stats: TarStats, name: string, missing: number, readError: unknown): void {
  if (readError) stats.unreadable.push({ rel: name, reason: `read failed part-way (${(readError as NodeJS.ErrnoException).code ?? String(readError)}); stored zero-filled` });
  else stats.changed.push({ rel: name, reason: `shrank by ${missing} bytes while read; zero-filled` });
}

async function openedEntry(c: Ctx, opened: Opened, name: string, stats: TarStats): Promise<void> {
  if (!opened.fh) return reportUnopened(stats, name, opened);
  const fh = opened.fh;
  try {
    // The size at open time is what the header promises; the walk's may be stale.
    const size = Number(opened.stats.size);
    await c.w.write(entryHeader(entryFor({ type: 'file', stats: opened.stats }, name, size)));
    await copyContent(c, fh, size, name, stats);
    const pad = padding(size);
    if (pad.length) await c.w.write(pad);
    stats.files++;
    stats.bytes += size;
  } finally {
    await fh.close();
  }
}

/** The header of a file wpbackup makes itself: owned by whoever runs it, dated now. */
export function ownFileHeader(name: string, size: number, mode: number): Buffer {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const mtimeNs = BigInt(Date.now()) * 1_000_000n;
  return entryHeader({ name, type: 'file', size, mode, uid, gid, uname: userName(uid), gname: groupName(gid), mtimeNs });
}

async function generatedEntry(c: Ctx, name: string, data: Buffer): Promise<void> {
  await c.w.write(ownFileHeader(name, data.length, 0o644));
  await c.w.write(Buffer.concat([data, padding(data.length)]));
}

async function singleFile(c: Ctx, src: Extract<TarSource, { kind: 'file' }>, stats: TarStats): Promise<void> {
  await src.ready;
  const file: ConfigFile = src.site ? await resolveConfigFile(src.path, src.site) : { kind: 'file', open: () => openBeneath(dirname(src.path), basename(src.path)) };
  if (file.kind === 'missing') {
    if (!src.site) throw Object.assign(new Error(`${src.path} is missing`), { code: 'ENOENT' });
    return;
  }
  if (file.kind === 'other') return void stats.skipped.push({ rel: src.name, reason: file.reason });
  if (file.kind === 'link') {
    await c.w.write(entryHeader(entryFor({ type: 'symlink', stats: file.stats, linkname: file.linkname }, src.name, 0)));
    stats.skipped.push({ rel: src.name, reason: file.note });
    return;
  }
  // Counts describe wp-content only; problems with any file are reported all the same.
  const own = emptyTarStats();
  await openedEntry(c, await file.open(), src.name, own);
  stats.unreadable.push(...own.unreadable);
  stats.changed.push(...own.changed);
}

/** Copies entries made elsewhere; nothing counts until their maker says they are complete. */
async function copyEntries(c: Ctx, from: Readable, done: Promise<unknown>): Promise<void> {
  for await (const chunk of from) {
    c.opts.signal?.throwIfAborted();
    await c.w.write(chunk as Buffer);
  }
  await done;
}

export function addTarStats(to: TarStats, s: TarStats): void {
  for (const k of ['files', 'dirs', 'symlinks', 'bytes', 'excluded', 'storedFiles', 'storedBytes'] as const) to[k] += s[k];
  for (const k of ['unreadable', 'skipped', 'changed'] as const) to[k].push(...s[k]);
}

/** Writes the archive to `out` and ends it; resolves with what went in. */
export async function writeTar(sources: TarSource[], out: Writable, opts: TarOptions = {}): Promise<TarStats> {
  const stats = emptyTarStats();
  const pool = new BufferPool(POOL, CHUNK);
  const c: Ctx = { w: new PooledWriter(out, opts.signal), pool, opts };
  for (const src of sources) {
    opts.signal?.throwIfAborted();
    if (src.kind === 'generated') await generatedEntry(c, src.name, await src.data(stats));
    else if (src.kind === 'entries') {
      await copyEntries(c, src.main, src.done);
      addTarStats(stats, await src.done);
    } else await singleFile(c, src, stats);
    opts.onSourceDone?.(src.name);
  }
  if (opts.endOfArchive !== false) await c.w.write(END_OF_ARCHIVE);
  await c.w.end();
  return stats;
}
