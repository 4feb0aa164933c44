import { lchown, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { badInput, describe, failure, kindOf, throwIfStopped } from '../errors.ts';
import type { WpConfig } from '../wordpress/wp-config.ts';
import { locateArchive, type SourceOptions } from './archive-source.ts';
import { extractArchive, type ExtractResult } from './extract.ts';
import type { Manifest } from './manifest.ts';
import type { DbTarget } from './mysql.ts';
import { formatBytes, NullProgress, type Progress } from './progress.ts';
import { pointConfigAt } from './restore-config.ts';
import { checkDatabase, importDb, namedDbTarget, type NamedDb } from './restore-db.ts';
import { makeStaging, openSite, removeStaging, type DirHandle } from './restore-staging.ts';
import { dbTarget, pathExists, readSiteConfig } from './site.ts';
import { ProgressTracker } from './tracker.ts';

// Restore: check the target database, stream the archive into a staging dir next to the site
// (through TarGuard: see tar-guard.ts), check it, import the database, then swap wp-content in
// with a rename. The old wp-content stays in place until the import has succeeded, so a failed
// restore leaves the site's files as they were. Runs as root on a node: the archive is treated
// as hostile (no client commands, no owners from it, no setuid, no links out of wp-content).

export const RESTORE_STEPS = ['download', 'verify', 'import_db', 'swap_files', 'cleanup'] as const;
export type RestoreStep = (typeof RESTORE_STEPS)[number];

export interface RestoreOptions extends SourceOptions {
  archive: string;
  sitePath: string;
  /** The database to restore into, for a site without a wp-config.php of its own. */
  db?: NamedDb;
  /** The archive's sha256 as recorded at upload (the server's download reply): checked before the import. */
  sha256?: string;
  /** Allow importing into a database that already has tables. */
  force?: boolean;
  /** Keep the replaced wp-content as wp-content.wpbackup-old-<time> instead of deleting it. */
  keepOld?: boolean;
  progress?: Progress<RestoreStep>;
}

export interface RestoreResult {
  sitePath: string;
  database: string;
  manifest: Manifest;
  oldWpContent: string | null;
  /** sha256 of the archive as read. */
  sha256: string;
  warnings: string[];
}

interface Owner {
  uid: number;
  gid: number;
}

/** The target's own wp-config.php, read as a backup reads it: a link to another site's config must not aim the import at that site's database. */
async function targetConfig(sitePath: string): Promise<WpConfig | undefined> {
  try {
    return await readSiteConfig(sitePath);
  } catch (err) {
    if (kindOf(err) === 'bad_input' && !(await pathExists(join(sitePath, 'wp-config.php')))) return undefined;
    throw err;
  }
}

/** The site's own database, or the one named; never the archive's. */
function chooseDb(sitePath: string, config: WpConfig | undefined, named: NamedDb | undefined): DbTarget {
  if (config && named) {
    throw badInput(`${sitePath} has a wp-config.php (${config.file}, database '${config.dbName}'): --db-name and the other --db-* options are only for a site without one`, 'Drop the --db-* options to restore into that database, or edit wp-config.php first');
  }
  if (config) return dbTarget(config);
  if (!named) {
    throw badInput(
      `${sitePath} has no wp-config.php, so the database to restore into must be named: the archive's own wp-config.php names the database of the site it came from, which is never used`,
      'Pass --db-name, --db-user and --db-password-file FILE (mode 0600) or --db-password-stdin, and --db-host if the database is not on localhost',
    );
  }
  return namedDbTarget(named);
}

/** Files the restore creates belong to the site's owner; nothing to change unless running as root. */
async function siteOwner(site: DirHandle): Promise<Owner | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const st = await site.stat();
  return st.uid === 0 && st.gid === 0 ? undefined : { uid: st.uid, gid: st.gid };
}

async function readManifest(staging: string): Promise<Manifest> {
  let m: Manifest;
  try {
    m = JSON.parse(await readFile(join(staging, 'manifest.json'), 'utf8')) as Manifest;
  } catch (err) {
    throw badInput('The archive has no readable manifest.json: it is not a complete wpbackup archive', 'Check that the backup finished, or restore by hand (see README)', err);
  }
  if (typeof m?.database?.sha256 !== 'string' || typeof m.site?.table_prefix !== 'string') {
    throw badInput("The archive's manifest.json lacks database.sha256 or site.table_prefix: it is not a wpbackup manifest", 'Restore by hand (see README) if you trust this archive');
  }
  return m;
}

/** The checks between extraction and import: the whole archive, the manifest, database.sql. */
async function verify(staging: string, extracted: ExtractResult, o: RestoreOptions, config: WpConfig | undefined, warnings: string[]): Promise<{ manifest: Manifest; dump: string }> {
  checkSha256(extracted.sha256, o.sha256);
  const manifest = await readManifest(staging);
  const dump = join(staging, 'database.sql');
  if (!extracted.databaseSha256 || !(await pathExists(dump))) throw badInput('The archive holds no database.sql: it is not a complete wpbackup archive', 'Check that the backup finished');
  if (extracted.databaseSha256 !== manifest.database.sha256) throw failure('database.sql does not match the sha256 in manifest.json: the archive is damaged');
  if (!(await pathExists(join(staging, 'wp-content')))) throw failure('The archive holds no wp-content directory');
  const prefix = config?.tablePrefix;
  if (prefix !== undefined && prefix !== manifest.site.table_prefix) {
    warnings.push(`the site's wp-config.php uses $table_prefix '${prefix}' but the backup's tables use '${manifest.site.table_prefix}': set $table_prefix = '${manifest.site.table_prefix}'; in wp-config.php`);
  }
  return { manifest, dump };
}

