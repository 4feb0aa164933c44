import { join } from 'node:path';
import { ensureDataDir } from '../../datadir.ts';
import { badInput } from '../../errors.ts';
import type { Db } from './db.ts';
import { migrate } from './migrate.ts';
import { PostgresDb } from './postgres.ts';
import { SqliteDb } from './sqlite.ts';

export interface OpenDbOptions {
  /** Holds wpbackup.db when no databaseUrl is given. */
  dataDir: string;
  /** postgres://... (DATABASE_URL) to use PostgreSQL instead of the embedded SQLite. */
  databaseUrl?: string;
  /** PostgreSQL pool size. */
  poolMax?: number;
}

export const SQLITE_FILE = 'wpbackup.db';

/** The server's database, migrated to the newest schema. */
export async function openDb(opts: OpenDbOptions): Promise<Db> {
  const db = opts.databaseUrl ? new PostgresDb(checkUrl(opts.databaseUrl), { max: opts.poolMax }) : new SqliteDb(join(ensureDataDir(opts.dataDir), SQLITE_FILE));
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

function checkUrl(url: string): string {
  if (/^postgres(ql)?:\/\//i.test(url)) return url;
  throw badInput('DATABASE_URL must be a postgres:// URL', 'Leave it unset to use the embedded SQLite database in the data dir');
}
