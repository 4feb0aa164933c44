// What a server holds, released last-made first: each part is registered right after it is
// made, so a start that fails half-way releases exactly what it had made. A release that
// fails does not keep the others from running; the first error is thrown after all ran.

export class ReleaseStack {
  readonly #releases: (() => unknown)[] = [];

  /** Registers the release of what was just made. */
  defer(release: () => unknown): void {
    this.#releases.push(release);
  }

  /** Runs every release once, newest first; later calls find nothing left to release. */
  async releaseAll(): Promise<void> {
    const errors: unknown[] = [];
    for (const release of this.#releases.splice(0).reverse()) {
      try {
        await release();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  }
}
