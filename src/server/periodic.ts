// A background pass run every interval (reaper, scheduler, deletion retries, alerts): one pass
// at a time in this process, an unref'd timer that never keeps the process alive, and stop()
// that waits for the pass in progress, so the database can close after it.

export interface Periodic<R> {
  /** One pass now (after a pass already running); what it returns. */
  runOnce(): Promise<R>;
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

export interface PeriodicOptions {
  intervalMs: number;
  /** Where a failed timer-started pass is reported. */
  onError: (err: unknown) => void;
  /** A first pass at once, not after one interval. */
  immediately?: boolean;
  /** Runs after the timer stopped, before stop() waits for the pass in progress. */
  onStop?: () => void;
  /** Told how long each pass took (ms), failed ones too: the server's pass metrics. */
  onPass?: (ms: number) => void;
}

export function startPeriodic<R>(pass: () => Promise<R>, o: PeriodicOptions): Periodic<R> {
  let running: Promise<R> | undefined;
  let stopped = false;
  const runOnce = async (): Promise<R> => {
    while (running) await running.catch(() => undefined);
    const started = performance.now();
    running = pass().finally(() => {
      running = undefined;
      o.onPass?.(performance.now() - started);
    });
    return running;
  };
  const tick = (): void => {
    if (stopped || running) return;
    runOnce().catch(o.onError);
  };
  const timer = setInterval(tick, o.intervalMs);
  timer.unref();
  if (o.immediately) tick();
  return {
    runOnce,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      o.onStop?.();
      await running?.catch(() => undefined);
    },
  };
}

/**
 * Lets waiting requests run. On SQLite every statement runs synchronously, so a pass that
 * awaits statement after statement never gives the event loop back until it ends; passes
 * over the fleet call this every few rows.
 */
export function yieldToRequests(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Rows a pass handles between two yieldToRequests(). */
export const ROWS_PER_TURN = 25;
