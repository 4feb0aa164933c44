import type { BigIntStats } from 'node:fs';
import { lstat, readlink, realpath } from 'node:fs/promises';
import { basename, dirname, relative, sep } from 'node:path';
import { openBeneath, type Opened } from './safe-open.ts';

// wp-config.php and .htaccess, read from outside wp-content. A site's owner may make either a
// symlink to any file on the machine (/etc/shadow, another site's wp-config.php, wpbackup's
// own keys), and the backup runs as root. A link is followed only when its fully resolved
// target lies inside the site or in one of these system config dirs; otherwise the link
// itself is stored (a tar symlink entry) and its target is never opened.

/** Where a site's config file may link to and still be read (Debian keeps them in /etc/wordpress). */
export const CONFIG_LINK_DIRS: readonly string[] = ['/etc/wordpress'];

export type ConfigFile =
  /** Read it through `open` (a regular file, or a link followed into an allowed place). */
  | { kind: 'file'; open: () => Promise<Opened>; followed?: string }
  /** Store the link as a link: `note` says why its target was not read. */
  | { kind: 'link'; linkname: string; stats: BigIntStats; note: string }
  | { kind: 'missing' }
  | { kind: 'other'; reason: string };

function inside(base: string, p: string): boolean {
  return p.startsWith(base.endsWith(sep) ? base : base + sep);
}

/** Decides how the config file at `path` of the site in `sitePath` may be read. */
export async function resolveConfigFile(path: string, sitePath: string): Promise<ConfigFile> {
  const name = basename(path);
  const st = await lstat(path, { bigint: true }).catch(() => undefined);
  if (!st) return { kind: 'missing' };
  if (st.isFile()) return { kind: 'file', open: () => openBeneath(dirname(path), name) };
  if (!st.isSymbolicLink()) return { kind: 'other', reason: 'not a regular file or symlink; left out' };
  const linkname = await readlink(path);
  const target = await realpath(path).catch(() => undefined);
  for (const base of [sitePath, ...CONFIG_LINK_DIRS]) {
    const real = await realpath(base).catch(() => undefined);
    if (!real || !target || !inside(real, target)) continue;
    return { kind: 'file', open: () => openBeneath(real, relative(real, target)), followed: target };
  }
  const where = target === undefined ? 'that does not resolve' : 'outside the site';
  const allowed = CONFIG_LINK_DIRS.join(', ');
  return { kind: 'link', linkname, stats: st, note: `${name} is a link to ${linkname}, ${where}: stored as a link, its target not read (links are followed only into the site or ${allowed})` };
}

const MAX_CONFIG_BYTES = 16n << 20n;

/** The whole of a small config file, for parsing; throws when it may not or cannot be read. */
export async function readConfigFile(path: string, sitePath: string): Promise<Buffer> {
  const c = await resolveConfigFile(path, sitePath);
  if (c.kind === 'link') throw Object.assign(new Error(c.note.replace(/: stored as a link.*$/, ': not read')), { code: 'ELINKOUT' });
  if (c.kind === 'missing') throw Object.assign(new Error(`${path} does not exist`), { code: 'ENOENT' });
  if (c.kind === 'other') throw Object.assign(new Error(`${path} is ${c.reason}`), { code: 'EINVAL' });
  const opened = await c.open();
  if (!opened.fh) throw Object.assign(new Error(`${path}: ${opened.reason}`), { code: opened.code ?? 'ECHANGED' });
  try {
    if (opened.stats.size > MAX_CONFIG_BYTES) throw Object.assign(new Error(`${path} is larger than ${MAX_CONFIG_BYTES} bytes`), { code: 'EFBIG' });
    return await opened.fh.readFile();
  } finally {
    await opened.fh.close();
  }
}
