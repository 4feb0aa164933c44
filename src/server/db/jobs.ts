import { ConflictError, isConflict } from './errors.ts';
import { ACTIVE_STATES, JOB_COLUMNS, LEASED_STATES, insertJob, toJob } from './job-rows.ts';
import type { JobRow, JobType } from './job-rows.ts';
import { expireLeases, finishJob, requestCancel, resetSite } from './job-endings.ts';
import type { CancelResult, JobOutcome, ResetResult } from './job-endings.ts';
import { expireQueuedOnDeadNodes } from './job-expiry.ts';
import { keepLastProgress, reportProgress } from './job-report.ts';
import type { ReportReply } from './job-report.ts';
import { ReportBatches, type ReportBatchesOptions } from './report-batches.ts';
import { changing } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';
import type { Progress } from './sites.ts';

export type { JobRow, JobState, JobType } from './job-rows.ts';
export type { CancelResult, JobOutcome, ResetResult } from './job-endings.ts';
export type { ReportReply } from './job-report.ts';

// The job queue. A job is queued for a site's node, claimed by that node's agent under a
// lease it renews with each progress report (report; the first one marks it running), and
// ends done, failed or cancelled (job-endings.ts). Everything that must be
// atomic across server processes is one statement or one transaction:
// - one live job per site and type: the partial unique index jobs_one_active;
// - a claim hands a job to one agent: UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP
//   LOCKED) on PostgreSQL, the same statement in a BEGIN IMMEDIATE transaction on SQLite;
// - a node holds at most job_limit backups: each claim first locks the node's row and counts.

/** The PostgreSQL channel queued jobs are announced on (payload: the node id); see job-notifier.ts. */
export const JOBS_CHANNEL = 'wpbackup_jobs';

export class JobsRepo {
  readonly #ctx: RepoContext;
  /** Reports due for the database, gathered on PostgreSQL (report-batches.ts); unset in transactions. */
  readonly #reports: ReportBatches | undefined;

  constructor(ctx: RepoContext, batchReports?: ReportBatchesOptions) {
    this.#ctx = ctx;
    // Only the server's own repositories gather reports: inside a transaction each write is its own.
    this.#reports = batchReports && new ReportBatches(ctx, batchReports);
  }

