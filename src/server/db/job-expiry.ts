import { endSiteRun } from './job-endings.ts';
import { JOB_COLUMNS, toJob } from './job-rows.ts';
import type { JobRow } from './job-rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// Queued jobs nobody will take: their node has been offline (not heard from) or disabled for
// longer than the timeout, and the job has waited that long too. Each fails with an error
// naming the node and since when, and its site stops showing "running". Safe with several
// servers: the conditional UPDATE hands each job to one caller.

const CANDIDATES = `SELECT j.id, j.type, n.hostname, n.status, n.last_seen, n.created_at AS node_created, n.disabled_at
  FROM jobs j JOIN nodes n ON n.id = j.node_id
  WHERE j.state = 'queued' AND j.updated_at < ?
    AND ((n.status = 'disabled' AND COALESCE(n.disabled_at, 0) < ?) OR (n.status <> 'disabled' AND COALESCE(n.last_seen, n.created_at) < ?))
  ORDER BY j.created_at LIMIT 500`;

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function reason(r: Raw): string {
  const what = r.type === 'reset' ? 'the clean-up was not started' : 'the backup was not started';
  if (r.status === 'disabled') {
    return r.disabled_at == null ? `node ${String(r.hostname)} is disabled; ${what}` : `node ${String(r.hostname)} has been disabled since ${iso(Number(r.disabled_at))}; ${what}`;
  }
  if (r.last_seen == null) return `node ${String(r.hostname)} has been offline since it joined at ${iso(Number(r.node_created))} (it never reported); ${what}`;
  return `node ${String(r.hostname)} has been offline since ${iso(Number(r.last_seen))}; ${what}`;
}

export async function expireQueuedOnDeadNodes(ctx: RepoContext, now: number, timeoutMs: number): Promise<JobRow[]> {
  const cutoff = now - timeoutMs;
  const candidates = await ctx.db.query<Raw>(CANDIDATES, [cutoff, cutoff, cutoff]);
  const expired: JobRow[] = [];
  for (const c of candidates) {
    const error = reason(c);
    const job = await ctx.db.transaction(async (tx) => {
      const row = await tx.get<Raw>(`UPDATE jobs SET state = 'failed', error = ?, updated_at = ? WHERE id = ? AND state = 'queued' RETURNING ${JOB_COLUMNS}`, [error, now, String(c.id)]);
      if (!row) return undefined;
      const j = toJob(row);
      if (j.type === 'backup') await endSiteRun(tx, j.siteId, j.id, now, { state: 'failed', error });
      return j;
    });
    if (job) expired.push(job);
  }
  return expired;
}
