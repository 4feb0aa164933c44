import { constants, type BigIntStats } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';

// Opening files in a tree whose owner may swap any file or directory for a symlink at any
// moment. Node has no openat(2), so a directory is held open and its children are named
// through /proc/self/fd/N/<name>: the kernel resolves /proc/self/fd/N to the directory that
// descriptor has open, however its path changed since, and O_NOFOLLOW refuses a link as the
// last component. A path never goes through a directory we did not open and check ourselves.

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = constants;

/** O_NONBLOCK: a FIFO swapped in for a file must not hang the open or the read. */
export const FILE_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;
export const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

/** A path naming `name` in the directory open as descriptor `fd` (or the directory itself). */
export function inFd(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/** The same, for a directory held as a FileHandle. */
export function inDir(dir: FileHandle, name?: string): string {
  return inFd(dir.fd, name);
}

export function sameFile(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

export function kindOf(st: BigIntStats): string {
  if (st.isFile()) return 'a file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'a device';
}

export type Opened = { fh: FileHandle; stats: BigIntStats } | { fh?: undefined; reason: string; code?: string };

/**
 * Opens what `path` names if it is still the very file (or directory) `seen` describes:
 * never through a link, and never a file swapped in since `seen` was taken.
 */
export async function openSeen(path: string, seen: BigIntStats, dir = false): Promise<Opened> {
  let fh: FileHandle;
  try {
    fh = await open(path, dir ? DIR_FLAGS : FILE_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { reason: 'replaced by a symlink while the backup read it; left out', code };
    if (code === 'ENOTDIR' && dir) {
      // O_DIRECTORY|O_NOFOLLOW on a link fails with ENOTDIR, not ELOOP: say what is there now.
      const now = await lstat(path, { bigint: true }).catch(() => undefined);
      return { reason: `replaced by ${now ? kindOf(now) : 'something else'} while the backup read it; left out`, code };
    }
    return { reason: `cannot open (${code ?? String(err)})`, code };
  }
  try {
    const stats = await fh.stat({ bigint: true });
    if (sameFile(stats, seen) && (dir ? stats.isDirectory() : stats.isFile())) return { fh, stats };
    await fh.close();
    return { reason: `replaced by ${kindOf(stats)} while the backup read it; left out` };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/**
 * Opens `rel` ('/'-separated, no '..') below the directory `base`, one component at a time,
 * following no link anywhere below `base`; the last component must be a regular file.
 */
export async function openBeneath(base: string, rel: string): Promise<Opened> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) return { reason: `not a path below ${base}`, code: 'EINVAL' };
  let dir: FileHandle;
  try {
    dir = await open(base, O_RDONLY | O_DIRECTORY);
  } catch (err) {
    return { reason: `cannot open ${base} (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
  try {
    for (const part of parts.slice(0, -1)) {
      const seen = await lstat(inDir(dir, part), { bigint: true }).catch((err: NodeJS.ErrnoException) => err);
      if (seen instanceof Error) return { reason: `cannot open ${part} (${seen.code ?? seen.message})`, code: seen.code };
      if (!seen.isDirectory()) return { reason: `${part} is not a directory`, code: 'ENOTDIR' };
      const next = await openSeen(inDir(dir, part), seen, true);
      if (!next.fh) return next;
      await dir.close();
      dir = next.fh;
    }
    const name = parts.at(-1) as string;
    const seen = await lstat(inDir(dir, name), { bigint: true }).catch((err: NodeJS.ErrnoException) => err);
    if (seen instanceof Error) return { reason: `cannot open (${seen.code ?? seen.message})`, code: seen.code };
    if (!seen.isFile()) return { reason: `${kindOf(seen)}, not a regular file`, code: 'EINVAL' };
    return await openSeen(inDir(dir, name), seen);
  } finally {
    await dir.close();
  }
}
