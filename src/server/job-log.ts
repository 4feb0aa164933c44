import type { Logger } from '../log.ts';
import type { JobRow } from './db/jobs.ts';

// One log line per job start (an agent took it), stage (the first report of each stage this
// process sees) and end (finish or expiry, from the job-ended hub), each with the job, site and
// node ids. Stage changes are told apart by the last stage this process saw for the job, kept
// for at most MAX_JOBS running jobs: behind a load balancer two servers may both log a stage
// (each seeing it first), but no server misses one it was told of.

const MAX_JOBS = 10_000;

export class JobLog {
  private readonly log: Logger;
  private readonly stages = new Map<string, string | null>();

  constructor(log: Logger) {
    this.log = log;
  }

  started(job: JobRow, nodeId: string): void {
    this.stages.delete(job.id);
    this.log.info({ event: 'job.start', job: job.id, type: job.type, site: job.siteId, node: nodeId, attempt: job.attempt }, `job ${job.id} started`);
  }

  /** A progress report; logs when its stage is not the last one seen for the job. */
  progress(job: JobRow, nodeId: string, stage: string | null): void {
    if (this.stages.has(job.id) && this.stages.get(job.id) === stage) return;
    if (this.stages.size >= MAX_JOBS) this.stages.delete(this.stages.keys().next().value as string);
    this.stages.set(job.id, stage);
    if (stage !== null) this.log.info({ event: 'job.stage', job: job.id, type: job.type, site: job.siteId, node: nodeId, stage }, `job ${job.id} stage ${stage}`);
  }

  ended(job: JobRow): void {
    this.stages.delete(job.id);
    const fields = { event: 'job.end', job: job.id, type: job.type, site: job.siteId, node: job.claimedBy ?? job.nodeId, state: job.state, error: job.error ?? undefined };
    if (job.state === 'failed') this.log.warn(fields, `job ${job.id} failed`);
    else this.log.info(fields, `job ${job.id} ${job.state}`);
  }
}
