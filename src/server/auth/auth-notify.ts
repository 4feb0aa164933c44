import type { Db } from '../db/db.ts';
import type { ListenFor } from '../pg-job-listener.ts';
import type { AuthCache } from './auth-cache.ts';

// Servers sharing a PostgreSQL database tell each other that a credential or a held job
// changed (auth-cache.ts), so each empties its authentication cache within milliseconds
// instead of at the end of its window. The window stays the bound: a notification lost with
// a listening connection (each is emptied again when it reconnects) or sent by nothing (a
// direct write to the database) is made up for when the kept rows expire.

export const AUTH_CHANNEL = 'wpbackup_auth';

/** RepoContext.authChanged of a context: empties this cache, then tells the other servers (PostgreSQL) before the change is answered. */
export function authChangedHook(db: Db, cache: AuthCache): () => Promise<void> {
  return async () => {
    cache.changed();
    if (db.dialect === 'postgres') await db.exec('SELECT pg_notify(?, ?)', [AUTH_CHANNEL, cache.instance]).catch(() => undefined);
  };
}

/** What the job listener (pg-job-listener.ts) does with the other servers' notices; its own are already done. */
export function authListener(cache: AuthCache): ListenFor {
  return {
    channel: AUTH_CHANNEL,
    onNotify: (from) => {
      if (from !== cache.instance) cache.changed();
    },
    onReconnect: () => cache.changed(),
  };
}
