import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasControlChars, STAGES, stripControlChars, type Stage } from '../api/formats.ts';
import type { AgentJob, FinishRequest, ProgressReport, ScannedSite } from '../api/types.ts';
import { runBackup } from '../engine/backup.ts';
import type { Progress, ProgressEvent } from '../engine/progress.ts';
import { cleanOrphans } from '../engine/run-dir.ts';
import { siteNameFromUrl } from '../engine/site.ts';
import { lookUpSiteUrl } from '../engine/site-url.ts';
import { describe, kindOf, WpbError } from '../errors.ts';
import { silentLogger, type Logger } from '../log.ts';
import { backoffMs } from '../storage/multipart.ts';
import { scanSites } from '../wordpress/discover.ts';
import { AgentHttpError, type AgentClient } from './client.ts';
import { replaceNodeKey } from './identity.ts';
import { PresignedStorage, type PresignedStorageOptions } from './presigned-storage.ts';

// The agent's loop: long-poll the server, run the job it hands out with the backup engine,
// report progress (each stage change at once, otherwise a heartbeat every second, which also
// renews the lease), and stop when a reply says cancel. Up to the node's job limit at once (the
// poll reply says it; 1 until told): the agent polls only while it has a free slot. Each job has
// its own reporter, stop signal, presigned storage and run dir (run-<pid>-<random>), and a
// reset's clean-up leaves the live runs of this process alone.

export interface AgentOptions {
  client: AgentClient;
  dataDir: string;
  signal: AbortSignal;
  /** Where the agent logs (log.ts); nothing by default. */
  logger?: Logger;
  /** Progress report interval; at most 2 s so a short lease stays renewed. */
  heartbeatMs?: number;
  /** Nice value for the engine's children. */
  nice?: number;
  /** Return after one job (tests, cron-style runs). */
  once?: boolean;
  storage?: PresignedStorageOptions;
  /** Upload bandwidth cap in bytes per second (--limit-upload). */
  limitUploadBytesPerSec?: number;
  /** Directories to scan for WordPress sites (--scan-root), at start and every scanEveryMs; none: no scans. */
  scanRoots?: string[];
  /** Default 6 hours. */
  scanEveryMs?: number;
}

export const SCAN_EVERY_MS = 6 * 60 * 60 * 1000;

/**
 * The sites under roots as the server takes them. Missing roots are skipped; never a password.
 * With tempBase, each readable site's siteurl is looked up in its database and the site is
 * named by its host, as `wpbackup backup` names it (so adopting it names its archives the same);
 * otherwise, and where the lookup fails, by its directory.
 */
export async function scanForServer(roots: string[], signal?: AbortSignal, tempBase?: string): Promise<ScannedSite[]> {
  const present: string[] = [];
  for (const root of roots) {
    if ((await stat(resolve(root)).catch(() => undefined))?.isDirectory()) present.push(root);
  }
  if (present.length === 0) return [];
  const found = (await scanSites(present, { signal })).filter((s) => s.path.startsWith('/') && !hasControlChars(s.path) && s.path.length <= 4096).slice(0, 1000);
  // The server refuses control characters.
  const text = (v: string | null | undefined, max: number): string | null => (v ? stripControlChars(v).slice(0, max) || null : null);
  const names: (string | null)[] = [];
  for (const s of found) {
    // One at a time: a scan is background work, and each lookup runs a database client.
    const siteurl = tempBase && !s.error && !signal?.aborted ? await lookUpSiteUrl(s.path, tempBase, signal) : null;
    names.push(siteurl ? text(siteNameFromUrl(siteurl), 200) : null);
  }
  return found
    .map((s, i) => ({
      path: s.path,
      name: names[i] ?? text(s.name, 200) ?? 'site',
      db_name: text(s.dbName, 200),
      table_prefix: text(s.tablePrefix, 200),
      wp_version: text(s.wpVersion, 100),
      error: s.error?.slice(0, 4000) ?? null,
    }));
}

