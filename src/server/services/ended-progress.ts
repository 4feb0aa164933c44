import type { JobRow } from '../db/jobs.ts';
import type { Repos } from '../db/repos.ts';
import type { SiteEvents } from '../events.ts';
import type { ProgressCache } from '../progress-cache.ts';

// The last progress of a job that ended, kept in the database (the context subscribes this to
// ctx.jobEnded; apart from services/job-progress.ts so the context does not import a service
// that imports the context).

export interface EndedProgressParts {
  progress: ProgressCache;
  repos: Repos;
  events: SiteEvents;
}

/**
 * Subscribed to ctx.jobEnded: the ended job's report the database lacks is written beside its
 * outcome, and only then forgotten, so status reads meanwhile still see it (overlay()).
 */
export async function keepEndedProgress(ctx: EndedProgressParts, job: JobRow): Promise<void> {
  const last = ctx.progress.unwritten(job.id);
  try {
    if (last && (await ctx.repos.jobs.keepLastProgress(last.siteId, job.id, last.progress))) ctx.events.publish(last.siteId);
  } finally {
    ctx.progress.drop(job.id);
  }
}
