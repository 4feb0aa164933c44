import { describe, kindOf, throwIfStopped, WpbError } from '../errors.ts';
import type { PendingUpload, Storage } from '../storage/storage.ts';
import { archiveFileName, archiveKey } from './archive-name.ts';
import { DEFAULT_EXCLUDES } from './excludes.ts';
import { MANIFEST_FORMAT, toolVersion, wpContentSummary, type Manifest } from './manifest.ts';
import { writeDefaultsFile, type ClientRun } from './mysql.ts';
import { clientRunFor, readerFor, type RunAs } from './privileges.ts';
import { startReader } from './reader-process.ts';
import { formatBytes, NullProgress, STAGES, type Progress, type Stage } from './progress.ts';
import { cleanOrphans, createRunDir, type OrphanReport, type RunDir } from './run-dir.ts';
import { defaultSiteName, loadSite, type SiteInfo } from './site.ts';
import { siteUrls } from './site-url.ts';
import { dumpDatabase, estimateDbBytes, type DumpResult } from './stages/backup-db.ts';
import { bundleAndUpload } from './stages/create-bundle.ts';
import type { TailMember } from './frame-tail.ts';
import type { TarSource, TarStats } from './tar-stream.ts';
import { ProgressTracker } from './tracker.ts';

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
  /** Compress already-compressed media too (JPEG, MP4, ZIP...) instead of storing it as is. */
  compressAll?: boolean;
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

/** Stages are reported in the spec's order even though the dump and wp-content stream at once. */
class StageClock {
  private readonly ctx: Ctx;
  readonly done = { dump: false, tree: false, bundle: false };
  constructor(ctx: Ctx) {
    this.ctx = ctx;
  }
  advance(detail: (stage: Stage) => string): void {
    const want: Stage = !this.done.dump ? 'backup_db' : !this.done.tree ? 'backup_files' : !this.done.bundle ? 'create_bundle' : 'upload_remote';
    for (let i = STAGES.indexOf(this.ctx.stage) + 1; i <= STAGES.indexOf(want); i++) {
      const stage = STAGES[i] as Stage;
      enterStage(this.ctx, stage, detail(stage));
    }
  }
}

type Result = Omit<BackupResult, 'startedAt' | 'finishedAt'>;

/** Sources for the bundle pipe, made once it has its signal (see BundleOptions.sources). */
type SourcesFor = (signal: AbortSignal, storedFd?: number) => { sources: TarSource[]; running: Promise<unknown> };

async function stages(ctx: Ctx, site: SiteInfo, runDir: RunDir, orphans: OrphanReport): Promise<Result> {
  // Run as root on a site someone else owns, the readers and the database clients run as its owner.
  const owner = readerFor(site.owner);
  const client = await clientRunFor(await writeDefaultsFile(runDir.path, site.db), owner);
  try {
    return await stagesAs(ctx, site, runDir, orphans, owner, client.run);
  } finally {
    await client.close();
  }
}

async function stagesAs(ctx: Ctx, site: SiteInfo, runDir: RunDir, orphans: OrphanReport, owner: RunAs | undefined, client: ClientRun): Promise<Result> {
  const { o, tracker, signal } = ctx;
  // Two quick queries, which also check the credentials with a clear message before anything starts.
  const [dbEstimate, urls] = await Promise.all([estimateDbBytes(client, site.db, signal), siteUrls(client, site, signal)]);
  const patterns = [...(o.defaultExcludes === false ? [] : DEFAULT_EXCLUDES), ...(o.excludes ?? [])];
  // The reader sizes wp-content in its first pass; until then the total is the database's.
  const totals = { files: 0, bytes: 0 };
  const now = o.now?.() ?? new Date();
  const siteName = o.siteName ?? defaultSiteName(urls.siteurl, site.path);
  const siteUuid = typeof o.siteUuid === 'string' ? o.siteUuid : o.siteUuid(site.path);
  const fileName = archiveFileName(siteName, now);
  const key = archiveKey(o.nodeUuid, siteUuid, fileName);

  const clock = new StageClock(ctx);
  const bytes = { dumped: 0, dumpTotal: Math.max(dbEstimate, 1), tarred: 0, stored: 0 };
  // The estimate (information_schema) can be far off, e.g. right after a bulk load: never below what was dumped.
  const total = (): number => Math.max(bytes.dumpTotal, bytes.dumped) * 2 + Math.max(totals.bytes, bytes.tarred);
  const show = (force = false): void => {
    tracker.bytes(bytes.dumped + bytes.tarred, total());
    const lead = ctx.stage === 'backup_db' ? `Dumping database ${site.db.name} (${formatBytes(bytes.dumped)})` : ctx.stage === 'backup_files' ? `Reading wp-content (${formatBytes(bytes.tarred)} of ${formatBytes(totals.bytes)})` : `Adding database.sql and manifest.json`;
    tracker.detail(`${lead}; uploaded ${formatBytes(bytes.stored)}`, force);
  };
  tracker.detail(`Dumping database ${site.db.name} while wp-content streams`, true);
  const dump = dumpDatabase(runDir.path, client, site.db, { signal, nice: o.nice, zstdLevel: o.zstdLevel ?? 3, onBytes: (n) => ((bytes.dumped = n), show()) });
  // Observed at once so a failure is never unhandled; the bundle awaits it before database.sql.
  dump.catch(() => {});
  const dumped = dump.then((d) => {
    bytes.dumped = bytes.dumpTotal = d.bytes;
    tracker.detail(`Database dumped (${formatBytes(d.bytes)})`, true);
    clock.done.dump = true;
    clock.advance(() => `Reading wp-content (${formatBytes(bytes.tarred)} of ${formatBytes(totals.bytes)})`);
    return d;
  });
  // A failed dump stops the wp-content stream at once, and its error is the one reported.
  const dumpFailed = new AbortController();
  dumped.catch(() => dumpFailed.abort());
  const b: BundleInput = { dump: dumped, patterns, urls, runDir, orphans, siteName, siteUuid, fileName, key, now };
  const onTarBytes = (n: number): void => ((bytes.tarred += n), show());
  const sources: SourcesFor = (sig, storedFd) => {
    const job = { sitePath: site.path, wpContent: site.wpContent, patterns, storeMedia: storedFd !== undefined, configFiles: configFiles(o, site), runAs: owner };
    const r = startReader(job, { signal: sig, nice: o.nice, storedFd, onBytes: onTarBytes, onTotals: (t) => Object.assign(totals, t) });
    return { sources: [r.tree, r.config], running: r.done };
  };
  const hooks: BundleHooks = {
    signal: signal ? AbortSignal.any([signal, dumpFailed.signal]) : dumpFailed.signal,
    sources,
    total: total(),
    onTarBytes,
    onStoredBytes: (n) => ((bytes.stored = n), show()),
    onSourceDone: (name) => {
      if (name !== 'wp-content') return;
      clock.done.tree = true;
      clock.advance(() => 'Adding database.sql and manifest.json');
    },
    onBundled: () => {
      clock.done.bundle = true;
      clock.advance(() => `Bundle complete; finishing the upload to ${o.storage.location}`);
    },
  };
  try {
    return await bundle(ctx, site, b, hooks);
  } catch (err) {
    if (dumpFailed.signal.aborted && !signal?.aborted) throw await dumped.then(() => err, (dumpErr: unknown) => dumpErr);
    throw err;
  }
}

