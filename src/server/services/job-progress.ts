import type { ProgressReply } from '../../api/types.ts';
import type { ServerContext } from '../context.ts';
import type { JobRow } from '../db/jobs.ts';
import type { Progress } from '../db/sites.ts';
import { iso } from '../routes/schema.ts';

// An agent's progress report (POST /agent/jobs/{id}/progress): kept in memory and told to the
// event streams at once; written to the database (renewing the lease) only when the progress
// cache says so (progress-cache.ts). The reply's stop request and lease come from the job's
// row, read fresh for every report, so a stop asked of any server reaches the agent at its
// next report whether or not that report is written.

/**
 * job: the row as read for this report (or kept: auth/auth-cache.ts), already checked to be the
 * node's (agent-common.ts nodesJob); keyHash: the key the report came with, which the write needs
 * the node to hold still.
 */
export async function reportJobProgress(ctx: ServerContext, job: JobRow, nodeId: string, p: Progress, keyHash?: string): Promise<ProgressReply> {
  const held = job.claimedBy === nodeId && (job.state === 'claimed' || job.state === 'running');
  if (!held) {
    ctx.progress.drop(job.id);
    ctx.events.publish(job.siteId);
    return { cancel: true, lease_until: iso(ctx.now()) };
  }
  ctx.jobLog.progress(job, nodeId, p.stage);
  const due = ctx.progress.report(job, p);
  if (!due) {
    ctx.events.publish(job.siteId);
    return { cancel: job.cancelRequested, lease_until: iso(job.leaseUntil ?? ctx.now()) };
  }
  const writing = ctx.authCache.begin();
  const r = await ctx.repos.jobs.report(job.id, nodeId, ctx.config.leaseMs, p, keyHash);
  ctx.authCache.reported(writing, job.id, r, keyHash);
  if (r) ctx.progress.written(job.id, p);
  else ctx.progress.drop(job.id);
  ctx.events.publish(job.siteId);
  if (!r) return { cancel: true, lease_until: iso(ctx.now()) };
  return { cancel: r.cancelRequested, lease_until: iso(r.leaseUntil) };
}
