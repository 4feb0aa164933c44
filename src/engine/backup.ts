import { describe, kindOf, throwIfStopped, WpbError } from '../errors.ts';
import type { PendingUpload, Storage } from '../storage/storage.ts';
import { archiveFileName, archiveKey } from './archive-name.ts';
import { DEFAULT_EXCLUDES, ExcludeMatcher } from './excludes.ts';
import { MANIFEST_FORMAT, toolVersion, wpContentSummary, type Manifest } from './manifest.ts';
import { query, sqlIdent, writeDefaultsFile } from './mysql.ts';
import { formatBytes, NullProgress, type Progress, type Stage } from './progress.ts';
import { cleanOrphans, createRunDir, type OrphanReport, type RunDir } from './run-dir.ts';
import { defaultSiteName, loadSite, type SiteInfo } from './site.ts';
import { dumpDatabase, estimateDbBytes, type DumpResult } from './stages/backup-db.ts';
import { bundleAndUpload } from './stages/create-bundle.ts';
import type { TarSource, TarStats } from './tar-stream.ts';
import { ProgressTracker } from './tracker.ts';
import { measureTree } from './walk.ts';

// The backup: five stages in the spec's order, with cleanup on every path out.

export interface BackupOptions {
  sitePath: string;
  storage: Storage;
  /** Where the storage points (a path or s3:// URL), recorded so a crashed run can be cleaned up. */
  destination: string;
  nodeUuid: string;
  /** Called with the site's name once known, for a stable per-site uuid. */
  siteUuid: string | ((sitePath: string) => string);
  /** Where run dirs live (the data dir's tmp/). */
  tempBase: string;
  siteName?: string;
  excludes?: string[];
  defaultExcludes?: boolean;
  includeConfigFiles?: boolean;
  zstdLevel?: number;
  /** Upload bandwidth cap in bytes per second. */
  limitUploadBytesPerSec?: number;
  /** Nice value for child processes; 0 for none. */
  nice?: number;
  signal?: AbortSignal;
  progress?: Progress;
  /** Storage for a destination recorded by a crashed run, to abort its upload. */
  storageFor?: (destination: string) => Storage;
  now?: () => Date;
}

export interface BackupResult {
  key: string;
  location: string;
  fileName: string;
  size: number;
  sha256: string;
  manifest: Manifest;
  orphans: OrphanReport;
  startedAt: string;
  finishedAt: string;
}

interface Ctx {
  o: BackupOptions;
  tracker: ProgressTracker;
  signal: AbortSignal | undefined;
  stage: Stage;
}

async function siteUrls(defaults: string, site: SiteInfo, signal?: AbortSignal): Promise<{ siteurl: string | null; home: string | null }> {
  const table = sqlIdent(`${site.config.tablePrefix}options`);
  try {
    const rows = await query(defaults, site.db, `SELECT option_name, option_value FROM ${table} WHERE option_name IN ('siteurl', 'home');`, signal);
    const get = (k: string): string | null => rows.find((r) => r[0] === k)?.[1] ?? null;
    return { siteurl: get('siteurl'), home: get('home') };
  } catch (err) {
    if (err instanceof WpbError && err.kind === 'failed') return { siteurl: null, home: null };
    throw err;
  }
}

function enterStage(ctx: Ctx, stage: Stage, detail: string): void {
  ctx.stage = stage;
  ctx.tracker.stage(stage, detail);
}

async function abortRecorded(o: BackupOptions, upload: PendingUpload & { destination: string }): Promise<void> {
  const storage = upload.destination === o.destination ? o.storage : o.storageFor?.(upload.destination);
  if (!storage) throw new Error(`no storage configured for ${upload.destination}`);
  await storage.abortPending(upload);
}

export async function runBackup(o: BackupOptions): Promise<BackupResult> {
  const ctx: Ctx = { o, tracker: new ProgressTracker(o.progress ?? new NullProgress()), signal: o.signal, stage: 'backup_db' };
  const startedAt = (o.now?.() ?? new Date()).toISOString();
  let runDir: RunDir | undefined;
  let failure: unknown;
  try {
    enterStage(ctx, 'backup_db', 'Checking the site, the database and the storage');
    const site = await loadSite(o.sitePath);
    await o.storage.preflight();
    throwIfStopped(ctx.signal);
    const orphans = await cleanOrphans(o.tempBase, (u) => abortRecorded(o, u));
    runDir = await createRunDir(o.tempBase);
    const result = await stages(ctx, site, runDir, orphans);
    return { ...result, startedAt, finishedAt: new Date().toISOString() };
  } catch (err) {
    failure = err;
    if (err instanceof WpbError) err.stage ??= ctx.stage;
    throw err;
  } finally {
    const outcome = ctx.tracker.current.stage_detail;
    enterStage(ctx, 'cleanup', 'Removing temp files');
    await runDir?.remove();
    finish(ctx, failure, outcome);
  }
}

/** The last event: status, and for a success the stored archive, since cleanup said nothing new. */
function finish(ctx: Ctx, failure: unknown, outcome: string): void {
  if (failure === undefined) return ctx.tracker.finish('completed', `${outcome}; temp files removed`, null);
  const kind = ctx.signal?.aborted ? 'stopped' : kindOf(failure);
  const msg = describe(failure);
  if (kind === 'stopped') ctx.tracker.finish('stopped', 'Stopped; temp files removed', null);
  else ctx.tracker.finish('failed', 'Failed; temp files removed', msg);
}

