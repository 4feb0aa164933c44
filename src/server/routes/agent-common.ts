import { Type } from '@sinclair/typebox';
import { ApiError, notFound } from '../api-error.ts';
import type { Principal } from '../auth/roles.ts';
import { prefetchedJobs } from '../auth/prefetched.ts';
import type { ServerContext } from '../context.ts';
import type { JobRow } from '../db/jobs.ts';
import { must } from '../route.ts';

// What every /api/v1/agent/jobs/{id}/... route checks first: the job exists, it is on the
// calling node (403 otherwise), and, for most, the node still holds it under a lease.

/** A job's id: not checked as a uuid (an unknown id is 404, as it always was). */
export const jobParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export function nodeIdOf(principal: Principal | undefined): string {
  const p = must(principal, 'agent.poll', principal?.kind === 'node' ? { nodeId: principal.nodeId } : {});
  if (p.kind !== 'node') throw new ApiError(403, 'forbidden', 'This endpoint is for agents (node keys) only');
  return p.nodeId;
}

/** The job, if it is this node's; 404 when there is none, 403 when another node's. */
export async function nodesJob(ctx: ServerContext, principal: Principal | undefined, id: string): Promise<{ job: JobRow; nodeId: string }> {
  const nodeId = nodeIdOf(principal);
  // Read with the node key when the route prefetches it (route.ts), else now.
  const pre = prefetchedJobs.get(principal, id);
  const job = pre ? pre.row : await ctx.repos.jobs.get(id);
  if (!job) throw notFound('Job', id);
  must(principal, 'agent.report', { nodeId: job.nodeId });
  if (job.claimedBy !== null && job.claimedBy !== nodeId) throw new ApiError(403, 'forbidden', `Job ${id} is held by another node`);
  return { job, nodeId };
}

/** The same, and the node must still hold the job (claimed or running): 409 otherwise. */
export async function leasedJob(ctx: ServerContext, principal: Principal | undefined, id: string): Promise<{ job: JobRow; nodeId: string }> {
  const found = await nodesJob(ctx, principal, id);
  if (found.job.claimedBy !== found.nodeId || (found.job.state !== 'claimed' && found.job.state !== 'running')) {
    throw new ApiError(409, 'conflict', `Job ${id} is ${found.job.state} and no longer this agent's to run; stop working on it`);
  }
  return found;
}

/** The completed backup an upload of this job recorded, if any. */
export async function completedBackupOf(ctx: ServerContext, job: JobRow): Promise<{ id: string } | undefined> {
  return ctx.repos.backups.completedForJob(job);
}
