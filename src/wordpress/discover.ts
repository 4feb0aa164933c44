// Finds the WordPress sites on a server: walks directory trees looking for WordPress roots and
// reads each one's wp-config.php and version. A site that cannot be read is listed with its
// error rather than stopping the scan.

import type { Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { readSiteConfig } from '../engine/site.ts';
import { badInput, describe, throwIfStopped } from '../errors.ts';
import { readWpVersion } from './version.ts';

export interface FoundSite {
  /** A short name from the path, e.g. example.com for /var/www/example.com/public_html. */
  name: string;
  path: string;
  /** The wp-config.php WordPress would load (may be in the parent directory). */
  configFile?: string;
  wpVersion?: string;
  dbName?: string;
  /** DB_HOST as written in wp-config.php. */
  dbHost?: string;
  tablePrefix?: string;
  /** Why the site's settings could not be read; the other fields are then missing. */
  error?: string;
}

export interface ScanOptions {
  /** How many directory levels below each root to look (default 5). */
  maxDepth?: number;
  /** Names sites whose path says nothing, like /var/www/html (default: this machine's name). */
  hostname?: string;
  signal?: AbortSignal;
}

// Never WordPress roots, and often huge: not worth walking.
const SKIP_DIRS = new Set(['node_modules', '.git', '.svn', '.hg', 'wp-content', 'wp-includes', 'wp-admin']);

export async function scanSites(roots: string[] = ['/var/www'], opts: ScanOptions = {}): Promise<FoundSite[]> {
  const walk: Walk = { maxDepth: opts.maxDepth ?? 5, seen: new Set(), found: [], signal: opts.signal };
  for (const root of roots) {
    const dir = resolve(root);
    await checkRoot(dir);
    await walkDir(walk, dir, 0);
  }
  const sites = await Promise.all(walk.found.map((path) => readSite(path)));
  const unique = dropSharedConfigs(sites).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  nameSites(unique, opts.hostname ?? osHostname());
  return unique;
}

async function checkRoot(dir: string): Promise<void> {
  const hint = 'Pass the directory that holds your WordPress sites, e.g. /var/www';
  const st = await stat(dir).catch((err: NodeJS.ErrnoException) => err);
  if (st instanceof Error) {
    throw badInput(st.code === 'ENOENT' ? `${dir} does not exist` : `Cannot read ${dir}: ${st.code ?? st.message}`, hint, st);
  }
  if (!st.isDirectory()) throw badInput(`${dir} is not a directory`, hint);
}

interface Walk {
  maxDepth: number;
  /** Real paths already walked: symlinks may point back up the tree or at another root. */
  seen: Set<string>;
  found: string[];
  signal: AbortSignal | undefined;
}

async function walkDir(walk: Walk, dir: string, depth: number): Promise<void> {
  throwIfStopped(walk.signal);
  const real = await realpath(dir).catch(() => undefined);
  if (real === undefined || walk.seen.has(real)) return;
  walk.seen.add(real);
  // Directories we may not read (other users' homes) are skipped: the scan is best effort.
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const names = new Set(entries.map((e) => e.name));
  if (names.has('wp-settings.php') || (names.has('wp-config.php') && names.has('wp-content'))) walk.found.push(dir);
  if (depth >= walk.maxDepth) return;
  const subdirs = entries.filter((e) => !SKIP_DIRS.has(e.name) && (e.isDirectory() || e.isSymbolicLink()));
  // Symlinks first: a site reached both ways is listed under the link (e.g. a deploy's
  // current -> releases/42), which stays valid when the target is replaced.
  const order = (e: Dirent) => `${e.isSymbolicLink() ? 0 : 1}${e.name}`;
  for (const e of subdirs.sort((a, b) => (order(a) < order(b) ? -1 : 1))) {
    const path = join(dir, e.name);
    if (e.isSymbolicLink() && !(await stat(path).catch(() => undefined))?.isDirectory()) continue;
    await walkDir(walk, path, depth + 1);
  }
}

async function readSite(path: string): Promise<FoundSite> {
  const site: FoundSite = { name: '', path };
  try {
    site.wpVersion = await readWpVersion(path);
  } catch {
    // Core may live elsewhere (wp-config.php + wp-content here, core in a subdirectory).
  }
  try {
    // As a backup reads it: a wp-config.php linking outside the site (to another site's) is not read.
    const config = await readSiteConfig(path);
    site.configFile = config.file;
    site.dbName = config.dbName;
    site.dbHost = config.dbHost.raw;
    site.tablePrefix = config.tablePrefix;
  } catch (err) {
    site.error = describe(err);
  }
  return site;
}

/**
 * WordPress core in a subdirectory (/site/wp) loads /site/wp-config.php, and /site (with
 * wp-content) is found too: one site, listed once, at the outer directory.
 */
function dropSharedConfigs(sites: FoundSite[]): FoundSite[] {
  const byConfig = new Map<string, FoundSite>();
  const out: FoundSite[] = [];
  for (const site of [...sites].sort((a, b) => a.path.length - b.path.length)) {
    const first = site.configFile ? byConfig.get(site.configFile) : undefined;
    if (!first) {
      if (site.configFile) byConfig.set(site.configFile, site);
      out.push(site);
    } else {
      first.wpVersion ??= site.wpVersion;
    }
  }
  return out;
}

// Path segments that say how a server is laid out, not which site it is.
const GENERIC = new Set(['var', 'srv', 'opt', 'usr', 'local', 'share', 'home', 'www', 'http', 'html', 'htdocs', 'httpdocs', 'public_html', 'public', 'web', 'webroot', 'wordpress', 'wp', 'current', 'vhosts', 'domains', 'sites', 'webapps', 'nginx', 'apache', 'apache2']);

/** The path's meaningful segments, innermost first. */
function meaningfulSegments(path: string): string[] {
  return path
    .split(sep)
    .filter((s) => s && !GENERIC.has(s.toLowerCase()))
    .reverse();
}

/** Names each site after its innermost meaningful segment, adding outer ones while names clash. */
export function nameSites(sites: FoundSite[], hostname: string): void {
  const segs = sites.map((s) => meaningfulSegments(s.path));
  const used = sites.map(() => 1);
  const nameOf = (i: number) => {
    const parts = (segs[i] ?? []).slice(0, used[i]).reverse();
    return parts.length ? parts.join('-') : hostname || 'site';
  };
  for (let round = 0; round < 10; round++) {
    const names = sites.map((_, i) => nameOf(i));
    const clashing = names.map((n, i) => names.indexOf(n) !== names.lastIndexOf(n) && (used[i] ?? 1) < (segs[i]?.length ?? 0));
    if (!clashing.some(Boolean)) break;
    clashing.forEach((c, i) => {
      if (c) used[i] = (used[i] ?? 1) + 1;
    });
  }
  const count = new Map<string, number>();
  sites.forEach((site, i) => {
    const base = nameOf(i);
    const n = (count.get(base) ?? 0) + 1;
    count.set(base, n);
    site.name = n === 1 ? base : `${base}-${n}`; // still equal: number them in path order
  });
}
