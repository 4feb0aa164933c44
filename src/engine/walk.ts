import type { BigIntStats } from 'node:fs';
import { lstat, opendir, readlink, type FileHandle } from 'node:fs/promises';
import type { EntryType } from './tar-header.ts';
import type { ExcludeMatcher } from './excludes.ts';
import { inDir, openSeen } from './safe-open.ts';

// A depth-first walk of a tree, in name order, that never follows symlinks and keeps no
// list in memory: a site with a million files costs the same RAM as one with ten.
//
// The site's owner may swap any entry for a link while we walk. So each directory is opened
// (O_DIRECTORY|O_NOFOLLOW), checked to be the one lstat saw (dev/ino), listed through its
// descriptor, and its children are lstat'ed and opened through that descriptor too
// (safe-open.ts): a parent renamed and replaced by a link after it was listed cannot redirect
// a child, since no path we use goes through the parent's name any more. Files are opened by
// the consumer with openSeen(item.path, item.stats), which refuses links and swapped files.

export interface WalkItem {
  /** Relative to the root, '/'-separated; '' is the root itself. */
  rel: string;
  /** Where to open it: through its parent's descriptor, valid until the walk moves on. */
  path: string;
  type: EntryType;
  stats: BigIntStats;
  linkname?: string;
}

export interface WalkProblem {
  rel: string;
  reason: string;
}

export interface WalkHooks {
  onExcluded?(rel: string, pattern: string): void;
  /** Sockets, FIFOs, devices, and directories that cannot be listed. */
  onSkipped?(problem: WalkProblem): void;
  /** Entries replaced (e.g. by a link) between being seen and being opened. */
  onChanged?(problem: WalkProblem): void;
}

/** For tests only: called after an entry was lstat'ed, before it is opened or listed. */
export const walkTestHook: { afterLstat?: (rel: string, path: string) => void | Promise<void> } = {};

/** Each level holds one descriptor open; a deeper tree is not walked further. */
export const MAX_DEPTH = 200;

function typeOf(st: BigIntStats): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return undefined;
}

async function sortedNames(dir: FileHandle): Promise<string[]> {
  const names: string[] = [];
  for await (const d of await opendir(inDir(dir))) names.push(d.name);
  return names.sort();
}

export async function* walkTree(root: string, matcher: ExcludeMatcher, hooks: WalkHooks = {}): AsyncGenerator<WalkItem> {
  yield* walkFrom({ rel: '', path: root, stats: await lstat(root, { bigint: true }) }, 0, matcher, hooks);
}

interface Seen {
  rel: string;
  path: string;
  stats: BigIntStats;
}

async function* walkFrom(at: Seen, depth: number, matcher: ExcludeMatcher, hooks: WalkHooks): AsyncGenerator<WalkItem> {
  const type = typeOf(at.stats);
  if (!type) {
    hooks.onSkipped?.({ rel: at.rel, reason: 'not a regular file, directory or symlink' });
    return;
  }
  await walkTestHook.afterLstat?.(at.rel, at.path);
  if (type === 'symlink') {
    const linkname = await readlink(at.path).catch(() => undefined);
    if (linkname !== undefined) yield { ...at, type, linkname };
    return;
  }
  if (type === 'file') {
    yield { ...at, type };
    return;
  }
  if (depth >= MAX_DEPTH) {
    hooks.onSkipped?.({ rel: at.rel, reason: `more than ${MAX_DEPTH} directories deep; not walked` });
    return;
  }
  const opened = await openSeen(at.path, at.stats, true);
  if (!opened.fh) {
    if (opened.code === 'ENOENT') return; // vanished since the listing
    if (opened.code === undefined || opened.code === 'ELOOP' || opened.code === 'ENOTDIR') return hooks.onChanged?.({ rel: at.rel, reason: opened.reason });
    // Kept as an entry, like an unreadable file's directory would be, but not walked.
    yield { ...at, type };
    return hooks.onSkipped?.({ rel: at.rel, reason: `cannot list directory: ${opened.code}` });
  }
  try {
    yield { ...at, type };
    yield* walkChildren(opened.fh, at.rel, depth, matcher, hooks);
  } finally {
    await opened.fh.close();
  }
}

async function* walkChildren(dir: FileHandle, rel: string, depth: number, matcher: ExcludeMatcher, hooks: WalkHooks): AsyncGenerator<WalkItem> {
  let names: string[];
  try {
    names = await sortedNames(dir);
  } catch (err) {
    hooks.onSkipped?.({ rel, reason: `cannot list directory: ${(err as NodeJS.ErrnoException).code ?? String(err)}` });
    return;
  }
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    const path = inDir(dir, name);
    let stats: BigIntStats;
    try {
      stats = await lstat(path, { bigint: true });
    } catch {
      continue; // vanished since the listing
    }
    const pattern = matcher.match(childRel, stats.isDirectory());
    if (pattern) {
      hooks.onExcluded?.(childRel, pattern);
      continue;
    }
    yield* walkFrom({ rel: childRel, path, stats }, depth + 1, matcher, hooks);
  }
}

export interface TreeTotals {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  excluded: string[];
}

/** Counts what a backup of the tree will hold, for progress totals and the stage detail. */
export async function measureTree(root: string, matcher: ExcludeMatcher, signal?: AbortSignal): Promise<TreeTotals> {
  const totals: TreeTotals = { files: 0, dirs: 0, symlinks: 0, bytes: 0, excluded: [] };
  const hooks: WalkHooks = { onExcluded: (rel) => totals.excluded.push(rel) };
  for await (const item of walkTree(root, matcher, hooks)) {
    signal?.throwIfAborted();
    if (item.type === 'file') {
      totals.files++;
      totals.bytes += Number(item.stats.size);
    } else if (item.type === 'dir') totals.dirs++;
    else totals.symlinks++;
  }
  return totals;
}
