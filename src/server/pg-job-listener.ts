import pg from 'pg';
import { JOBS_CHANNEL } from './db/jobs.ts';
import type { JobNotifier } from './job-notifier.ts';

// LISTEN wpbackup_jobs on a connection of its own (a pooled one would be handed to other
// queries), feeding each notification to the notifier, and any other channels given to their
// handlers. On any error the connection is dropped and opened again after a short back-off;
// every waiter is woken on reconnect (and each other channel told), because notifications
// sent meanwhile are lost.

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

export interface PgJobListener {
  /** Resolves once the first LISTEN is in place (or failed: the poll re-check still works). */
  ready: Promise<void>;
  /** How many times the connection was (re)established; for tests. */
  readonly connects: number;
  close(): Promise<void>;
}

/** Another channel to listen on, on the same connection. */
export interface ListenFor {
  channel: string;
  onNotify: (payload: string) => void;
  /** Listening again after a lost connection: what was sent meanwhile is lost. */
  onReconnect: () => void;
}

export function startPgJobListener(url: string, notifier: JobNotifier, log: (message: string, err?: unknown) => void = () => {}, more: ListenFor[] = []): PgJobListener {
  let client: pg.Client | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let delay = RETRY_MIN_MS;
  let connects = 0;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  const retry = (why: unknown): void => {
    const c = client;
    client = undefined;
    c?.removeAllListeners();
    c?.on('error', () => {});
    void c?.end().catch(() => undefined);
    markReady();
    if (stopped) return;
    log(`job listener: connection lost; reconnecting in ${delay} ms`, why);
    timer = setTimeout(connect, delay);
    timer.unref();
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  };

  async function connect(): Promise<void> {
    if (stopped) return;
    const c = new pg.Client({ connectionString: url, application_name: 'wpbackup-listen', keepAlive: true });
    client = c;
    c.on('error', retry);
    c.on('end', () => {
      if (client === c) retry(new Error('connection closed'));
    });
    c.on('notification', (msg) => {
      if (msg.channel === JOBS_CHANNEL && msg.payload) notifier.notify(msg.payload);
      else more.find((m) => m.channel === msg.channel)?.onNotify(msg.payload ?? '');
    });
    try {
      await c.connect();
      await c.query([JOBS_CHANNEL, ...more.map((m) => m.channel)].map((ch) => `LISTEN ${ch};`).join(' '));
      if (client !== c) return;
      connects++;
      delay = RETRY_MIN_MS;
      // Jobs queued while we were not listening are announced to no one: look now.
      if (connects > 1) {
        notifier.notifyAll();
        for (const m of more) m.onReconnect();
      }
      markReady();
    } catch (err) {
      if (client === c) retry(err);
    }
  }

  void connect();
  return {
    ready,
    get connects() {
      return connects;
    },
    close: async () => {
      stopped = true;
      clearTimeout(timer);
      const c = client;
      client = undefined;
      markReady();
      if (c) {
        c.removeAllListeners();
        c.on('error', () => {});
        await c.end().catch(() => undefined);
      }
    },
  };
}
