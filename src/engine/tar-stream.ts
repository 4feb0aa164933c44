import { open, stat, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { entryHeader, END_OF_ARCHIVE, padding, type TarEntry } from './tar-header.ts';
import type { ExcludeMatcher } from './excludes.ts';
import { groupName, userName } from './owners.ts';
import { walkTree, type WalkItem, type WalkProblem } from './walk.ts';

// Builds one tar stream from files read in place: nothing is copied anywhere first. A file
// that cannot be opened is reported and left out; one that shrinks while read is padded so
// the archive stays valid, and reported.

export type TarSource =
  | { kind: 'file'; name: string; path: string }
  | { kind: 'tree'; name: string; root: string; matcher: ExcludeMatcher }
  /** Made when the stream reaches it, so it can describe everything before it. */
  | { kind: 'generated'; name: string; data: (soFar: TarStats) => Buffer };

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
}

const CHUNK = 1 << 20;

function entryFor(item: WalkItem, name: string, size: number): TarEntry {
  const st = item.stats;
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  return { name, type: item.type, size, mode: Number(st.mode), uid, gid, uname: userName(uid), gname: groupName(gid), mtimeNs: st.mtimeNs, linkname: item.linkname };
}

async function* fileContent(fh: FileHandle, size: number, rel: string, stats: TarStats): AsyncGenerator<Buffer> {
  let left = size;
  try {
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, left));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      left -= bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } catch (err) {
    stats.unreadable.push({ rel, reason: `read failed part-way (${(err as NodeJS.ErrnoException).code ?? String(err)}); stored zero-filled` });
  }
  if (left > 0) {
    if (!stats.unreadable.some((p) => p.rel === rel)) stats.changed.push({ rel, reason: `shrank by ${left} bytes while read; zero-filled` });
    for (; left > 0; left -= Math.min(left, CHUNK)) yield Buffer.alloc(Math.min(left, CHUNK));
  }
}

async function* fileEntry(item: WalkItem, name: string, stats: TarStats, onBytes: (n: number) => void): AsyncGenerator<Buffer> {
  let fh: FileHandle;
  try {
    fh = await open(item.abs, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') stats.unreadable.push({ rel: name, reason: `cannot open (${code ?? String(err)})` });
    return;
  }
  try {
    // The size at open time is what the header promises; the walk's may be stale.
    const size = (await fh.stat()).size;
    yield entryHeader(entryFor(item, name, size));
    for await (const chunk of fileContent(fh, size, name, stats)) {
      onBytes(chunk.length);
      yield chunk;
    }
    yield padding(size);
    stats.files++;
    stats.bytes += size;
  } finally {
    await fh.close();
  }
}

async function* treeEntries(src: Extract<TarSource, { kind: 'tree' }>, stats: TarStats, onBytes: (n: number) => void, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const hooks = { onExcluded: () => void stats.excluded++, onSkipped: (p: WalkProblem) => void stats.skipped.push({ ...p, rel: `${src.name}/${p.rel}` }) };
  for await (const item of walkTree(src.root, src.matcher, hooks)) {
    signal?.throwIfAborted();
    const name = item.rel ? `${src.name}/${item.rel}` : src.name;
    if (item.type === 'file') {
      yield* fileEntry(item, name, stats, onBytes);
      continue;
    }
    yield entryHeader(entryFor(item, name, 0));
    if (item.type === 'dir') stats.dirs++;
    else stats.symlinks++;
  }
}

async function* generatedEntry(name: string, data: Buffer): AsyncGenerator<Buffer> {
  const now = BigInt(Date.now()) * 1_000_000n;
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  yield entryHeader({ name, type: 'file', size: data.length, mode: 0o644, uid, gid, uname: userName(uid), gname: groupName(gid), mtimeNs: now });
  yield data;
  yield padding(data.length);
}

async function* archive(sources: TarSource[], stats: TarStats, onBytes: (n: number) => void, signal?: AbortSignal): AsyncGenerator<Buffer> {
  for (const src of sources) {
    signal?.throwIfAborted();
    if (src.kind === 'tree') yield* treeEntries(src, stats, onBytes, signal);
    else if (src.kind === 'generated') yield* generatedEntry(src.name, src.data(stats));
    else {
      // Followed, not stored as a link: Debian's wp-config.php is a symlink into /etc.
      const st = await stat(src.path, { bigint: true });
      // Counts describe wp-content only; problems with any file are reported all the same.
      const own = emptyTarStats();
      yield* fileEntry({ rel: src.name, abs: src.path, type: 'file', stats: st }, src.name, own, onBytes);
      stats.unreadable.push(...own.unreadable);
      stats.changed.push(...own.changed);
    }
  }
  yield END_OF_ARCHIVE;
}

export function emptyTarStats(): TarStats {
  return { files: 0, dirs: 0, symlinks: 0, bytes: 0, unreadable: [], skipped: [], changed: [], excluded: 0 };
}

/** A byte stream of the archive; `stats` fills in as it is read. */
export function tarStream(sources: TarSource[], opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {}): { stream: Readable; stats: TarStats } {
  const stats = emptyTarStats();
  const stream = Readable.from(archive(sources, stats, opts.onBytes ?? (() => {}), opts.signal), { objectMode: false, highWaterMark: CHUNK });
  return { stream, stats };
}
