import type { JobRow } from './db/jobs.ts';
import { Hub, type HubLog, type Listener } from './hub.ts';

// Jobs that reached an end (done, failed, cancelled). The server that ends a job tells its own
// listeners: the agent's finish, the reaper's expiry, and the server's own failures of a job.

export type JobEndedListener = Listener<JobRow>;

export class JobEndedHub extends Hub<JobRow> {
  constructor(log?: HubLog) {
    super('job-ended', (job) => `job ${job.id}`, log);
  }
}
