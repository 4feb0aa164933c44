import { stopped } from '../errors.ts';

// The parts of one pipe (children, stream pipelines, an upload) run together: the first
// failure stops all of them through `signal`, so nothing waits on a pipe nobody drains, and
// it is the error reported (the others only saw the stop). A stop asked from outside wins.

export class PipeGroup {
  readonly #inner = new AbortController();
  readonly #outer: AbortSignal | undefined;
  readonly #stopAll = (): void => this.#inner.abort();
  #failed = false;
  #first: unknown;

  constructor(outer?: AbortSignal) {
    this.#outer = outer;
    outer?.addEventListener('abort', this.#stopAll, { once: true });
  }

  /** Aborted when any part failed or a stop was asked for. */
  get signal(): AbortSignal {
    return this.#inner.signal;
  }

  /** True once a part failed or a stop was asked for. */
  get failed(): boolean {
    return this.#failed || this.#outer?.aborted === true;
  }

  /** Watches one part: if it fails, the others are stopped and its error is the one kept. */
  watch<T>(part: Promise<T>): Promise<T> {
    return part.catch((err: unknown) => {
      if (!this.#failed) {
        this.#failed = true;
        this.#first = err;
      }
      this.#inner.abort();
      throw err;
    });
  }

  /** Call once every part has settled: throws the stop, or the first failure. */
  throwIfFailed(): void {
    if (this.#outer?.aborted) throw stopped();
    if (this.#failed) throw this.#first;
  }

  close(): void {
    this.#outer?.removeEventListener('abort', this.#stopAll);
  }
}