function checkSha256(actual: string, expected: string | undefined): void {
  if (expected === undefined || actual === expected.toLowerCase()) return;
  throw failure(`The archive's sha256 is ${actual}, but ${expected.toLowerCase()} was recorded when it was uploaded: it was altered or damaged since; nothing was imported`, undefined, 'Do not restore this copy; pick another backup');
}

interface SwapContext {
  /** Paths through the dirs' descriptors (see restore-staging.ts). */
  staging: string;
  site: string;
  sitePath: string;
  keepOld?: boolean;
  owner?: Owner;
  /** The site's own wp-config.php (its own or its parent's), if it has one. */
  config?: WpConfig;
  named?: NamedDb;
  warnings: string[];
}

/** Moves wp-content, wp-config.php and .htaccess in; returns where the old wp-content went. */
async function swapFiles(s: SwapContext): Promise<string | null> {
  const live = join(s.site, 'wp-content');
  let old: string | null = null;
  if (await pathExists(live)) {
    old = `wp-content.wpbackup-old-${Date.now()}`;
    await rename(live, join(s.site, old));
  }
  await rename(join(s.staging, 'wp-content'), live);
  await installHtaccess(s);
  await installWpConfig(s);
  if (old && !s.keepOld) {
    await rm(join(s.site, old), { recursive: true, force: true });
    return null;
  }
  return old && join(s.sitePath, old);
}

async function installHtaccess(s: SwapContext): Promise<void> {
  const src = join(s.staging, '.htaccess');
  if (!(await pathExists(src))) return;
  const dest = join(s.site, '.htaccess');
  if (await pathExists(dest)) return void s.warnings.push("kept the site's own .htaccess; the archive's copy was not used");
  await rename(src, dest);
  if (s.owner) await lchown(dest, s.owner.uid, s.owner.gid);
}

async function installWpConfig(s: SwapContext): Promise<void> {
  const src = join(s.staging, 'wp-config.php');
  if (!(await pathExists(src))) return;
  if (s.config) return void s.warnings.push(`kept the site's own wp-config.php (${s.config.file}); the archive's copy was not used`);
  if (!s.named) return;
  const pointed = pointConfigAt(await readFile(src), s.named);
  if (!pointed) {
    s.warnings.push(`the archive's wp-config.php could not be pointed at database '${s.named.name}' (its DB_* settings are not plain define() calls), so it was not installed: write ${join(s.sitePath, 'wp-config.php')} yourself`);
    return;
  }
  const dest = join(s.site, 'wp-config.php');
  const mode = (await stat(src)).mode & 0o664;
  await writeFile(dest, pointed, { mode, flag: 'wx' });
  if (s.owner) await lchown(dest, s.owner.uid, s.owner.gid);
  s.warnings.push(`installed the archive's wp-config.php with DB_NAME, DB_USER, DB_PASSWORD and DB_HOST set to database '${s.named.name}'`);
}

export async function runRestore(o: RestoreOptions): Promise<RestoreResult> {
  const tracker = new ProgressTracker<RestoreStep>(o.progress ?? new NullProgress<RestoreStep>());
  const sitePath = resolve(o.sitePath);
  const warnings: string[] = [];
  let site: DirHandle | undefined;
  let stagingDir: DirHandle | undefined;
  let secrets: string | undefined;
  let error: unknown;
  try {
    tracker.stage('download', `Checking ${sitePath}`);
    const location = await locateArchive(o.archive, o);
    site = await openSite(sitePath);
    const config = await targetConfig(sitePath);
    const db = chooseDb(sitePath, config, o.db);
    const owner = await siteOwner(site);
    stagingDir = await makeStaging(sitePath, site);
    const staging = stagingDir.ref;
    // The client's option files (the password) go where only this process can reach them by name.
    secrets = await mkdtemp(join(tmpdir(), 'wpbackup-restore-'));
    await checkDatabase(secrets, db, { force: o.force, named: !config });
    const src = await location.open();
    tracker.detail(`Downloading and extracting ${src.name}`, true);
    const extracted = await extractArchive(src.stream, stagingDir, {
      signal: o.signal,
      owner,
      onBytes: (n) => {
        tracker.bytes(n, src.size ?? n);
        tracker.detail(`Extracted ${formatBytes(n)}${src.size ? ` of ${formatBytes(src.size)}` : ''}`);
      },
    });
    warnings.push(...extracted.warnings);
    throwIfStopped(o.signal);
    tracker.stage('verify', 'Checking the archive, the manifest and database.sql');
    const { manifest, dump } = await verify(staging, extracted, o, config, warnings);
    tracker.stage('import_db', `Importing database.sql (${formatBytes(manifest.database.bytes)}) into '${db.name}'`);
    await importDb(secrets, db, dump, o.signal);
    throwIfStopped(o.signal);
    tracker.stage('swap_files', 'Moving the restored wp-content into place');
    const oldWpContent = await swapFiles({ staging, site: site.ref, sitePath, keepOld: o.keepOld, owner, config, named: o.db, warnings });
    return { sitePath, database: db.name, manifest, oldWpContent, sha256: extracted.sha256, warnings };
  } catch (err) {
    error = err;
    throw err;
  } finally {
    tracker.stage('cleanup', 'Removing the staging dir');
    if (secrets) await rm(secrets, { recursive: true, force: true });
    if (stagingDir) await removeStaging(stagingDir);
    await site?.close();
    if (error === undefined) tracker.finish('completed', 'Restore complete', null);
    else if (kindOf(error) === 'stopped' || o.signal?.aborted) tracker.finish('stopped', 'Stopped; staging removed, site files unchanged', null);
    else tracker.finish('failed', 'Failed; staging removed', describe(error));
  }
}
