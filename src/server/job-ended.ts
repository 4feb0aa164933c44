import { createLogger } from '../log.ts';
import type { JobRow } from './db/jobs.ts';

// Jobs that reached an end (done, failed, cancelled), told to whoever reacts to endings in this
// process: retention prunes after a backup, alerts, metrics. The server that ends a job tells
// its own listeners: the agent's finish, or the reaper's expiry. A listener that throws or
// rejects is reported to `log` and never stops the others or the caller.

export type JobEndedListener = (job: JobRow) => void | Promise<void>;

export class JobEndedHub {
  private readonly listeners = new Set<JobEndedListener>();
  private readonly pending = new Set<Promise<void>>();
  private readonly log: (message: string, err: unknown) => void;

  constructor(log?: (message: string, err: unknown) => void) {
    this.log = log ?? defaultLog();
  }

  /** Returns the way to unsubscribe. */
  subscribe(listener: JobEndedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs every listener without waiting for them; idle() waits. */
  emit(job: JobRow): void {
    for (const listener of this.listeners) {
      const run = Promise.resolve()
        .then(() => listener(job))
        .catch((err: unknown) => this.log(`A job-ended listener failed on job ${job.id}`, err))
        .finally(() => this.pending.delete(run));
      this.pending.add(run);
    }
  }

  /** Resolves when every listener run started so far has ended (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Drops the listeners and waits for the runs in progress. */
  async close(): Promise<void> {
    this.listeners.clear();
    await this.idle();
  }
}

/** Errors as JSON lines on stderr, for a hub made without the server's log. */
function defaultLog(): (message: string, err: unknown) => void {
  const log = createLogger({ level: 'warn', stream: process.stderr });
  return (message, err) => log.error({ err }, message);
}
