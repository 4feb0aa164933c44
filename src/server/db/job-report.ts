import { LEASED_STATES } from './job-rows.ts';
import { bool, num } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';
import { checkProgress } from './sites.ts';
import type { Progress } from './sites.ts';

// The hottest write: an agent's progress report, which also renews its lease (the reply
// carries the new lease and any stop request). The first report moves a claimed job to
// running. PostgreSQL does it in one statement (a writable CTE), SQLite in one IMMEDIATE
// transaction of two statements; both as relaxed writes, since the next report replaces it.

export interface ReportReply {
  cancelRequested: boolean;
  leaseUntil: number;
}

const renewSql = (keyed: boolean): string => `UPDATE jobs SET state = CASE WHEN state = 'claimed' THEN 'running' ELSE state END, lease_until = ?, updated_at = ?
  WHERE id = ? AND claimed_by = ? AND state IN ${LEASED_STATES}${keyed ? ` AND claimed_by IN (SELECT id FROM nodes WHERE node_key_hash = ? AND status <> 'disabled')` : ''}
  RETURNING id, site_id, cancel_requested, lease_until`;
const RENEW = renewSql(false);
const RENEW_KEYED = renewSql(true);
const PROGRESS = `UPDATE sites SET progress = ?, stage = ?, stage_detail = ?, updated_at = ?`;

/**
 * undefined: the node holds the job no longer, or its site is no longer running it. Stop.
 * keyHash: the write also needs the node to hold that key still and not be disabled, so a
 * report authenticated from a kept (possibly stale) copy of the key never renews a lease a
 * revocation ended (auth/auth-cache.ts).
 */
export async function reportProgress(ctx: RepoContext, jobId: string, nodeId: string, leaseMs: number, p: Progress, keyHash?: string): Promise<ReportReply | undefined> {
  checkProgress(p.progress);
  const now = ctx.now();
  const renewStmt = keyHash === undefined ? RENEW : RENEW_KEYED;
  const renew = [now + leaseMs, now, jobId, nodeId, ...(keyHash === undefined ? [] : [keyHash])];
  const progress = [p.progress, p.stage, p.stageDetail, now];
  const db = ctx.db.relaxed;
  if (db.dialect === 'postgres') {
    const sql = `WITH j AS (${renewStmt}) ${PROGRESS} FROM j
      WHERE sites.id = j.site_id AND sites.current_job_id = j.id AND sites.status = 'running' RETURNING j.cancel_requested, j.lease_until`;
    const row = await db.get<Raw>(sql, [...renew, ...progress]);
    return row && { cancelRequested: bool(row.cancel_requested), leaseUntil: num(row.lease_until) };
  }
  return db.transaction(async (tx) => {
    const job = await tx.get<Raw>(renewStmt, renew);
    if (!job) return undefined;
    const changed = await tx.exec(`${PROGRESS} WHERE id = ? AND current_job_id = ? AND status = 'running'`, [...progress, job.site_id as string, jobId]);
    return changed === 1 ? { cancelRequested: bool(job.cancel_requested), leaseUntil: num(job.lease_until) } : undefined;
  });
}

/** One report of a batch (ReportBatches, report-batches.ts). */
export interface ReportWrite {
  jobId: string;
  nodeId: string;
  leaseMs: number;
  p: Progress;
  keyHash?: string;
}

/** What a batch answers for each report it wrote; a report it did not write has no row. */
export interface ReportRow extends ReportReply {
  jobId: string;
}

const BATCH_ROW = '(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT))';

/**
 * Several reports of different jobs in one statement (PostgreSQL): each row of v is one
 * report, renewed and written exactly as reportProgress would, under the same conditions.
 */
export async function reportProgressMany(ctx: RepoContext, writes: readonly ReportWrite[]): Promise<ReportRow[]> {
  if (writes.length === 0) return [];
  for (const w of writes) checkProgress(w.p.progress);
  const now = ctx.now();
  const sql = `WITH v (id, node_id, key_hash, lease_until, progress, stage, stage_detail) AS (VALUES ${writes.map(() => BATCH_ROW).join(', ')}),
    j AS (UPDATE jobs SET state = CASE WHEN jobs.state = 'claimed' THEN 'running' ELSE jobs.state END, lease_until = v.lease_until, updated_at = ?
      FROM v WHERE jobs.id = v.id AND jobs.claimed_by = v.node_id AND jobs.state IN ${LEASED_STATES}
      AND (v.key_hash IS NULL OR jobs.claimed_by IN (SELECT id FROM nodes WHERE node_key_hash = v.key_hash AND status <> 'disabled'))
      RETURNING jobs.id, jobs.site_id, jobs.cancel_requested, jobs.lease_until)
    UPDATE sites SET progress = v.progress, stage = v.stage, stage_detail = v.stage_detail, updated_at = ?
    FROM j JOIN v ON v.id = j.id
    WHERE sites.id = j.site_id AND sites.current_job_id = j.id AND sites.status = 'running'
    RETURNING j.id, j.cancel_requested, j.lease_until`;
  const values = writes.flatMap((w) => [w.jobId, w.nodeId, w.keyHash ?? null, now + w.leaseMs, w.p.progress, w.p.stage, w.p.stageDetail]);
  const rows = await ctx.db.relaxed.query<Raw>(sql, [...values, now, now]);
  return rows.map((r) => ({ jobId: String(r.id), cancelRequested: bool(r.cancel_requested), leaseUntil: num(r.lease_until) }));
}

/**
 * A job's last report, written onto its site after the job ended (the progress cache held it,
 * progress-cache.ts): the outcome's row keeps the stage and percent the agent last reported.
 * Only while the site still shows that job's run; a completed run stays at 100 %. False when not.
 */
export async function keepLastProgress(ctx: RepoContext, siteId: string, jobId: string, p: Progress): Promise<boolean> {
  checkProgress(p.progress);
  const sql = `UPDATE sites SET progress = CASE WHEN status = 'completed' THEN progress ELSE ? END, stage = ?, stage_detail = ?, updated_at = ?
    WHERE id = ? AND current_job_id = ? AND status <> 'idle'`;
  return (await ctx.db.exec(sql, [p.progress, p.stage, p.stageDetail, ctx.now(), siteId, jobId])) === 1;
}
