import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { badInput, describe, failure, kindOf, throwIfStopped } from '../errors.ts';
import { readWpConfig, type WpConfig } from '../wordpress/wp-config.ts';
import { openArchive, type SourceOptions } from './archive-source.ts';
import { startChild } from './child.ts';
import { extractArchive } from './extract.ts';
import type { Manifest } from './manifest.ts';
import { classifyDbError, findProgram, query, writeDefaultsFile, type DbTarget } from './mysql.ts';
import { formatBytes, NullProgress, type Progress } from './progress.ts';
import { dbTarget, pathExists } from './site.ts';
import { ProgressTracker } from './tracker.ts';

// Restore: stream the archive into a staging dir next to the site, check it, import the
// database, then swap wp-content in with a rename. The old wp-content stays in place until
// the import has succeeded, so a failed restore leaves the site's files as they were.

export const RESTORE_STEPS = ['download', 'verify', 'import_db', 'swap_files', 'cleanup'] as const;
export type RestoreStep = (typeof RESTORE_STEPS)[number];

export interface RestoreOptions extends SourceOptions {
  archive: string;
  sitePath: string;
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
  warnings: string[];
}

async function targetConfig(sitePath: string): Promise<WpConfig | undefined> {
  try {
    return await readWpConfig(sitePath);
  } catch (err) {
    if (kindOf(err) === 'bad_input' && !(await pathExists(join(sitePath, 'wp-config.php')))) return undefined;
    throw err;
  }
}

async function tableCount(dir: string, db: DbTarget): Promise<number> {
  const defaults = await writeDefaultsFile(dir, db, 'check.cnf');
  const rows = await query(defaults, db, 'SELECT COUNT(*) FROM information_schema.TABLES WHERE table_schema = DATABASE();');
  await rm(defaults, { force: true });
  return Number(rows[0]?.[0] ?? 0);
}

async function refuseNonEmpty(dir: string, db: DbTarget, force: boolean | undefined): Promise<void> {
  const n = await tableCount(dir, db);
  if (n > 0 && !force) throw badInput(`Database '${db.name}' already has ${n} tables`, 'Restore into an empty database, or pass --force to overwrite the tables the backup holds');
}

/** Staging beside the site (same filesystem, so the swap is a rename) but outside its docroot. */
async function makeStaging(sitePath: string): Promise<string> {
  const parent = dirname(sitePath);
  const sameFs = (await stat(parent)).dev === (await stat(sitePath)).dev;
  const base = sameFs ? parent : sitePath;
  const dir = join(base, `.wpbackup-restore-${basename(sitePath)}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  return dir;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

async function readManifest(staging: string): Promise<Manifest> {
  try {
    return JSON.parse(await readFile(join(staging, 'manifest.json'), 'utf8')) as Manifest;
  } catch (err) {
    throw badInput('The archive has no readable manifest.json: it is not a complete wpbackup archive', 'Check that the backup finished, or restore by hand (see README)', err);
  }
}

async function importDb(dir: string, db: DbTarget, dump: string, signal?: AbortSignal): Promise<void> {
  const client = await findProgram('client');
  const defaults = await writeDefaultsFile(dir, db, 'import.cnf');
  const child = startChild(client, [`--defaults-extra-file=${defaults}`, '--default-character-set=utf8mb4', `--database=${db.name}`], { signal, stdio: ['pipe', 'ignore', 'pipe'] });
  try {
    await Promise.all([pipeline(createReadStream(dump), child.proc.stdin!), child.done]);
  } catch (err) {
    child.kill();
    if (signal?.aborted) throw err;
    throw classifyDbError(child.stderrTail(), db, err);
  } finally {
    await rm(defaults, { force: true });
  }
}

/** Moves the restored files in; returns where the old wp-content went. */
async function swapFiles(staging: string, sitePath: string, keepOld: boolean | undefined, warnings: string[]): Promise<string | null> {
  const live = join(sitePath, 'wp-content');
  let old: string | null = null;
  if (await pathExists(live)) {
    old = join(sitePath, `wp-content.wpbackup-old-${Date.now()}`);
    await rename(live, old);
  }
  await rename(join(staging, 'wp-content'), live);
  for (const f of ['wp-config.php', '.htaccess']) {
    const src = join(staging, f);
    if (!(await pathExists(src))) continue;
    if (await pathExists(join(sitePath, f))) warnings.push(`kept the site's own ${f}; the archive's copy was not used`);
    else await rename(src, join(sitePath, f));
  }
  if (old && !keepOld) {
    await rm(old, { recursive: true, force: true });
    return null;
  }
  return old;
}

export async function runRestore(o: RestoreOptions): Promise<RestoreResult> {
  const tracker = new ProgressTracker<RestoreStep>(o.progress ?? new NullProgress<RestoreStep>());
  const sitePath = resolve(o.sitePath);
  await mkdir(sitePath, { recursive: true });
  const warnings: string[] = [];
  let staging: string | undefined;
  let error: unknown;
  try {
    tracker.stage('download', `Checking ${sitePath}`);
    const target = await targetConfig(sitePath);
    let db = target ? dbTarget(target) : undefined;
    staging = await makeStaging(sitePath);
    if (db) await refuseNonEmpty(staging, db, o.force);
    const src = await openArchive(o.archive, o);
    tracker.detail(`Downloading and extracting ${src.name}`, true);
    await extractArchive(src.stream, staging, {
      signal: o.signal,
      onBytes: (n) => {
        tracker.bytes(n, src.size ?? n);
        tracker.detail(`Extracted ${formatBytes(n)}${src.size ? ` of ${formatBytes(src.size)}` : ''}`);
      },
    });
    throwIfStopped(o.signal);
    tracker.stage('verify', 'Checking the manifest and database.sql');
    const manifest = await readManifest(staging);
    const dump = join(staging, 'database.sql');
    if ((await sha256File(dump)) !== manifest.database.sha256) throw failure('database.sql does not match the sha256 in manifest.json: the archive is damaged');
    if (!(await pathExists(join(staging, 'wp-content')))) throw failure('The archive holds no wp-content directory');
    if (target && target.tablePrefix !== manifest.site.table_prefix) {
      warnings.push(`the site's wp-config.php uses $table_prefix '${target.tablePrefix}' but the backup's tables use '${manifest.site.table_prefix}': set $table_prefix = '${manifest.site.table_prefix}'; in wp-config.php`);
    }
    if (!db) {
      db = dbTarget(await readWpConfig(staging));
      await refuseNonEmpty(staging, db, o.force);
      warnings.push(`used the archive's wp-config.php (database '${db.name}')`);
    }
    tracker.stage('import_db', `Importing database.sql (${formatBytes(manifest.database.bytes)}) into '${db.name}'`);
    await importDb(staging, db, dump, o.signal);
    throwIfStopped(o.signal);
    tracker.stage('swap_files', 'Moving the restored wp-content into place');
    const oldWpContent = await swapFiles(staging, sitePath, o.keepOld, warnings);
    return { sitePath, database: db.name, manifest, oldWpContent, warnings };
  } catch (err) {
    error = err;
    throw err;
  } finally {
    tracker.stage('cleanup', 'Removing the staging dir');
    if (staging) await rm(staging, { recursive: true, force: true });
    if (error === undefined) tracker.finish('completed', 'Restore complete', null);
    else if (kindOf(error) === 'stopped' || o.signal?.aborted) tracker.finish('stopped', 'Stopped; staging removed, site files unchanged', null);
    else tracker.finish('failed', 'Failed; staging removed', describe(error));
  }
}
