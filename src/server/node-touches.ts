// "Last seen" of the nodes heard from, written for all of them in one statement a moment
// later instead of one statement per node on the request's path: at 500 agents that was a
// hundred round trips a second on the hottest routes. Each node is still written at most once
// per gap (route.ts shouldTouch, and the statement's own condition across servers); last_seen
// lags the request by at most delayMs. close() writes what is pending.

export class NodeTouches {
  readonly #write: (ids: string[]) => Promise<unknown>;
  readonly #delayMs: number;
  readonly #pending = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  constructor(write: (ids: string[]) => Promise<unknown>, delayMs = 100) {
    this.#write = write;
    this.#delayMs = delayMs;
  }

  add(nodeId: string): void {
    this.#pending.add(nodeId);
    if (this.#timer) return;
    this.#timer = setTimeout(() => void this.flush(), this.#delayMs);
    this.#timer.unref();
  }

  /** Writes the pending nodes now; a failed write is dropped (the next request touches again). */
  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const ids = [...this.#pending];
    this.#pending.clear();
    if (ids.length > 0) await this.#write(ids).catch(() => undefined);
  }
}
