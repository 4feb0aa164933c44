// Deletions that failed (the prune after a backup, an on-demand prune, or a retry), told to
// whoever reacts in this process: the "prune failed" alert subscribes here
// (ctx.pruneFailed.subscribe). Each is also in the audit log (backup.delete_failed) and on the
// row (status 'deleting', delete_error, delete_after). Listeners never stop the caller.

export interface PruneFailure {
  backupId: string;
  siteId: string;
  storageId: string;
  key: string;
  error: string;
  /** Tries so far, this one included. */
  attempts: number;
  /** Epoch ms of the next try. */
  retryAt: number;
}

export type PruneFailedListener = (failure: PruneFailure) => void | Promise<void>;

export class PruneFailedHub {
  private readonly listeners = new Set<PruneFailedListener>();
  private readonly pending = new Set<Promise<void>>();
  private readonly log: (message: string, err: unknown) => void;

  constructor(log: (message: string, err: unknown) => void = (m, e) => console.error(m, e)) {
    this.log = log;
  }

  /** Returns the way to unsubscribe. */
  subscribe(listener: PruneFailedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(failure: PruneFailure): void {
    for (const listener of this.listeners) {
      const run = Promise.resolve()
        .then(() => listener(failure))
        .catch((err: unknown) => this.log(`A prune-failed listener failed on backup ${failure.backupId}`, err))
        .finally(() => this.pending.delete(run));
      this.pending.add(run);
    }
  }

  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.idle();
  }
}
