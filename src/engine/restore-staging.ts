import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { badInput, failure } from '../errors.ts';

// Directories a restore writes into, held by descriptor. The staging dir sits beside the site
// (same filesystem, so the swap is a rename), and the site's parent may be writable by the
// site's owner (/home/user/public_html): they could rename a dir mid-restore and put a link
// in its place. So each dir is opened once, and used only as /proc/self/fd/N (fd 3 in the
// tar and chown children), which reaches that same directory whatever its name has become.

/** The path that reaches a dir passed as fd 3 to a child process. */
export const CHILD_DIR = '/proc/self/fd/3';

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY;

export class DirHandle {
  readonly path: string;
  readonly #fh: FileHandle;
  readonly dev: number;
  readonly ino: number;

  constructor(path: string, fh: FileHandle, dev: number, ino: number) {
    this.path = path;
    this.#fh = fh;
    this.dev = dev;
    this.ino = ino;
  }

  /** Opens a directory the caller named (links followed: that is the caller's choice). */
  static async open(path: string): Promise<DirHandle> {
    const fh = await open(path, DIR_FLAGS).catch((err: NodeJS.ErrnoException) => {
      throw badInput(`Cannot open ${path} as a directory: ${err.code ?? err.message}`, 'Pass --site the WordPress root directory to restore into', err);
    });
    const st = await fh.stat();
    return new DirHandle(path, fh, st.dev, st.ino);
  }

  get fd(): number {
    return this.#fh.fd;
  }

  /** A path to this directory for this process's own file calls. */
  get ref(): string {
    return `/proc/self/fd/${this.#fh.fd}`;
  }

  async stat(): Promise<{ uid: number; gid: number; dev: number }> {
    return this.#fh.stat();
  }

  async close(): Promise<void> {
    await this.#fh.close();
  }
}

/** The site's root, created when missing. */
export async function openSite(sitePath: string): Promise<DirHandle> {
  await mkdir(sitePath, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
    throw badInput(`Cannot create ${sitePath}: ${err.code ?? err.message}`, 'Pass --site the WordPress root directory to restore into', err);
  });
  return DirHandle.open(sitePath);
}

/** A private (0700) staging dir beside the site, refused if anything but ours is found at its name. */
export async function makeStaging(sitePath: string, site: DirHandle): Promise<DirHandle> {
  const parent = dirname(sitePath);
  const sameFs = (await stat(parent)).dev === site.dev;
  const dir = join(sameFs ? parent : sitePath, `.wpbackup-restore-${basename(sitePath)}-${randomBytes(4).toString('hex')}`);
  const replaced = (cause?: unknown): Error => failure(`The staging dir ${dir} was replaced while it was being made: someone who can write ${dirname(dir)} is interfering`, cause);
  await mkdir(dir, { mode: 0o700 });
  // O_NOFOLLOW: a link put in its place fails here (ENOTDIR/ELOOP) instead of being followed.
  const fh = await open(dir, DIR_FLAGS | constants.O_NOFOLLOW).catch((err: unknown) => {
    throw replaced(err);
  });
  const st = await fh.stat();
  if (!st.isDirectory() || st.uid !== (process.getuid?.() ?? st.uid) || st.mode & 0o077) {
    await fh.close();
    throw replaced();
  }
  return new DirHandle(dir, fh, st.dev, st.ino);
}

/** Empties the staging dir through its descriptor, then removes it by name only if the name is still it. */
export async function removeStaging(staging: DirHandle): Promise<void> {
  try {
    for (const e of await readdir(staging.ref)) await rm(join(staging.ref, e), { recursive: true, force: true });
    const st = await lstat(staging.path).catch(() => undefined);
    if (st && st.dev === staging.dev && st.ino === staging.ino) await rmdir(staging.path).catch(() => {});
  } finally {
    await staging.close();
  }
}
