import { closeSync, fstatSync, lstatSync, openSync, opendirSync, readlinkSync, type BigIntStats } from 'node:fs';
import type { ExcludeMatcher } from './excludes.ts';
import { DIR_FLAGS, FILE_FLAGS, inFd, kindOf, sameFile } from './safe-open.ts';
import type { EntryType } from './tar-header.ts';

// A depth-first walk of a tree, in name order, that never follows symlinks, for the reader
// process (reader-main.ts). It uses blocking system calls: the reader does nothing else, and
// a thread-pool round trip per call cost more than the calls themselves on a site of 200,000
// small files. Entry types come from the listing (d_type), so a file costs no stat until
// its reader opens it (openFile), and the listing keeps one short string per entry.
//
// The site's owner may swap any entry for a link while we walk. So each directory is opened
// (O_DIRECTORY|O_NOFOLLOW) and listed through its descriptor, and its children are named
// through that descriptor too (/proc/self/fd/N/name, see safe-open.ts): a parent renamed and
// replaced by a link after it was listed cannot redirect a child. A file is opened with
// O_NOFOLLOW and must be a regular file once open; whatever else is there by then is left out.

export interface TreeItem {
  /** Relative to the root, '/'-separated; '' is the root itself. */
  rel: string;
  /** Where to open it: through its parent's descriptor, valid during the visit only. */
  path: string;
  type: EntryType;
  /** Of directories and links; files are stat'ed by whoever opens them. */
  stats?: BigIntStats;
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
  /** Entries replaced (e.g. by a link) between being listed and being opened. */
  onChanged?(problem: WalkProblem): void;
  /** A directory's files that will be visited next, in order, before the first is. */
  onFiles?(files: { rel: string; path: string }[]): void;
}

/** For tests only: called once an entry was listed, before it is opened or listed itself. */
export const walkTestHook: { afterSeen?: (rel: string, path: string) => void } = {};

/** Each level holds one descriptor open; a deeper tree is not walked further. */
export const MAX_DEPTH = 200;

const code = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

export type OpenedFile = { fd: number; stats: BigIntStats } | { fd?: undefined; reason: string; code?: string };

