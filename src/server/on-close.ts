import type { EventEmitter } from 'node:events';

// A response emits 'close' once, when its client hangs up (or it ends): a listener added
// after that, say once the request was authenticated, would never run, and a long poll or an
// event stream would wait on for a client that is gone. onClose runs it then too.

export interface Closable extends EventEmitter {
  readonly destroyed: boolean;
}

/** Calls fn when res closes, or in a microtask if it has closed already; returns the removal. */
export function onClose(res: Closable, fn: () => void): () => void {
  if (res.destroyed) {
    let on = true;
    queueMicrotask(() => on && fn());
    return () => (on = false);
  }
  res.once('close', fn);
  return () => res.removeListener('close', fn);
}
