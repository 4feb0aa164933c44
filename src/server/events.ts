import { KeyedListeners } from './keyed-listeners.ts';

// Site status changes, in process: a route that changes a site's backup state calls
// ctx.events.publish(siteId), and every SSE stream watching that site re-reads the row
// at once, with this process's live progress over it (progress-cache.ts: an agent's report
// is published here at once, though written to the database at a bounded rate). Other server
// processes (and agents reporting to them) change rows too, so the SSE route also polls the
// row about once a second and only emits when it differs from what it last sent; publish()
// just makes changes made here show up without waiting for the poll.

export type SiteListener = (siteId: string) => void;

export class SiteEvents {
  readonly #listeners = new KeyedListeners();
  readonly #closers = new Set<() => void>();

  /** Calls listener whenever siteId is published; returns the unsubscribe function. */
  subscribe(siteId: string, listener: SiteListener): () => void {
    return this.#listeners.add(siteId, listener);
  }

  /** Tells this process's watchers of siteId that its state changed. */
  publish(siteId: string): void {
    this.#listeners.emit(siteId);
  }

  /** How many watchers a site has (tests, metrics). */
  watchers(siteId: string): number {
    return this.#listeners.count(siteId);
  }

  /** Registers a stream to end when the server closes; returns the deregistration. */
  onClose(close: () => void): () => void {
    this.#closers.add(close);
    return () => this.#closers.delete(close);
  }

  /** Ends every open stream (the server is closing). */
  closeAll(): void {
    for (const close of [...this.#closers]) close();
    this.#closers.clear();
  }
}
