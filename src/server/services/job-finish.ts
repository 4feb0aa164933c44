import type { FinishRequest } from '../../api/types.ts';
import { abortJobUpload } from '../agent-uploads.ts';
import { ApiError } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import type { JobOutcome, JobRow } from '../db/jobs.ts';
import type { Repos } from '../db/repos.ts';
import { forgetSignedParts } from './quota.ts';

// An agent's last word on a job (POST /agent/jobs/{id}/finish). The job row, the site's status
// and, for a completed backup, the backup's source size and the site's measured size change in
// one transaction: a finish that fails halfway leaves the job the agent's to finish again,
// instead of a job that is done while the site was never told what it measured.

/** The job as ended; a 409 ApiError when it is not this node's to finish (any more). */
export async function finishJob(ctx: ServerContext, job: JobRow, nodeId: string, report: FinishRequest): Promise<JobRow> {
  // Storage first, outside the transaction: a failed or stopped run leaves no incomplete upload.
  if (report.status !== 'completed' && job.type === 'backup' && !(await ctx.repos.backups.completedForJob(job))) await abortJobUpload(ctx, job);
  const ended = await ctx.repos.transaction(async (repos, tx) => {
    const done = await endJob(repos, job, nodeId, report);
    if (done) await forgetSignedParts(tx, job.id);
    return done;
  });
  if (!ended) throw new ApiError(409, 'conflict', `Job ${job.id} is no longer this agent's to finish`);
  ctx.events.publish(job.siteId);
  ctx.jobEnded.emit(ended);
  return ended;
}

async function endJob(repos: Repos, job: JobRow, nodeId: string, report: FinishRequest): Promise<JobRow | undefined> {
  if (report.status !== 'completed') return repos.jobs.finish(job.id, nodeId, failure(report));
  const backup = job.type === 'backup' ? await repos.backups.completedForJob(job) : undefined;
  if (job.type === 'backup' && !backup) throw new ApiError(409, 'conflict', `Job ${job.id} has no completed upload; call /upload/complete first, or finish it as failed`);
  const ended = await repos.jobs.finish(job.id, nodeId, { state: 'done', backupId: backup?.id });
  // What went in: the site's current size, and with the stored size the compression ratio, for quota estimates.
  if (ended && backup && report.source_bytes !== undefined) {
    await repos.backups.setSourceBytes(backup.id, report.source_bytes);
    await repos.sites.update(job.siteId, { sizeBytes: report.source_bytes });
  }
  return ended;
}

function failure(report: FinishRequest): JobOutcome {
  if (report.status === 'stopped') return { state: 'cancelled' };
  const where = report.stage ? ` (during ${report.stage})` : '';
  return { state: 'failed', error: `${report.error ?? 'The agent reported a failure'}${where}` };
}