/** Scans and posts the result; failures are logged, never thrown. */
export async function scanAndReport(o: Pick<AgentOptions, 'client' | 'signal' | 'logger'> & { scanRoots: string[]; tempBase?: string }): Promise<boolean> {
  const log = o.logger ?? silentLogger();
  try {
    const sites = await scanForServer(o.scanRoots, o.signal, o.tempBase);
    const reply = await o.client.scan({ sites }, o.signal);
    log.info({ event: 'scan', roots: o.scanRoots, sites: reply.stored }, `scan of ${o.scanRoots.join(', ')}: ${reply.stored} WordPress site(s) reported`);
    return true;
  } catch (err) {
    if (!o.signal.aborted) log.warn({ event: 'scan', err }, 'scan failed; trying again at the next scan');
    return false;
  }
}

/** Scans now and every everyMs until the signal; the loop does not wait for it. */
function startScans(o: AgentOptions, roots: string[]): { stop: () => void; first: Promise<boolean> } {
  const scan = { ...o, scanRoots: roots, tempBase: tempBaseOf(o.dataDir) };
  const first = scanAndReport(scan);
  let running = first;
  const timer = setInterval(() => {
    running = running.then(() => scanAndReport(scan));
  }, o.scanEveryMs ?? SCAN_EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer), first };
}

export function tempBaseOf(dataDir: string): string {
  return join(dataDir, 'tmp');
}

/** Temp dirs of runs whose process is gone are removed; uploads are left to the server to abort. */
export async function cleanOrphanedRuns(dataDir: string): Promise<number> {
  const report = await cleanOrphans(tempBaseOf(dataDir), async () => {});
  return report.removed.length;
}

export async function runAgent(o: AgentOptions): Promise<void> {
  const log = o.logger ?? silentLogger();
  const removed = await cleanOrphanedRuns(o.dataDir);
  if (removed) log.info({ removed }, `removed ${removed} temp dir(s) left by runs that did not finish`);
  log.info({ server: o.client.server }, `agent polling ${o.client.server}`);
  const scans = o.scanRoots?.length ? startScans(o, o.scanRoots) : undefined;
  try {
    await pollLoop(o, log);
  } finally {
    scans?.stop();
  }
}

async function pollLoop(o: AgentOptions, log: Logger): Promise<void> {
  let failures = 0;
  let limit = 1;
  const running = new Set<Promise<void>>();
  try {
    while (!o.signal.aborted) {
      if (running.size >= limit) {
        await Promise.race(running);
        continue;
      }
      let job: AgentJob | null;
      try {
        const reply = await o.client.poll(o.signal);
        job = reply.job;
        limit = jobLimitOf(reply.job_limit);
        failures = 0;
      } catch (err) {
        if (o.signal.aborted) break;
        failures++;
        log.warn({ err, failures }, 'poll failed; retrying');
        if (err instanceof AgentHttpError && err.status === 401) log.error('the server refused this node key (revoked, replaced, or the node removed or disabled): ask an admin for a re-join code and restart the agent with WPBACKUP_JOIN_CODE set');
        await sleep(backoffMs(failures, 1000, 30_000), undefined, { signal: o.signal }).catch(() => undefined);
        continue;
      }
      if (o.client.keyRotationAsked) await rotateKey(o, log);
      if (!job) continue;
      const started = job;
      const run: Promise<void> = runJob(o, started, log)
        .catch((err: unknown) => log.error({ err, job: started.job_id }, 'job failed'))
        .finally(() => running.delete(run));
      running.add(run);
      if (o.once) break;
    }
  } finally {
    // Shutdown stops every job (their signals follow o.signal); wait for them to report.
    await Promise.allSettled(running);
  }
}

/** The poll reply's limit, if sane; a missing or odd value means one at a time. */
function jobLimitOf(v: unknown): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 64 ? v : 1;
}

