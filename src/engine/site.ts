import { stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { badInput } from '../errors.ts';
import { readWpVersion } from '../wordpress/discover.ts';
import { readWpConfig, type WpConfig } from '../wordpress/wp-config.ts';
import type { DbTarget } from './mysql.ts';

// What the engine needs to know about a site before a backup or restore.

export interface SiteInfo {
  path: string;
  wpContent: string;
  config: WpConfig;
  db: DbTarget;
  wpVersion: string | null;
  htaccess: string | null;
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
  const config = await readWpConfig(path);
  const wpContent = join(path, 'wp-content');
  if (!(await stat(wpContent).catch(() => undefined))?.isDirectory()) {
    throw badInput(`${wpContent} is missing`, `Is ${path} a WordPress site? Pass --site the WordPress root (where wp-content is)`);
  }
  const wpVersion = await readWpVersion(path).catch(() => null);
  const htaccess = (await pathExists(join(path, '.htaccess'))) ? join(path, '.htaccess') : null;
  return { path, wpContent, config, db: dbTarget(config), wpVersion, htaccess };
}

/** The default site name: the host of siteurl, else the directory name. */
export function defaultSiteName(siteurl: string | null, path: string): string {
  if (siteurl) {
    try {
      const u = new URL(siteurl);
      return u.port ? `${u.hostname}-${u.port}` : u.hostname;
    } catch {
      // fall through to the directory name
    }
  }
  return basename(path);
}
