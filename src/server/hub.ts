import { createLogger } from '../log.ts';

// In-process announcements (a job ended, a deletion failed) to whoever reacts in this process:
// retention, alerts, metrics. emit() never waits and never throws: a listener that throws or
// rejects is reported to `log` and stops neither the others nor the caller.

export type Listener<T> = (event: T) => void | Promise<void>;

export type HubLog = (message: string, err: unknown) => void;

/** Errors as JSON lines on stderr, for a hub made without the server's log. */
function stderrLog(): HubLog {
  const log = createLogger({ level: 'warn', stream: process.stderr });
  return (message, err) => log.error({ err }, message);
}

export class Hub<T> {
  private readonly listeners = new Set<Listener<T>>();
  private readonly pending = new Set<Promise<void>>();
  private readonly name: string;
  private readonly describe: (event: T) => string;
  private readonly log: HubLog;

  /** `name` and `describe` only word the log line of a failed listener. */
  constructor(name: string, describe: (event: T) => string, log: HubLog = stderrLog()) {
    this.name = name;
    this.describe = describe;
    this.log = log;
  }

  /** Returns the way to unsubscribe. */
  subscribe(listener: Listener<T>): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs every listener without waiting for them; idle() waits. */
  emit(event: T): void {
    for (const listener of this.listeners) {
      const run = Promise.resolve()
        .then(() => listener(event))
        .catch((err: unknown) => this.log(`A ${this.name} listener failed on ${this.describe(event)}`, err))
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