/**
 * Takes the node's new key: fetched once with the current key, stored durably, then used (the server
 * retires the old key when the new one is first used). On any failure the current key still works,
 * and the next poll reply asks again.
 */
export async function rotateKey(o: Pick<AgentOptions, 'client' | 'dataDir' | 'signal'>, log: Logger): Promise<boolean> {
  try {
    const key = await o.client.fetchNewKey(o.signal);
    replaceNodeKey(o.dataDir, key);
    o.client.useKey(key);
    log.info('node key rotated: the new key is stored and in use');
    return true;
  } catch (err) {
    if (!o.signal.aborted) log.warn({ err }, 'node key rotation failed; keeping the current key, trying again after the next poll');
    return false;
  }
}

export async function runJob(o: AgentOptions, job: AgentJob, agentLog: Logger): Promise<void> {
  const log = agentLog.child({ job: job.job_id, site: job.site.id, node: job.node_id });
  if (job.type === 'reset') {
    log.info({ event: 'job.start', type: 'reset' }, `reset of site ${job.site.name}`);
    await cleanOrphanedRuns(o.dataDir).catch((err: unknown) => log.error({ err }, 'reset: cleaning temp dirs failed'));
    await o.client.finish(job.job_id, { status: 'completed', stage: null, error: null }).then(
      () => log.info({ event: 'job.end', status: 'completed' }, 'reset done'),
      (err: unknown) => log.error({ event: 'job.end', err }, 'reset finish failed'),
    );
    return;
  }
  log.info({ event: 'job.start', type: 'backup', site_name: job.site.name, path: job.site.wp_path, key: job.key }, `backup of ${job.site.name} started`);
  const stop = new AbortController();
  const onShutdown = (): void => stop.abort();
  o.signal.addEventListener('abort', onShutdown, { once: true });
  const reporter = new Reporter(o.client, job.job_id, Math.min(o.heartbeatMs ?? 1000, 2000), () => {
    if (!stop.signal.aborted) log.info('the server asked to stop');
    stop.abort();
  }, (stage) => log.info({ event: 'job.stage', stage }, `stage ${stage}`));
  const storage = new PresignedStorage(o.client, { jobId: job.job_id, key: job.key }, o.storage);
  const at = timeOfKey(job.key);
  try {
    const result = await runBackup({
      sitePath: job.site.wp_path, storage, destination: `agent:${o.client.server}`, storageFor: () => storage,
      nodeUuid: job.node_id, siteUuid: job.site.id, siteName: job.site.name, excludes: job.site.excludes,
      tempBase: tempBaseOf(o.dataDir), signal: stop.signal, progress: reporter, nice: o.nice, now: () => at,
      limitUploadBytesPerSec: o.limitUploadBytesPerSec,
    });
    await reporter.close(true);
    const sourceBytes = result.manifest.database.bytes + result.manifest.wp_content.bytes;
    await o.client.finish(job.job_id, { status: 'completed', stage: null, error: null, source_bytes: sourceBytes, stage_seconds: reporter.stageSeconds() });
    log.info({ event: 'job.end', status: 'completed', bytes: result.size, stage_seconds: reporter.stageSeconds() }, `backup completed, ${result.size} bytes`);
  } catch (err) {
    await reporter.close(false);
    const stopped = stop.signal.aborted || kindOf(err) === 'stopped';
    const stage = (err instanceof WpbError ? err.stage : undefined) ?? reporter.stage;
    if (stopped) log.info({ event: 'job.end', status: 'stopped', stage }, 'backup stopped');
    else log.error({ event: 'job.end', status: 'failed', stage, err }, 'backup failed');
    await o.client
      .finish(job.job_id, { status: stopped ? 'stopped' : 'failed', stage: (stage as ProgressReport['stage']) ?? null, error: stopped ? null : describe(err), stage_seconds: reporter.stageSeconds() })
      .catch((e: unknown) => log.error({ err: e }, 'could not tell the server how the job ended; its lease will run out'));
  } finally {
    o.signal.removeEventListener('abort', onShutdown);
  }
}