async function stages(ctx: Ctx, site: SiteInfo, runDir: RunDir, orphans: OrphanReport): Promise<Omit<BackupResult, 'startedAt' | 'finishedAt'>> {
  const { o, tracker, signal } = ctx;
  const defaults = await writeDefaultsFile(runDir.path, site.db);
  const dbEstimate = await estimateDbBytes(defaults, site.db, signal);
  const urls = await siteUrls(defaults, site, signal);
  tracker.detail(`Dumping database ${site.db.name}`, true);
  const dump = await dumpDatabase(runDir.path, defaults, site.db, {
    signal,
    nice: o.nice,
    onBytes: (n) => {
      tracker.bytes(n, Math.max(dbEstimate, n) * 2);
      tracker.detail(`Dumping database ${site.db.name} (${formatBytes(n)})`);
    },
  });
  tracker.detail(`Database dumped (${formatBytes(dump.bytes)})`, true);

  enterStage(ctx, 'backup_files', 'Scanning wp-content');
  const patterns = [...(o.defaultExcludes === false ? [] : DEFAULT_EXCLUDES), ...(o.excludes ?? [])];
  const matcher = new ExcludeMatcher(patterns);
  const totals = await measureTree(site.wpContent, matcher, signal);
  tracker.detail(`wp-content: ${totals.files} files, ${formatBytes(totals.bytes)}${totals.excluded.length ? `, ${totals.excluded.length} excluded paths` : ''}`, true);
  return bundle(ctx, site, { dump, matcher, patterns, filesBytes: totals.bytes, urls, runDir, orphans });
}

interface BundleInput {
  dump: DumpResult;
  matcher: ExcludeMatcher;
  patterns: string[];
  filesBytes: number;
  urls: { siteurl: string | null; home: string | null };
  runDir: RunDir;
  orphans: OrphanReport;
}

async function bundle(ctx: Ctx, site: SiteInfo, b: BundleInput): Promise<Omit<BackupResult, 'startedAt' | 'finishedAt'>> {
  const { o, tracker, signal } = ctx;
  const now = o.now?.() ?? new Date();
  const siteName = o.siteName ?? defaultSiteName(b.urls.siteurl, site.path);
  const siteUuid = typeof o.siteUuid === 'string' ? o.siteUuid : o.siteUuid(site.path);
  const fileName = archiveFileName(siteName, now);
  const key = archiveKey(o.nodeUuid, siteUuid, fileName);
  const configFiles = o.includeConfigFiles === false ? [] : [{ name: 'wp-config.php', path: site.config.file }, ...(site.htaccess ? [{ name: '.htaccess', path: site.htaccess }] : [])];
  let manifest: Manifest | undefined;
  const makeManifest = (stats: TarStats): Buffer => {
    manifest = buildManifest({ siteName, siteUuid, site, b, now, stats, configFiles: configFiles.map((c) => c.name), nodeUuid: o.nodeUuid });
    return Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  };
  const sources: TarSource[] = [
    { kind: 'file', name: 'database.sql', path: b.dump.path },
    { kind: 'tree', name: 'wp-content', root: site.wpContent, matcher: b.matcher },
    ...configFiles.map((c) => ({ kind: 'file' as const, ...c })),
    { kind: 'generated', name: 'manifest.json', data: makeManifest },
  ];
  const dumpDone = b.dump.bytes;
  const total = dumpDone * 2 + b.filesBytes;
  let tarred = 0;
  let stored = 0;
  const show = (): void => {
    tracker.bytes(dumpDone + tarred, total);
    tracker.detail(`Bundled ${formatBytes(tarred)} of ${formatBytes(total - dumpDone)}, uploaded ${formatBytes(stored)}`);
  };
  enterStage(ctx, 'create_bundle', `Bundling to ${fileName} and uploading as it is made`);
  const { put } = await bundleAndUpload({
    storage: o.storage,
    key,
    sources,
    zstdLevel: o.zstdLevel ?? 3,
    nice: o.nice,
    sizeHint: total,
    limitBytesPerSec: o.limitUploadBytesPerSec,
    signal,
    onTarBytes: (n) => {
      tarred += n;
      show();
    },
    onStoredBytes: (n) => {
      stored = n;
      show();
    },
    onUploadStarted: (p) => b.runDir.recordUpload({ ...p, destination: o.destination }),
    onBundled: () => {
      enterStage(ctx, 'upload_remote', `Bundle complete; finishing the upload to ${o.storage.location}`);
    },
  });
  if (!manifest) throw new WpbError('failed', 'The archive was stored without its manifest');
  tracker.detail(`Uploaded and verified ${fileName} (${formatBytes(put.size)})`, true);
  return { key, location: `${o.storage.location.replace(/\/$/, '')}/${key}`, fileName, size: put.size, sha256: put.sha256, manifest, orphans: b.orphans };
}

interface ManifestInput {
  siteName: string;
  siteUuid: string;
  nodeUuid: string;
  site: SiteInfo;
  b: BundleInput;
  now: Date;
  stats: TarStats;
  configFiles: string[];
}

function buildManifest(m: ManifestInput): Manifest {
  const c = m.site.config;
  return {
    format: MANIFEST_FORMAT,
    tool: { name: 'wpbackup', version: toolVersion() },
    created_at: m.now.toISOString(),
    site: { name: m.siteName, uuid: m.siteUuid, node_uuid: m.nodeUuid, path: m.site.path, siteurl: m.b.urls.siteurl, home: m.b.urls.home, wp_version: m.site.wpVersion, table_prefix: c.tablePrefix, db_name: c.dbName, charset: c.charset, collate: c.collate },
    database: { file: 'database.sql', bytes: m.b.dump.bytes, sha256: m.b.dump.sha256, dump_tool: m.b.dump.tool },
    wp_content: wpContentSummary(m.stats, m.b.patterns),
    config_files: m.configFiles,
  };
}

