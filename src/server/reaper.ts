import { startPeriodic } from './periodic.ts';
import type { ServerContext } from './context.ts';
import type { JobRow } from './db/jobs.ts';
import { abortJobUpload } from './agent-uploads.ts';
import { forgetSignedParts } from './services/quota.ts';

// Jobs whose agent stopped reporting: every few seconds, jobs.expireLeases() fails each job
// whose lease ran out ("agent on <host> stopped reporting during <stage>") together with its
// site, and the reaper aborts the multipart upload the job had started. Safe with several
// servers: expireLeases() hands each expired job to exactly one caller (one UPDATE ...
// RETURNING), so only one server aborts a given upload. Runs never overlap in one process.
// The same pass fails queued jobs whose node has been offline or disabled for longer than
// config.queuedJobTimeoutMs (job-expiry.ts), so their site does not show "running" forever.

export interface ReaperOptions {
  /** How often to look; 5 s by default. */
  intervalMs?: number;
  /** Where failures to abort an upload are reported; the server's log (ctx.log) by default. */
  log?: (message: string, err?: unknown) => void;
  /** The clock (epoch ms); the context's (ctx.now) by default. */
  now?: () => number;
}

export interface Reaper {
  /** One pass now (waits for a pass already running first); returns the jobs it expired. */
  runOnce(): Promise<JobRow[]>;
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

/** One pass: expire, then abort each expired job's upload and tell SSE watchers. */
export async function reapExpiredJobs(ctx: ServerContext, log: ReaperOptions['log'] = logTo(ctx), now: number = ctx.now()): Promise<JobRow[]> {
  const expired = await ctx.repos.jobs.expireLeases(now);
  const stranded = await ctx.repos.jobs.expireQueuedOnDeadNodes(ctx.config.queuedJobTimeoutMs, now);
  for (const job of stranded) {
    await auditExpiry(ctx, log, job, { site_id: job.siteId, type: job.type, error: job.error, reason: 'node_unavailable' });
    ctx.events.publish(job.siteId);
    ctx.jobEnded.emit(job);
  }
  for (const job of expired) {
    const err = await abortJobUpload(ctx, job);
    if (err) log(`Could not abort the upload of expired job ${job.id} (site ${job.siteId})`, err);
    const aborted = !err && job.uploadId !== null;
    await forgetSignedParts(ctx.db, job.id).catch((e: unknown) => log(`Could not forget the part sizes of expired job ${job.id}`, e));
    await auditExpiry(ctx, log, job, { site_id: job.siteId, type: job.type, error: job.error, upload_aborted: aborted });
    ctx.events.publish(job.siteId);
    ctx.jobEnded.emit(job);
  }
  return [...expired, ...stranded];
}

async function auditExpiry(ctx: ServerContext, log: NonNullable<ReaperOptions['log']>, job: JobRow, detail: Record<string, unknown>): Promise<void> {
  try {
    await ctx.repos.audit.record({ nodeId: job.claimedBy ?? job.nodeId, action: 'job.expired', targetType: 'job', targetId: job.id, detail });
  } catch (err) {
    log(`Could not audit expired job ${job.id}`, err);
  }
}

/** Starts the timer (unref'd: it never keeps the process alive). Call stop() before closing the database. */
export function startReaper(ctx: ServerContext, opts: ReaperOptions = {}): Reaper {
  const log = opts.log ?? logTo(ctx);
  return startPeriodic(() => reapExpiredJobs(ctx, log, (opts.now ?? ctx.now)()), { intervalMs: opts.intervalMs ?? 5_000, onError: (err) => log('Reaper pass failed', err), onPass: (ms) => ctx.metrics.passRan('reaper', ms) });
}

function logTo(ctx: ServerContext): NonNullable<ReaperOptions['log']> {
  return (message, err) => ctx.log.error({ err }, `reaper: ${message}`);
}
