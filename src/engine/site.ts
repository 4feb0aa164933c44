import { lstat, realpath, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { badInput } from '../errors.ts';
import { readWpVersion } from '../wordpress/version.ts';
import { findWpConfig, parseWpConfig, type WpConfig } from '../wordpress/wp-config.ts';
import { CONFIG_LINK_DIRS, readConfigFile } from './config-files.ts';
import type { DbTarget } from './mysql.ts';

// What the engine needs to know about a site before a backup or restore.

export interface SiteInfo {
  path: string;
  wpContent: string;
  config: WpConfig;
  db: DbTarget;
  wpVersion: string | null;
  htaccess: string | null;
  /** Who owns the site directory, as checked by checkSitePathLinks. */
  owner: { uid: number; gid: number };
}

export function dbTarget(config: WpConfig): DbTarget {
  const h = config.dbHost;
  return { name: config.dbName, user: config.dbUser, password: config.dbPassword, host: h.host, port: h.port, socket: h.socket };
}

/** Whether something is at p (symlinks followed). */
export async function pathExists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

export async function loadSite(sitePath: string): Promise<SiteInfo> {
  const path = resolve(sitePath);
  const st = await stat(path).catch(() => undefined);
  if (!st?.isDirectory()) throw badInput(`Site directory ${path} does not exist`, 'Pass --site the directory that holds wp-config.php or wp-settings.php');
  const owner = await checkSitePathLinks(path);
  const config = await readSiteConfig(path);
  const wpContent = join(path, 'wp-content');
  if (!(await stat(wpContent).catch(() => undefined))?.isDirectory()) {
    throw badInput(`${wpContent} is missing`, `Is ${path} a WordPress site? Pass --site the WordPress root (where wp-content is)`);
  }
  const wpVersion = await readVersion(path).catch(() => null);
  // lstat: a link is still there to be stored (as a link, when it leads outside the site).
  const htaccess = (await lstat(join(path, '.htaccess')).catch(() => undefined)) ? join(path, '.htaccess') : null;
  return { path, wpContent, config, db: dbTarget(config), wpVersion, htaccess, owner };
}

/**
 * A user's link on the way to the site (say /home/alice/public_html, alice's to replace) may
 * lead only to that user's own directory: not to another site, whose files would then be
 * backed up as alice's and read as their owner. Root's links lead anywhere. Returns the owner
 * of the directory so approved: whatever is swapped in later is read as that user, who could
 * read it anyway.
 */
async function checkSitePathLinks(path: string): Promise<{ uid: number; gid: number }> {
  let at = '/';
  for (const part of path.split('/').filter(Boolean)) {
    const p = join(at, part);
    const st = await lstat(p);
    if (!st.isSymbolicLink()) {
      at = p;
      continue;
    }
    const target = await realpath(p);
    const owner = (await stat(target)).uid;
    if (st.uid !== 0 && owner !== st.uid) {
      throw badInput(`${p} is a link owned by uid ${st.uid} to ${target}, which belongs to uid ${owner}`, `Pass --site the real directory (${target}) if that is the site to back up`);
    }
    at = target;
  }
  const st = await stat(at);
  return { uid: st.uid, gid: st.gid };
}

/** wp-config.php, read as config-files.ts allows: never through a link that leads outside the site. */
export async function readSiteConfig(path: string): Promise<WpConfig> {
  const file = await findWpConfig(path);
  let source: Buffer;
  try {
    source = await readConfigFile(file, path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ELINKOUT') throw badInput(`${e.message}, so the site's database settings are unknown`, `Replace the link with the file itself, or keep the file in the site or in ${CONFIG_LINK_DIRS.join(', ')}`, err);
    if (e.code === 'EINVAL') throw badInput(`Cannot read ${file}: not a regular file`, 'Make wp-config.php a regular file (or a link to one inside the site)', err);
    throw badInput(`Cannot read ${file}: ${e.code ?? e.message}`, 'Run wpbackup as a user that can read wp-config.php, e.g. the site owner or root', err);
  }
  return parseWpConfig(source, file);
}

/** $wp_version, or null when version.php is missing, a link, or not plain PHP. */
async function readVersion(path: string): Promise<string | null> {
  return readWpVersion(path).catch(() => null);
}

/** A site name from siteurl: its host (and port, when not the default); null when siteurl is no URL with a host. */
export function siteNameFromUrl(siteurl: string): string | null {
  try {
    const u = new URL(siteurl);
    if (!u.hostname) return null;
    return u.port ? `${u.hostname}-${u.port}` : u.hostname;
  } catch {
    return null;
  }
}

/** The default site name: the host of siteurl, else the directory name. */
export function defaultSiteName(siteurl: string | null, path: string): string {
  return (siteurl ? siteNameFromUrl(siteurl) : null) ?? basename(path);
}
