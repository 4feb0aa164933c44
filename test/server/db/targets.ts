import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Db, Dialect } from '../../../src/server/db/db.ts';
import { openDb } from '../../../src/server/db/open.ts';
import type { OpenDbOptions } from '../../../src/server/db/open.ts';
import { services } from '../../helpers/services.ts';

// A database of each kind made for one test run and removed after it: SQLite in a temp data
// dir, PostgreSQL as a fresh database on the test server (the test role may create them).

export interface Target {
  dialect: Dialect;
  /** What openDb is given, in this process or a child. */
  options: OpenDbOptions;
  /** A new, migrated handle on the same database (a second "server process" on PostgreSQL). */
  open(poolMax?: number): Promise<Db>;
  cleanup(): Promise<void>;
}

export async function sqliteTarget(): Promise<Target> {
  const dataDir = await mkdtemp(join(tmpdir(), 'wpb-db-'));
  const options = { dataDir };
  return {
    dialect: 'sqlite',
    options,
    open: () => openDb(options),
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
}

export async function postgresTarget(): Promise<Target> {
  const adminUrl = services().postgres.url;
  const name = `wpb_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const dataDir = await mkdtemp(join(tmpdir(), 'wpb-db-'));
  const options = { dataDir, databaseUrl: url.toString() };
  return {
    dialect: 'postgres',
    options,
    open: (poolMax?: number) => openDb({ ...options, poolMax }),
    cleanup: async () => {
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
