import pg from 'pg';
import type { Target } from '../server/db/targets.ts';
import { waitFor } from './wait.ts';

// Lines concurrent requests up at a race on PostgreSQL: a separate session holds an EXCLUSIVE
// lock on a table (plain reads go on, writes and SELECT ... FOR UPDATE wait), the test waits
// until n backends are waiting for a lock, then lets them all go at once. Whatever they read
// before the lock is what they decide on: the read-then-write race, every time. SQLite runs a
// process's statements one at a time on one connection, so there is nothing to line up.

export interface TableLock {
  /** Resolves when n other sessions of the database wait for a lock. */
  waiters(n: number): Promise<void>;
  release(): Promise<void>;
}

export async function lockTable(target: Target, table: string): Promise<TableLock> {
  const url = target.options.databaseUrl;
  if (!url) throw new Error('lockTable is for PostgreSQL targets');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('BEGIN');
  await client.query(`LOCK TABLE ${table} IN EXCLUSIVE MODE`);
  let released = false;
  return {
    waiters: async (n) => {
      let seen: unknown[] = [];
      await waitFor(
        `${n} sessions waiting for a lock on ${table}`,
        async () => {
          // Inside a transaction the statistics views keep the snapshot they first showed.
          await client.query('SELECT pg_stat_clear_snapshot()');
          const r = await client.query('SELECT wait_event_type, state, left(query, 120) AS query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
          seen = r.rows;
          return r.rows.filter((row: { wait_event_type: string | null }) => row.wait_event_type === 'Lock').length >= n;
        },
        { ms: 20_000, context: () => `sessions: ${JSON.stringify(seen)}` },
      );
    },
    release: async () => {
      if (released) return;
      released = true;
      try {
        await client.query('COMMIT');
      } finally {
        await client.end();
      }
    },
  };
}
