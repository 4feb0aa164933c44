// Listeners grouped by a key (a site, a node, a user), for the in-process wake-ups of live
// streams and waiting polls. One listener that throws does not stop the others.

export type KeyListener = (key: string) => void;

export class KeyedListeners {
  readonly #byKey = new Map<string, Set<KeyListener>>();

  /** Calls listener whenever key is emitted; returns the function that removes it. */
  add(key: string, listener: KeyListener): () => void {
    let set = this.#byKey.get(key);
    if (!set) {
      set = new Set();
      this.#byKey.set(key, set);
    }
    set.add(listener);
    return () => {
      const s = this.#byKey.get(key);
      if (!s) return;
      s.delete(listener);
      if (s.size === 0) this.#byKey.delete(key);
    };
  }

  emit(key: string): void {
    for (const listener of [...(this.#byKey.get(key) ?? [])]) call(listener, key);
  }

  emitAll(): void {
    for (const [key, set] of [...this.#byKey]) for (const listener of [...set]) call(listener, key);
  }

  /** Listeners of key, or of every key. */
  count(key?: string): number {
    if (key !== undefined) return this.#byKey.get(key)?.size ?? 0;
    let n = 0;
    for (const s of this.#byKey.values()) n += s.size;
    return n;
  }
}

function call(listener: KeyListener, key: string): void {
  try {
    listener(key);
  } catch {
    // A broken stream or poll must not stop the others.
  }
}