  /**
   * Queues a backup and marks the site running, together. A ConflictError ('active_job')
   * when the site already has a backup queued or running, however many callers race;
   * a NotFoundError for an unknown site.
   */
  async enqueueBackup(siteId: string, opts: { storageId?: string } = {}): Promise<JobRow> {
    const now = this.#ctx.now();
    try {
      const queued = await this.#ctx.db.transaction(async (tx) => {
        const job = await insertJob(tx, { type: 'backup', siteId, storageId: opts.storageId, now });
        await tx.exec(
          `UPDATE sites SET status = 'running', progress = 0, stage = NULL, stage_detail = 'Queued', error = NULL,
           started_at = ?, finished_at = NULL, current_job_id = ?, updated_at = ? WHERE id = ?`,
          [now, job.id, now, siteId],
        );
        return job;
      });
      await this.#announce(queued.nodeId);
      return queued;
    } catch (err) {
      if (isConflict(err, 'duplicate')) throw new ConflictError('active_job', `Site ${siteId} already has a backup queued or running`, err);
      throw err;
    }
  }

  /**
   * Wakes the node's waiting polls, after the commit: pg_notify reaches every server on the
   * database (this one included); onJobQueued this process at once (and SQLite's only way).
   * Failing to announce loses nothing: polls re-check on a slow timer.
   */
  async #announce(nodeId: string): Promise<void> {
    if (this.#ctx.db.dialect === 'postgres') await this.#ctx.db.exec('SELECT pg_notify(?, ?)', [JOBS_CHANNEL, nodeId]).catch(() => undefined);
    this.#ctx.onJobQueued?.(nodeId);
  }

  async get(id: string): Promise<JobRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`, [id]);
    return row && toJob(row);
  }

  /** The job whose multipart upload this is (local part uploads know only the upload id). */
  async byUploadId(uploadId: string): Promise<JobRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE upload_id = ?`, [uploadId]);
    return row && toJob(row);
  }

  async activeForSite(siteId: string, type: JobType = 'backup'): Promise<JobRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE site_id = ? AND type = ? AND state IN ${ACTIVE_STATES}`, [siteId, type]);
    return row && toJob(row);
  }

  async listForSite(siteId: string, limit = 20): Promise<JobRow[]> {
    const rows = await this.#ctx.db.query<Raw>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE site_id = ? ORDER BY created_at DESC, id LIMIT ?`, [siteId, limit]);
    return rows.map(toJob);
  }

  /**
   * The node's oldest queued job, now claimed by it until now + leaseMs; undefined when none.
   * A node holding job_limit backups gets no other backup; clean-up (reset) jobs are not
   * limited (short, and asked for by a person) and go first, so they never run after a
   * backup queued behind them.
   */
  async claimNext(nodeId: string, leaseMs: number): Promise<JobRow | undefined> {
    const now = this.#ctx.now();
    const lock = this.#ctx.db.dialect === 'postgres' ? 'FOR UPDATE SKIP LOCKED' : '';
    const sql = (resetsOnly: boolean): string => `UPDATE jobs SET state = 'claimed', claimed_by = ?, lease_until = ?, attempt = attempt + 1, updated_at = ?
      WHERE state = 'queued' AND id = (SELECT id FROM jobs WHERE node_id = ? AND state = 'queued' ${resetsOnly ? "AND type = 'reset'" : ''}
        ORDER BY CASE WHEN type = 'reset' THEN 0 ELSE 1 END, created_at, id LIMIT 1 ${lock})
      RETURNING ${JOB_COLUMNS}`;
    // Claims for one node run one after the other (the node's row locked on PostgreSQL,
    // BEGIN IMMEDIATE on SQLite), so two servers cannot both hand out its last free slot.
    const row = await this.#ctx.db.transaction(async (tx) => {
      // NO KEY UPDATE: claims of one node wait for each other, while inserts of jobs that
      // reference the node (their foreign key check takes KEY SHARE) go on.
      const node = await tx.get<Raw>(`SELECT job_limit FROM nodes WHERE id = ?${tx.dialect === 'postgres' ? ' FOR NO KEY UPDATE' : ''}`, [nodeId]);
      if (!node) return undefined;
      const held = await tx.get<Raw>(`SELECT COUNT(*) AS n FROM jobs WHERE claimed_by = ? AND type = 'backup' AND state IN ${LEASED_STATES}`, [nodeId]);
      return tx.get<Raw>(sql(Number(held?.n ?? 0) >= Number(node.job_limit)), [nodeId, now + leaseMs, now, nodeId]);
    });
    return row && toJob(row);
  }

  /** Puts a claimed job back in the queue: its agent went away before it could be told about it. */
  async release(jobId: string, nodeId: string): Promise<boolean> {
    const sql = `UPDATE jobs SET state = 'queued', claimed_by = NULL, lease_until = NULL, attempt = attempt - 1, updated_at = ? WHERE id = ? AND claimed_by = ? AND state = 'claimed'`;
    const released = (await changing(this.#ctx, this.#ctx.db.exec(sql, [this.#ctx.now(), jobId, nodeId]))) === 1;
    if (released) await this.#announce(nodeId);
    return released;
  }

  /**
   * Writes the site's progress and renews the lease (a claimed job becomes running); the
   * progress endpoint calls it at a bounded rate per job (progress-cache.ts).
   * undefined: the job is no longer this node's to run, stop.
   */
  report(jobId: string, nodeId: string, leaseMs: number, p: Progress, keyHash?: string): Promise<ReportReply | undefined> {
    if (this.#reports) return this.#reports.report({ jobId, nodeId, leaseMs, p, keyHash });
    return reportProgress(this.#ctx, jobId, nodeId, leaseMs, p, keyHash);
  }

  /** After the job ended: its site keeps the job's last report (see job-report.ts keepLastProgress). */
  keepLastProgress(siteId: string, jobId: string, p: Progress): Promise<boolean> {
    return keepLastProgress(this.#ctx, siteId, jobId, p);
  }

  /** Records the multipart upload the server created for the job, so it can abort it later. */
  async setUpload(jobId: string, nodeId: string, u: { storageId: string; uploadKey: string; uploadId: string }): Promise<boolean> {
    const sql = `UPDATE jobs SET storage_id = ?, upload_key = ?, upload_id = ?, updated_at = ? WHERE id = ? AND claimed_by = ? AND state IN ${LEASED_STATES}`;
    return (await this.#ctx.db.exec(sql, [u.storageId, u.uploadKey, u.uploadId, this.#ctx.now(), jobId, nodeId])) === 1;
  }

  /** The agent's last word on a job; the site's state follows. undefined if the node no longer holds it. */
  finish(jobId: string, nodeId: string, outcome: JobOutcome): Promise<JobRow | undefined> {
    return changing(this.#ctx, finishJob(this.#ctx, jobId, nodeId, outcome));
  }

  /** The stop endpoint: a queued backup is cancelled at once, a running one is asked to stop. */
  requestCancel(siteId: string): Promise<CancelResult | undefined> {
    return changing(this.#ctx, requestCancel(this.#ctx, siteId));
  }

  /** The reset endpoint: cancels the site's backup jobs, idles the site, queues a clean-up job. */
  async resetSite(siteId: string): Promise<ResetResult> {
    const r = await changing(this.#ctx, resetSite(this.#ctx, siteId));
    await this.#announce(r.reset.nodeId);
    return r;
  }

  /** Fails every job whose lease ran out before now, and its site; each is returned to one caller only. */
  async expireLeases(now: number = this.#ctx.now()): Promise<JobRow[]> {
    const expired = await expireLeases(this.#ctx, now);
    if (expired.length > 0) await this.#ctx.authChanged?.();
    return expired;
  }

  /** Fails queued jobs whose node has been offline or disabled for timeoutMs (job-expiry.ts). */
  expireQueuedOnDeadNodes(timeoutMs: number, now: number = this.#ctx.now()): Promise<JobRow[]> {
    return expireQueuedOnDeadNodes(this.#ctx, now, timeoutMs);
  }
}
