import { ensureDataDir } from '../datadir.ts';
import { createLogger, type Logger } from '../log.ts';
import { AuthCache } from './auth/auth-cache.ts';
import { authChangedHook } from './auth/auth-notify.ts';
import { MfaService } from './auth/mfa.ts';
import { LoginLimiter, type LoginLimits } from './auth/rate-limit.ts';
import type { Db } from './db/db.ts';
import { openDb } from './db/open.ts';
import { createRepos, type Repos } from './db/repos.ts';
import { openSecretBox, type SecretBox } from './db/secrets.ts';
import type { Role } from './db/users.ts';
import { SiteEvents } from './events.ts';
import { JobEndedHub } from './job-ended.ts';
import { JobNotifier } from './job-notifier.ts';
import { JobLog } from './job-log.ts';
import { KeyedListeners } from './keyed-listeners.ts';
import { ProgressCache } from './progress-cache.ts';
import { NodeTouches } from './node-touches.ts';
import { CoalescedReads } from './db/coalesced-reads.ts';
import type { SiteRow } from './db/sites.ts';
import { keepEndedProgress } from './services/ended-progress.ts';
import { DownloadLinks } from './local-download.ts';
import { ServerMetrics } from './metrics.ts';
import { loadMetricsToken } from './metrics-token.ts';
import { ReleaseStack } from './release-stack.ts';
import { PruneFailedHub } from './retention/prune-failed.ts';
import { uploadsRoot } from './storage-factory.ts';
import { StorageRegistry } from './storage-registry.ts';
import { createCaps, DEFAULT_STREAM_LIMITS, type Caps, type StreamLimits } from './stream-caps.ts';

// What every route gets: the database and its repositories, the secret box, the server's
// settings, and the parts the server shares between requests (storage clients, event hub,
// download signer, caps). openContext makes them all, in one place; close() releases them in
// the reverse order, and a context that fails half-way releases what it had made.

export interface ServerConfig {
  /** The URL agents and download links use, e.g. http://backup.example.com:8080. */
  publicUrl: string;
  dataDir: string;
  /** How long an agent's job lease lasts without a report. */
  leaseMs: number;
  /** Longest an agent poll waits for a job. */
  pollWaitMs: number;
  /** How often a waiting poll looks for a job no event announced (job-notifier.ts). */
  pollRecheckMs: number;
  /** Open event streams and long-polls one caller may hold (stream-caps.ts). */
  limits: StreamLimits;
  /** A queued job whose node has been offline or disabled this long fails (reaper.ts). */
  queuedJobTimeoutMs: number;
  /** Bytes a job may upload beyond its site's and node's remaining quota (services/quota.ts). */
  uploadMarginBytes: number;
  /** Reverse proxies whose X-Forwarded-For is believed (addresses, CIDRs); none when undefined. */
  trustProxy?: string[];
}

export interface ServerContext {
  db: Db;
  repos: Repos;
  secrets: SecretBox;
  config: ServerConfig;
  loginLimiter: LoginLimiter;
  /** Wakes agent polls when a job is queued. */
  jobNotifier: JobNotifier;
  /** Per-process caps on open streams and polls. */
  caps: Caps;
  mfa: MfaService;
  /** In-process site status changes for the event streams (events.ts). */
  events: SiteEvents;
  /** Open streams by user id, told to re-check their access at once (stream-access.ts). */
  accessWatchers: KeyedListeners;
  /** Signs and checks download links of local storage (local-download.ts). */
  downloads: DownloadLinks;
  /** One cached Storage per provider, and the handles of agents' uploads (storage-registry.ts). */
  storage: StorageRegistry;
  /** Jobs that ended in this process (finish, expiry), for retention, alerts, metrics (job-ended.ts). */
  jobEnded: JobEndedHub;
  /** Backup deletions (prunes, retries) that failed, for the "prune failed" alert (retention/prune-failed.ts). */
  pruneFailed: PruneFailedHub;
  /** Agents' latest progress reports, written to the database at a bounded rate (progress-cache.ts). */
  progress: ProgressCache;
  /** Credentials and held jobs read for recent requests, for a moment (auth/auth-cache.ts). */
  authCache: AuthCache;
  /** Sites read by id for status reads, gathered into one query while others run (db/coalesced-reads.ts). */
  siteReads: CoalescedReads<SiteRow>;
  /** Nodes heard from, their last_seen written together a moment later (node-touches.ts). */
  nodeTouches: NodeTouches;
  /** The clock (epoch ms): Date.now, or the tests' own (ContextOptions.now). Background loops read it. */
  now: () => number;
  /** The server's log (log.ts): job lines, background loops' errors, failed requests. */
  log: Logger;
  /** One line per job start, stage and end (job-log.ts). */
  jobLog: JobLog;
  /** Prometheus series and the /metrics token (metrics.ts); alerts count what they send in metrics.alertsSent. */
  metrics: ServerMetrics;
  /** Releases everything above, newest first; a second call does nothing. */
  close(): Promise<void>;
}

