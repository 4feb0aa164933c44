// Wakes agent polls waiting for a job. In process: the jobs repository calls notify(nodeId)
// after it queued a job for that node (post-commit), and every poll of that node waiting here
// tries its claim again. Across servers on one PostgreSQL, the same repository sends
// pg_notify in the queuing transaction (delivered at commit) and pg-job-listener.ts feeds it
// to notify() on every server. Polls still re-check on a slow timer, for what no event
// announces (a job queued by another SQLite process, a notification lost while the listener
// reconnected), so a missed event costs seconds of delay, never a lost job.

import { KeyedListeners } from './keyed-listeners.ts';

export type Wake = () => void;

export class JobNotifier {
  readonly #waiters = new KeyedListeners();
  #closed = false;

  /** Calls wake whenever a job is queued for nodeId (or the server closes); returns the unsubscribe. */
  subscribe(nodeId: string, wake: Wake): () => void {
    if (this.#closed) {
      queueMicrotask(wake);
      return () => {};
    }
    return this.#waiters.add(nodeId, wake);
  }

  /** A job was queued for nodeId. */
  notify(nodeId: string): void {
    this.#waiters.emit(nodeId);
  }

  /** Wakes every waiter (events may have been missed, e.g. while the listener reconnected). */
  notifyAll(): void {
    this.#waiters.emitAll();
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
    return this.#waiters.count(nodeId);
  }
}
