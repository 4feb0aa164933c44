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
