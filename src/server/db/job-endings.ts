import { NotFoundError } from './errors.ts';
import type { Queryable } from './db.ts';
import { ACTIVE_STATES, JOB_COLUMNS, LEASED_STATES, insertJob, toJob } from './job-rows.ts';
import type { JobRow } from './job-rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// How jobs end, and what that does to their site. Each is one transaction; the site is only
// touched while the job is still its current one, so a late report from an agent that lost
// its job cannot overwrite a newer run.

export type JobOutcome = { state: 'done'; backupId?: string } | { state: 'failed'; error: string } | { state: 'cancelled' };

export interface CancelResult {
  job: JobRow;
  /** True when the job was still queued and is cancelled now; false when the agent is asked to stop. */
  immediate: boolean;
}

export interface ResetResult {
  /** Backup jobs cancelled by the reset: abort their multipart uploads (uploadId). */
  cancelled: JobRow[];
  /** The clean-up job for the site's agent. */
  reset: JobRow;
}

const SITE_ENDING = {
  done: `status = 'completed', progress = 100, error = NULL, last_backup_id = COALESCE(?, last_backup_id)`,
  failed: `status = 'failed', error = ?`,
  cancelled: `status = 'stopped', error = ?`,
};

/** Ends the site's run of jobId; call inside a transaction. */
export async function endSiteRun(tx: Queryable, siteId: string, jobId: string, now: number, outcome: JobOutcome): Promise<void> {
  const value = outcome.state === 'done' ? outcome.backupId : outcome.state === 'failed' ? outcome.error : null;
  await tx.exec(
    `UPDATE sites SET ${SITE_ENDING[outcome.state]}, finished_at = ?, updated_at = ? WHERE id = ? AND current_job_id = ? AND status = 'running'`,
    [value, now, now, siteId, jobId],
  );
}

export function finishJob(ctx: RepoContext, jobId: string, nodeId: string, outcome: JobOutcome): Promise<JobRow | undefined> {
  const now = ctx.now();
  const state = outcome.state;
  const error = outcome.state === 'failed' ? outcome.error : null;
  return ctx.db.transaction(async (tx) => {
    const row = await tx.get<Raw>(
      `UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ? AND claimed_by = ? AND state IN ${LEASED_STATES} RETURNING ${JOB_COLUMNS}`,
      [state, error, now, jobId, nodeId],
    );
    if (!row) return undefined;
    const job = toJob(row);
    await endSiteRun(tx, job.siteId, job.id, now, outcome);
    return job;
  });
}

export function requestCancel(ctx: RepoContext, siteId: string): Promise<CancelResult | undefined> {
  const now = ctx.now();
  // Two conditional updates instead of read-then-decide: an agent may claim the job between
  // them, and then the second one still finds it.
  return ctx.db.transaction(async (tx) => {
    const queued = await tx.get<Raw>(
      `UPDATE jobs SET state = 'cancelled', cancel_requested = 1, updated_at = ? WHERE site_id = ? AND type = 'backup' AND state = 'queued' RETURNING ${JOB_COLUMNS}`,
      [now, siteId],
    );
    if (queued) {
      const job = toJob(queued);
      await endSiteRun(tx, siteId, job.id, now, { state: 'cancelled' });
      return { job, immediate: true };
    }
    const leased = await tx.get<Raw>(
      `UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE site_id = ? AND type = 'backup' AND state IN ${LEASED_STATES} RETURNING ${JOB_COLUMNS}`,
      [now, siteId],
    );
    return leased && { job: toJob(leased), immediate: false };
  });
}

export function resetSite(ctx: RepoContext, siteId: string): Promise<ResetResult> {
  const now = ctx.now();
  return ctx.db.transaction(async (tx) => {
    const cancelled = await tx.query<Raw>(
      `UPDATE jobs SET state = 'cancelled', cancel_requested = 1, error = 'Reset', updated_at = ?
       WHERE site_id = ? AND type = 'backup' AND state IN ${ACTIVE_STATES} RETURNING ${JOB_COLUMNS}`,
      [now, siteId],
    );
    const idled = await tx.exec(
      `UPDATE sites SET status = 'idle', progress = 0, stage = NULL, stage_detail = NULL, error = NULL,
       started_at = NULL, finished_at = NULL, current_job_id = NULL, updated_at = ? WHERE id = ?`,
      [now, siteId],
    );
    if (idled === 0) throw new NotFoundError('Site', siteId);
    const reset = await insertJob(tx, { type: 'reset', siteId, now, orExisting: true });
    return { cancelled: cancelled.map(toJob), reset };
  });
}

// The message the spec asks for: "agent on <host> stopped reporting during <stage>".
const EXPIRED_ERROR = `'agent on ' || COALESCE((SELECT hostname FROM nodes WHERE nodes.id = jobs.claimed_by), 'an unknown node')
  || ' stopped reporting during ' || CASE WHEN jobs.type = 'reset' THEN 'reset'
  ELSE COALESCE((SELECT stage FROM sites WHERE sites.id = jobs.site_id AND sites.current_job_id = jobs.id), 'startup') END`;

/** Claims a job may get in all when its deliveries keep getting lost (see expireLeases). */
export const MAX_DELIVERIES = 3;

export function expireLeases(ctx: RepoContext, now: number): Promise<JobRow[]> {
  return ctx.db.transaction(async (tx) => {
    // Claimed but never reported and no upload started: the job was lost on its way (a poll
    // answered just as its agent hung up, or the agent died before starting). Nothing ran, so
    // it goes back in the queue instead of failing the site's backup, a few times at most.
    await tx.exec(
      `UPDATE jobs SET state = 'queued', claimed_by = NULL, lease_until = NULL, updated_at = ?
       WHERE state = 'claimed' AND upload_id IS NULL AND lease_until < ? AND attempt < ${MAX_DELIVERIES}`,
      [now, now],
    );
    // On PostgreSQL a row another server expires first is re-checked and skipped, so
    // concurrent reapers split the expired jobs between them instead of both taking each.
    const rows = await tx.query<Raw>(
      `UPDATE jobs SET state = 'failed', error = ${EXPIRED_ERROR}, updated_at = ?
       WHERE state IN ${LEASED_STATES} AND lease_until < ? RETURNING ${JOB_COLUMNS}`,
      [now, now],
    );
    const jobs = rows.map(toJob);
    for (const job of jobs) {
      if (job.type === 'backup') await endSiteRun(tx, job.siteId, job.id, now, { state: 'failed', error: job.error ?? 'agent stopped reporting' });
    }
    return jobs;
  });
}