/** Opens a file the walk listed: never through a link, never anything but a regular file. */
export function openFile(path: string): OpenedFile {
  let fd: number;
  try {
    fd = openSync(path, FILE_FLAGS);
  } catch (err) {
    const c = code(err);
    if (c === 'ELOOP') return { reason: 'replaced by a symlink while the backup read it; left out', code: c };
    return { reason: `cannot open (${c ?? String(err)})`, code: c };
  }
  let stats: BigIntStats;
  try {
    stats = fstatSync(fd, { bigint: true });
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  if (stats.isFile()) return { fd, stats };
  closeSync(fd);
  return { reason: `replaced by ${kindOf(stats)} while the backup read it; left out` };
}

/** Files announced to WalkHooks.onFiles at a time. */
const ANNOUNCE = 512;

const nameOf = (entry: string): string => entry.slice(0, entry.lastIndexOf('\0'));
const typeOf = (entry: string): string => entry.slice(entry.lastIndexOf('\0') + 1);

/** The directory's entries as `name\0t` (t: f, d, l or o), which sort in name order. */
function listing(fd: number): string[] {
  const out: string[] = [];
  const dir = opendirSync(inFd(fd), { bufferSize: 256 });
  try {
    for (let d = dir.readSync(); d !== null; d = dir.readSync()) {
      out.push(`${d.name}\0${d.isFile() ? 'f' : d.isDirectory() ? 'd' : d.isSymbolicLink() ? 'l' : 'o'}`);
    }
  } finally {
    dir.closeSync();
  }
  return out.sort();
}

export class TreeWalk {
  private readonly matcher: ExcludeMatcher;
  private readonly visit: (item: TreeItem) => void;
  private readonly hooks: WalkHooks;

  constructor(matcher: ExcludeMatcher, visit: (item: TreeItem) => void, hooks: WalkHooks = {}) {
    this.matcher = matcher;
    this.visit = visit;
    this.hooks = hooks;
  }

  run(root: string): void {
    const st = lstatSync(root, { bigint: true });
    if (st.isSymbolicLink()) return this.visit({ rel: '', path: root, type: 'symlink', stats: st, linkname: readlinkSync(root) });
    if (st.isFile()) return this.visit({ rel: '', path: root, type: 'file' });
    if (!st.isDirectory()) return this.hooks.onSkipped?.({ rel: '', reason: 'not a regular file, directory or symlink' });
    this.dir('', root, 0, st);
  }

  private dir(rel: string, path: string, depth: number, seen?: BigIntStats): void {
    if (depth >= MAX_DEPTH) return this.hooks.onSkipped?.({ rel, reason: `more than ${MAX_DEPTH} directories deep; not walked` });
    let fd: number;
    try {
      fd = openSync(path, DIR_FLAGS);
    } catch (err) {
      return this.unopened(rel, path, code(err) ?? String(err));
    }
    try {
      const stats = fstatSync(fd, { bigint: true });
      if (!stats.isDirectory() || (seen && !sameFile(stats, seen))) return this.hooks.onChanged?.({ rel, reason: `replaced by ${kindOf(stats)} while the backup read it; left out` });
      this.visit({ rel, path, type: 'dir', stats });
      let names: string[];
      try {
        names = listing(fd);
      } catch (err) {
        return this.hooks.onSkipped?.({ rel, reason: `cannot list directory: ${code(err) ?? String(err)}` });
      }
      this.children(fd, rel, names, depth);
    } finally {
      closeSync(fd);
    }
  }

  private children(dirFd: number, rel: string, names: string[], depth: number): void {
    const relOf = (name: string): string => (rel ? `${rel}/${name}` : name);
    const kept = names.filter((entry) => {
      const name = nameOf(entry);
      const pattern = this.matcher.match(relOf(name), typeOf(entry) === 'd');
      if (pattern) this.hooks.onExcluded?.(relOf(name), pattern);
      return !pattern;
    });
    // Files are announced a slice at a time: a directory of a million holds no more objects.
    let announced = 0;
    for (let i = 0; i < kept.length; i++) {
      if (i === announced && this.hooks.onFiles) {
        const slice = kept.slice(i, (announced = i + ANNOUNCE)).filter((e) => typeOf(e) === 'f');
        this.hooks.onFiles(slice.map((e) => ({ rel: relOf(nameOf(e)), path: inFd(dirFd, nameOf(e)) })));
      }
      const entry = kept[i] as string;
      this.child(relOf(nameOf(entry)), inFd(dirFd, nameOf(entry)), typeOf(entry), depth);
    }
  }

  private unopened(rel: string, path: string, c: string): void {
    if (c === 'ENOENT') return; // vanished since the listing
    const now = lstatOrUndefined(path);
    if (c === 'ELOOP' || c === 'ENOTDIR' || !now?.isDirectory()) {
      // O_DIRECTORY|O_NOFOLLOW on a link fails with ENOTDIR, not ELOOP: say what is there now.
      return this.hooks.onChanged?.({ rel, reason: `replaced by ${now ? kindOf(now) : 'something else'} while the backup read it; left out` });
    }
    // Kept as an entry, like an unreadable file's directory would be, but not walked.
    this.visit({ rel, path, type: 'dir', stats: now });
    this.hooks.onSkipped?.({ rel, reason: `cannot list directory: ${c}` });
  }

  private child(rel: string, path: string, t: string, depth: number): void {
    walkTestHook.afterSeen?.(rel, path);
    if (t === 'f') return this.visit({ rel, path, type: 'file' });
    if (t === 'd') return this.dir(rel, path, depth + 1);
    if (t === 'l') return this.link(rel, path);
    this.hooks.onSkipped?.({ rel, reason: 'not a regular file, directory or symlink' });
  }

  private link(rel: string, path: string): void {
    const stats = lstatOrUndefined(path);
    if (!stats) return;
    if (!stats.isSymbolicLink()) return this.hooks.onChanged?.({ rel, reason: `replaced by ${kindOf(stats)} while the backup read it; left out` });
    let linkname: string;
    try {
      linkname = readlinkSync(path);
    } catch {
      return; // vanished since the lstat
    }
    this.visit({ rel, path, type: 'symlink', stats, linkname });
  }
}

function lstatOrUndefined(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}