/** The time in a key's <name>_<YYYYMMDD>_<HHMMSS>.tar.zst, so the engine names the archive the same. */
export function timeOfKey(key: string): Date {
  const m = /_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})\.tar\.zst$/.exec(key);
  if (!m) return new Date();
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return new Date(Date.UTC(y, mo - 1, d, h, mi, s));
}

/** Sends progress: every stage change in order, and the latest state on each heartbeat; times the stages. */
class Reporter implements Progress {
  private readonly client: AgentClient;
  private readonly jobId: string;
  private readonly onCancel: () => void;
  private readonly onStage: (stage: string) => void;
  private readonly seconds = new Map<string, number>();
  private stageStart = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly queue: ProgressEvent[] = [];
  private latest: ProgressEvent | undefined;
  private lastStage: string | null | undefined;
  private pump: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(client: AgentClient, jobId: string, intervalMs: number, onCancel: () => void, onStage: (stage: string) => void) {
    this.client = client;
    this.jobId = jobId;
    this.onCancel = onCancel;
    this.onStage = onStage;
    this.timer = setInterval(() => this.enqueue(undefined), intervalMs);
  }

  get stage(): string | null | undefined {
    return this.latest?.stage;
  }

  event(e: ProgressEvent): void {
    this.latest = e;
    if (e.stage !== this.lastStage || e.status !== 'running') {
      if (e.stage !== this.lastStage) this.stageChanged(e.stage);
      this.lastStage = e.stage;
      this.enqueue(e);
    }
  }

  /** The stage that was running has ended (its time is added up); the next one starts now. */
  private stageChanged(next: string | null): void {
    const now = performance.now();
    if (this.lastStage) this.seconds.set(this.lastStage, (this.seconds.get(this.lastStage) ?? 0) + (now - this.stageStart) / 1000);
    this.stageStart = now;
    if (next) this.onStage(next);
  }

  /** Seconds per stage that ended, for the finish report (only the spec's stage names: the server takes no others). */
  stageSeconds(): FinishRequest['stage_seconds'] {
    const known = [...this.seconds].filter((e): e is [Stage, number] => (STAGES as readonly string[]).includes(e[0]));
    return Object.fromEntries(known.map(([k, v]) => [k, Math.round(v * 1000) / 1000]));
  }

  /** A snapshot to send in order, or (heartbeat) the latest state if nothing is waiting. */
  private enqueue(e: ProgressEvent | undefined): void {
    if (this.closed && e === undefined) return;
    if (e) this.queue.push(e);
    else if (this.queue.length === 0 && this.latest) this.queue.push(this.latest);
    else if (!this.latest) return;
    this.pump = this.pump.then(() => this.drain());
  }

  private async drain(): Promise<void> {
    const e = this.queue.shift();
    if (!e) return;
    const report: ProgressReport = { status: e.status, progress: Math.max(0, Math.min(100, Math.round(e.progress))), stage: e.stage, stage_detail: e.stage_detail.slice(0, 2000), error: e.error?.slice(0, 4000) ?? null };
    try {
      const reply = await this.client.progress(this.jobId, report);
      if (reply.cancel) this.onCancel();
    } catch (err) {
      // The job is not ours any more (expired, reset, another node's, our key revoked): stop.
      if (err instanceof AgentHttpError && [401, 403, 404, 409].includes(err.status)) this.onCancel();
    }
  }

  /** Stops the heartbeat and waits for the reports already queued; completed: the last stage ended too. */
  async close(completed = false): Promise<void> {
    if (completed && !this.closed) {
      this.stageChanged(null);
      this.lastStage = null;
    }
    this.closed = true;
    clearInterval(this.timer);
    await this.pump;
  }
}
