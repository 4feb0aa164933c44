import type { BigIntStats } from 'node:fs';
import { lstat, opendir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { EntryType } from './tar-header.ts';
import type { ExcludeMatcher } from './excludes.ts';

// A depth-first walk of a tree, in name order, that never follows symlinks and keeps no
// list in memory: a site with a million files costs the same RAM as one with ten.

export interface WalkItem {
  /** Relative to the root, '/'-separated; '' is the root itself. */
  rel: string;
  abs: string;
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
}

function typeOf(st: BigIntStats): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return undefined;
}

async function sortedNames(abs: string): Promise<string[]> {
  const names: string[] = [];
  const dir = await opendir(abs);
  for await (const d of dir) names.push(d.name);
  return names.sort();
}

export async function* walkTree(root: string, matcher: ExcludeMatcher, hooks: WalkHooks = {}): AsyncGenerator<WalkItem> {
  yield* walkFrom(root, '', await lstat(root, { bigint: true }), matcher, hooks);
}

async function* walkFrom(root: string, rel: string, stats: BigIntStats, matcher: ExcludeMatcher, hooks: WalkHooks): AsyncGenerator<WalkItem> {
  const abs = rel ? join(root, rel) : root;
  const type = typeOf(stats);
  if (!type) {
    hooks.onSkipped?.({ rel, reason: 'not a regular file, directory or symlink' });
    return;
  }
  const item: WalkItem = { rel, abs, type, stats };
  if (type === 'symlink') item.linkname = await readlink(abs);
  yield item;
  if (type !== 'dir') return;
  let names: string[];
  try {
    names = await sortedNames(abs);
  } catch (err) {
    hooks.onSkipped?.({ rel, reason: `cannot list directory: ${(err as NodeJS.ErrnoException).code ?? String(err)}` });
    return;
  }
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    let childStats: BigIntStats;
    try {
      childStats = await lstat(join(root, childRel), { bigint: true });
    } catch {
      continue; // vanished since the listing
    }
    const pattern = matcher.match(childRel, childStats.isDirectory());
    if (pattern) {
      hooks.onExcluded?.(childRel, pattern);
      continue;
    }
    yield* walkFrom(root, childRel, childStats, matcher, hooks);
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
