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

/** The longest a pass keeps the event loop between two turns of its takeTurn(). */
export const TURN_MS = 4;

/**
 * A pass's turns by time, not by rows: the function returned yields to requests once the pass
 * has held the event loop for budgetMs since its last yield, and is free otherwise. A row
 * count cannot bound a slice: on SQLite the same 25 rows take 1 ms alone and 20 ms when the
 * machine is busy or each row is a transaction.
 */
export function turnTaker(budgetMs: number = TURN_MS, clock: () => number = () => performance.now()): () => Promise<void> {
  let since = clock();
  return async () => {
    if (clock() - since < budgetMs) return;
    await yieldToRequests();
    since = clock();
  };
}
