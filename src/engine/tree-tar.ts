import { closeSync, lstatSync } from 'node:fs';
import type { ExcludeMatcher } from './excludes.ts';
import type { Prefetcher } from './prefetch.ts';
import type { SyncSink } from './sync-sink.ts';
import { entryFor, paddingLength } from './tar-header.ts';
import { reportShortRead, reportUnopened, type TarStats } from './tar-stream.ts';
import { openFile, TreeWalk, type WalkProblem } from './tree-walk.ts';

// wp-content's tar entries, made by the reader process with blocking calls (tree-walk.ts) in
// two passes over the tree. The first sizes it for progress and writes the files `stored`
// picks (already-compressed media of STORE_MIN bytes or more, stored as is) to their own
// output; the second writes everything else. A file that cannot be opened is reported and left out; one that shrinks
// while read is zero-filled so the archive stays valid.

export interface TreeSource {
  /** The entries' top name: wp-content. */
  name: string;
  root: string;
  matcher: ExcludeMatcher;
}

export interface TreeTotals {
  files: number;
  bytes: number;
}

/** Content bytes read, for progress. */
type OnBytes = (n: number) => void;

function fileEntry(sink: SyncSink, path: string, name: string, stats: TarStats, onBytes: OnBytes): void {
  const opened = openFile(path);
  if (opened.fd === undefined) return reportUnopened(stats, name, opened);
  try {
    // The size at open time is what the header promises.
    const size = Number(opened.stats.size);
    sink.header(entryFor({ type: 'file', stats: opened.stats }, name, size));
    const { n, error } = sink.readFrom(opened.fd, size);
    onBytes(n);
    if (n < size) {
      reportShortRead(stats, name, size - n, error);
      sink.zeros(size - n);
    }
    sink.zeros(paddingLength(size));
    stats.files++;
    stats.bytes += size;
  } finally {
    closeSync(opened.fd);
  }
}

const fullName = (src: TreeSource, rel: string): string => (rel ? `${src.name}/${rel}` : src.name);

/**
 * Media smaller than this goes to zstd with everything else: stored as is, its tar header and
 * padding (up to 1 KiB) would cost more than zstd could save on it, and a site has many.
 */
export const STORE_MIN = 32 << 10;

/** The first pass's choice: already-compressed media (by name) of at least STORE_MIN bytes. */
export interface StoredChoice {
  sink: SyncSink;
  match: (name: string) => boolean;
}

/**
 * The first pass: totals of what the backup will hold, and the stored files written to
 * `stored.sink`, headers included, without end-of-archive blocks. Walk problems are the second
 * pass's to report, since it walks the same tree.
 */
export function sizeAndStore(src: TreeSource, stats: TarStats, onBytes: OnBytes, stored?: StoredChoice, ahead?: Prefetcher): TreeTotals {
  const totals: TreeTotals = { files: 0, bytes: 0 };
  const onFiles = ahead && ((files: { rel: string; path: string }[]): void => ahead.plan(files.map((f) => ({ kind: stored?.match(fullName(src, f.rel)) ? 'read' : 'stat', path: f.path }))));
  const walk = new TreeWalk(src.matcher, (item) => {
    if (item.type !== 'file') return;
    ahead?.taken();
    const name = fullName(src, item.rel);
    const st = lstatSync(item.path, { throwIfNoEntry: false });
    if (stored?.match(name) && st && st.size >= STORE_MIN) {
      const [files, bytes] = [stats.files, stats.bytes];
      fileEntry(stored.sink, item.path, name, stats, onBytes);
      stats.storedFiles += stats.files - files;
      stats.storedBytes += stats.bytes - bytes;
      totals.files += stats.files - files;
      totals.bytes += stats.bytes - bytes;
      return;
    }
    if (!st?.isFile()) return;
    totals.files++;
    totals.bytes += st.size;
  }, { onFiles });
  walk.run(src.root);
  stored?.sink.flush();
  return totals;
}

/**
 * What the second pass needs to leave out exactly the files the first pass stored: its test
 * by name, and when it began. A file unchanged since then (its ctime, which no one can set back)
 * has the size the first pass saw, so the same test gives the same answer; a changed one is
 * taken again, at worst a second copy of it, never none.
 */
export interface StoredBefore {
  match: (name: string) => boolean;
  /** Milliseconds since the epoch, a little before the first pass began. */
  since: number;
}

/** The second pass: every entry, less the files the first pass stored. */
export function writeTree(src: TreeSource, sink: SyncSink, stats: TarStats, onBytes: OnBytes, stored?: StoredBefore, ahead?: Prefetcher): void {
  const named = (p: WalkProblem): WalkProblem => ({ ...p, rel: fullName(src, p.rel) });
  const wasStored = (f: { rel: string; path: string }): boolean => {
    if (!stored?.match(fullName(src, f.rel))) return false;
    const st = lstatSync(f.path, { throwIfNoEntry: false });
    return st !== undefined && st.isFile() && st.size >= STORE_MIN && st.ctimeMs < stored.since;
  };
  // Decided a directory's slice at a time (see WalkHooks.onFiles), so the set stays small.
  let skip = new Set<string>();
  const onFiles = (files: { rel: string; path: string }[]): void => {
    skip = new Set(files.filter(wasStored).map((f) => f.rel));
    ahead?.plan(files.filter((f) => !skip.has(f.rel)).map((f) => ({ kind: 'read' as const, path: f.path })));
  };
  const hooks = { onExcluded: () => void stats.excluded++, onSkipped: (p: WalkProblem) => void stats.skipped.push(named(p)), onChanged: (p: WalkProblem) => void stats.changed.push(named(p)), onFiles };
  const walk = new TreeWalk(
    src.matcher,
    (item) => {
      const name = fullName(src, item.rel);
      if (item.type === 'file') {
        if (skip.has(item.rel)) return;
        ahead?.taken();
        fileEntry(sink, item.path, name, stats, onBytes);
        return;
      }
      if (!item.rel && item.type === 'symlink') stats.skipped.push({ rel: name, reason: `${name} is a link to ${item.linkname}: stored as a link, not followed` });
      if (!item.stats) return;
      sink.header(entryFor({ type: item.type, stats: item.stats, linkname: item.linkname }, name, 0));
      if (item.type === 'dir') stats.dirs++;
      else stats.symlinks++;
    },
    hooks,
  );
  walk.run(src.root);
  sink.flush();
}
