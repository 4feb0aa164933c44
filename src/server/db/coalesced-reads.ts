// Reads of rows by id that arrive while others are in flight go to the database together, in
// one query, when it is their turn: the status read is a round trip per request, and on
// PostgreSQL each round trip costs the server more CPU (socket writes and reads, the driver's
// bookkeeping) than the rest of the request. No read waits for a batch to fill: while fewer
// than maxInFlight queries run, a read goes at once; only reads that would have queued for a
// pooled connection anyway are gathered. Every read is still a query begun after it was asked
// for, so it sees everything committed before the request arrived.

export interface CoalescedReadsOptions<T> {
  /** The rows with these ids (any order; unknown ids left out). */
  load: (ids: string[]) => Promise<T[]>;
  idOf: (row: T) => string;
  /** Queries of this reader at once (the rest of the pool stays for other work). */
  maxInFlight: number;
  /** Ids in one query at most. */
  maxBatch: number;
}

interface Waiter<T> {
  resolve: (row: T | undefined) => void;
  reject: (err: unknown) => void;
}

export class CoalescedReads<T> {
  readonly #o: CoalescedReadsOptions<T>;
  /** Ids asked for and not yet sent, with everyone waiting for each. */
  #queued = new Map<string, Waiter<T>[]>();
  #inFlight = 0;

  constructor(o: CoalescedReadsOptions<T>) {
    this.#o = o;
  }

  get(id: string): Promise<T | undefined> {
    // An id PostgreSQL refuses as text (a NUL: ids come from URLs, and the hot routes read them
    // with the credentials, before validation) is read alone: its query fails as it would
    // unbatched, and the reads gathered beside it do not fail with it.
    if (id.includes('\u0000')) return this.#o.load([id]).then((rows) => rows.find((r) => this.#o.idOf(r) === id));
    return new Promise((resolve, reject) => {
      const waiting = this.#queued.get(id);
      if (waiting) waiting.push({ resolve, reject });
      else this.#queued.set(id, [{ resolve, reject }]);
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inFlight < this.#o.maxInFlight && this.#queued.size > 0) {
      const batch = new Map<string, Waiter<T>[]>();
      for (const [id, waiters] of this.#queued) {
        if (batch.size >= this.#o.maxBatch) break;
        batch.set(id, waiters);
      }
      for (const id of batch.keys()) this.#queued.delete(id);
      this.#inFlight++;
      void this.#send(batch);
    }
  }

  async #send(batch: Map<string, Waiter<T>[]>): Promise<void> {
    try {
      const rows = await this.#o.load([...batch.keys()]);
      const byId = new Map(rows.map((r) => [this.#o.idOf(r), r]));
      for (const [id, waiters] of batch) for (const w of waiters) w.resolve(byId.get(id));
    } catch (err) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(err);
    } finally {
      this.#inFlight--;
      this.#pump();
    }
  }
}