export interface ContextOptions {
  dataDir: string;
  databaseUrl?: string;
  publicUrl: string;
  leaseMs?: number;
  pollWaitMs?: number;
  /** See ServerConfig.pollRecheckMs; 5 s by default. */
  pollRecheckMs?: number;
  limits?: Partial<StreamLimits>;
  /** See ServerConfig.queuedJobTimeoutMs; 15 min by default. */
  queuedJobTimeoutMs?: number;
  /** See ServerConfig.uploadMarginBytes; 64 MiB by default. */
  uploadMarginBytes?: number;
  env?: NodeJS.ProcessEnv;
  /** Reverse proxies to believe X-Forwarded-For from (see auth/trust-proxy.ts). */
  trustProxy?: string[];
  /** Roles whose users must sign in with a second factor. */
  requireMfa?: Role[];
  loginLimits?: Partial<LoginLimits>;
  /** The clock for sign-in limits, codes and repositories (tests). */
  now?: () => number;
  /** Where the server logs; errors only, to stderr, by default (`wpbackup server` passes its own, at info). */
  logger?: Logger;
  /** Node.js process metrics on /metrics (metrics.ts). */
  processMetrics?: boolean;
  /** Longest the database's progress of a running job lags its reports (progress-cache.ts); 2 s by default. */
  progressWriteMs?: number;
  /** Longest a credential or job changed by another server is used as read (auth/auth-cache.ts); 1 s by default, 0: no cache. */
  authCacheMs?: number;
}

export const DEFAULT_POLL_RECHECK_MS = 5_000;
export const DEFAULT_QUEUED_JOB_TIMEOUT_MS = 15 * 60_000;
export const DEFAULT_UPLOAD_MARGIN_BYTES = 64 * 1024 * 1024;

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function configOf(o: ContextOptions): ServerConfig {
  return {
    publicUrl: o.publicUrl, dataDir: o.dataDir, leaseMs: o.leaseMs ?? 60_000, pollWaitMs: o.pollWaitMs ?? 25_000,
    pollRecheckMs: o.pollRecheckMs ?? DEFAULT_POLL_RECHECK_MS, limits: { ...DEFAULT_STREAM_LIMITS, ...definedOnly(o.limits ?? {}) },
    queuedJobTimeoutMs: o.queuedJobTimeoutMs ?? DEFAULT_QUEUED_JOB_TIMEOUT_MS, uploadMarginBytes: o.uploadMarginBytes ?? DEFAULT_UPLOAD_MARGIN_BYTES, trustProxy: o.trustProxy,
  };
}

/** An idle agent is heard from once per poll (pollWaitMs) at least: two missed polls and it is offline. */
function onlineWindowMs(config: ServerConfig): number {
  return 2 * config.pollWaitMs + 10_000;
}

