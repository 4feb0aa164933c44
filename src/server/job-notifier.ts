// Wakes agent polls waiting for a job. In process: the jobs repository calls notify(nodeId)
// after it queued a job for that node (post-commit), and every poll of that node waiting here
// tries its claim again. Across servers on one PostgreSQL, the same repository sends
// pg_notify in the queuing transaction (delivered at commit) and pg-job-listener.ts feeds it
// to notify() on every server. Polls still re-check on a slow timer, for what no event
// announces (a job queued by another SQLite process, a notification lost while the listener
// reconnected), so a missed event costs seconds of delay, never a lost job.

export type Wake = () => void;

export class JobNotifier {
  readonly #waiters = new Map<string, Set<Wake>>();
  #closed = false;

  /** Calls wake whenever a job is queued for nodeId (or the server closes); returns the unsubscribe. */
  subscribe(nodeId: string, wake: Wake): () => void {
    if (this.#closed) {
      queueMicrotask(wake);
      return () => {};
    }
    let set = this.#waiters.get(nodeId);
    if (!set) {
      set = new Set();
      this.#waiters.set(nodeId, set);
    }
    set.add(wake);
    return () => {
      const s = this.#waiters.get(nodeId);
      if (!s) return;
      s.delete(wake);
      if (s.size === 0) this.#waiters.delete(nodeId);
    };
  }

  /** A job was queued for nodeId. */
  notify(nodeId: string): void {
    for (const wake of [...(this.#waiters.get(nodeId) ?? [])]) wake();
  }

  /** Wakes every waiter (events may have been missed, e.g. while the listener reconnected). */
  notifyAll(): void {
    for (const set of [...this.#waiters.values()]) for (const wake of [...set]) wake();
  }

  /** The server is closing: wake everyone now and from now on, so polls answer at once. */
  close(): void {
    this.#closed = true;
    this.notifyAll();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Polls of nodeId (or of all nodes) waiting here; for tests and metrics. */
  waiting(nodeId?: string): number {
    if (nodeId !== undefined) return this.#waiters.get(nodeId)?.size ?? 0;
    let n = 0;
    for (const s of this.#waiters.values()) n += s.size;
    return n;
  }
}