function configFiles(o: BackupOptions, site: SiteInfo): { name: string; path: string }[] {
  if (o.includeConfigFiles === false) return [];
  return [{ name: 'wp-config.php', path: site.config.file }, ...(site.htaccess ? [{ name: '.htaccess', path: site.htaccess }] : [])];
}

interface BundleInput {
  dump: Promise<DumpResult>;
  patterns: string[];
  urls: { siteurl: string | null; home: string | null };
  runDir: RunDir;
  orphans: OrphanReport;
  siteName: string;
  siteUuid: string;
  fileName: string;
  key: string;
  now: Date;
}

interface BundleHooks {
  signal: AbortSignal;
  sources: SourcesFor;
  total: number;
  onTarBytes: (n: number) => void;
  onStoredBytes: (n: number) => void;
  onSourceDone: (name: string) => void;
  onBundled: () => void;
}

async function bundle(ctx: Ctx, site: SiteInfo, b: BundleInput, h: BundleHooks): Promise<Result> {
  const { o, tracker } = ctx;
  let manifest: Manifest | undefined;
  // The dump, compressed as it was made, and the manifest, which describes everything before it.
  const tail = async (stats: TarStats): Promise<TailMember[]> => {
    const dump = await b.dump;
    manifest = buildManifest({ ...b, site, dump, stats, configFiles: configFiles(o, site).map((c) => c.name), nodeUuid: o.nodeUuid });
    return [
      { kind: 'compressed', name: 'database.sql', path: dump.path, size: dump.bytes, mode: 0o600 },
      { kind: 'generated', name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest, null, 2) + '\n') },
    ];
  };
  const { put } = await bundleAndUpload({
    storage: o.storage,
    key: b.key,
    workDir: b.runDir.path,
    sources: h.sources,
    tail,
    zstdLevel: o.zstdLevel ?? 3,
    storeMedia: !o.compressAll,
    nice: o.nice,
    sizeHint: h.total,
    limitBytesPerSec: o.limitUploadBytesPerSec,
    signal: h.signal,
    onTarBytes: h.onTarBytes,
    onStoredBytes: h.onStoredBytes,
    onSourceDone: h.onSourceDone,
    onUploadStarted: (p) => b.runDir.recordUpload({ ...p, destination: o.destination }),
    onBundled: h.onBundled,
  });
  if (!manifest) throw new WpbError('failed', 'The archive was stored without its manifest');
  tracker.detail(`Uploaded and verified ${b.fileName} (${formatBytes(put.size)})`, true);
  return { key: b.key, location: `${o.storage.location.replace(/\/$/, '')}/${b.key}`, fileName: b.fileName, size: put.size, sha256: put.sha256, manifest, orphans: b.orphans };
}

interface ManifestInput {
  siteName: string;
  siteUuid: string;
  nodeUuid: string;
  site: SiteInfo;
  dump: DumpResult;
  patterns: string[];
  urls: { siteurl: string | null; home: string | null };
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
    site: { name: m.siteName, uuid: m.siteUuid, node_uuid: m.nodeUuid, path: m.site.path, siteurl: m.urls.siteurl, home: m.urls.home, wp_version: m.site.wpVersion, table_prefix: c.tablePrefix, db_name: c.dbName, charset: c.charset, collate: c.collate },
    database: { file: 'database.sql', bytes: m.dump.bytes, sha256: m.dump.sha256, dump_tool: m.dump.tool },
    wp_content: wpContentSummary(m.stats, m.patterns),
    config_files: m.configFiles,
  };
}