/** Opens the database (SQLite in the data dir, or PostgreSQL from databaseUrl) and everything built on it. */
export async function openContext(o: ContextOptions): Promise<ServerContext> {
  ensureDataDir(o.dataDir);
  const config = configOf(o);
  const log = o.logger ?? createLogger({ level: 'error', stream: process.stderr });
  const held = new ReleaseStack();
  try {
    const db = await openDb({ dataDir: o.dataDir, databaseUrl: o.databaseUrl });
    held.defer(() => db.close());
    const secrets = openSecretBox({ dataDir: o.dataDir, env: o.env ?? process.env });
    const jobNotifier = new JobNotifier();
    held.defer(() => jobNotifier.close());
    const authCache = new AuthCache({ ttlMs: o.authCacheMs, now: o.now ?? Date.now });
    // Progress writes: three at once of the relaxed pool's four connections (postgres.ts), 100 reports at most per statement.
    const batchReports = { maxInFlight: 3, maxBatch: 100 };
    // Agents' key reads: two at once of the pool's ten, as the status reads (below); 64 at most per query.
    const batchKeyReads = { maxInFlight: 2, maxBatch: 64 };
    const repos = createRepos(db, { secrets, now: o.now, onJobQueued: (nodeId) => jobNotifier.notify(nodeId), authChanged: authChangedHook(db, authCache), batchReports, batchKeyReads });
    // Two at once leaves the pool's other connections to everything else; 64 ids at most per query.
    const siteReads = new CoalescedReads<SiteRow>({ load: (ids) => repos.sites.getMany(ids), idOf: (s) => s.id, maxInFlight: 2, maxBatch: 64 });
    const nodeTouches = new NodeTouches((ids) => repos.nodes.touchMany(ids));
    held.defer(() => nodeTouches.flush());
    const loginLimiter = new LoginLimiter(repos.loginThrottle, { limits: o.loginLimits, now: o.now });
    const mfa = new MfaService({ repo: repos.mfa, secrets, now: o.now, requiredFor: o.requireMfa });
    const events = new SiteEvents();
    held.defer(() => events.closeAll());
    const accessWatchers = new KeyedListeners();
    const downloads = new DownloadLinks(secrets, config);
    const storage = new StorageRegistry({
      providers: repos.storageProviders, dataDir: o.dataDir, uploadsRoot: uploadsRoot(o.dataDir),
      signDownload: (providerId, key, expiresIn) => downloads.sign(providerId, key, expiresIn),
      partUrl: (token, n) => `${config.publicUrl.replace(/\/+$/, '')}/api/v1/agent/uploads/${token}/parts/${n}`,
    });
    held.defer(() => storage.close());
    const jobEnded = new JobEndedHub((message, err) => log.error({ err }, message));
    held.defer(() => jobEnded.close());
    const pruneFailed = new PruneFailedHub((message, err) => log.error({ err }, message));
    held.defer(() => pruneFailed.close());
    const caps = createCaps(config.limits);
    const now = o.now ?? Date.now;
    const metrics = new ServerMetrics({
      db, now, onlineWindowMs: onlineWindowMs(config),
      archiveBytes: async (job) => (await repos.backups.completedForJob(job))?.size ?? undefined,
    }, { processMetrics: o.processMetrics, token: loadMetricsToken(o.dataDir, o.env ?? process.env) });
    const jobLog = new JobLog(log);
    jobEnded.subscribe((job) => metrics.jobEnded(job));
    jobEnded.subscribe((job) => jobLog.ended(job));
    const progress = new ProgressCache({ leaseMs: config.leaseMs, now, writeEveryMs: o.progressWriteMs });
    held.defer(jobEnded.subscribe((job) => keepEndedProgress({ progress, repos, events }, job)));
    return { db, repos, secrets, config, loginLimiter, mfa, jobNotifier, caps, events, accessWatchers, downloads, storage, jobEnded, pruneFailed, now, log, jobLog, metrics, progress, authCache, siteReads, nodeTouches, close: () => held.releaseAll() };
  } catch (err) {
    await held.releaseAll().catch(() => undefined);
    throw err;
  }
}
