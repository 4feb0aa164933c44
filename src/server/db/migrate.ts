import { createHash } from 'node:crypto';
import { failure } from '../../errors.ts';
import type { Dialect, Queryable } from './db.ts';
import { MIGRATIONS } from './migrations.ts';
import type { Migration } from './migrations.ts';

// Brings a database up to the newest schema. Everything happens in one transaction, behind a
// lock, so two servers starting at once on one PostgreSQL do not both migrate: the second
// waits, then finds nothing left to do. On SQLite, BEGIN IMMEDIATE is that lock.

// pg_advisory_xact_lock key: any constant unlikely to be used by other software ("wpbm").
const PG_LOCK_KEY = 0x7770626d;

const TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_at BIGINT NOT NULL
)`;

interface Applied {
  version: number;
  name: string;
  checksum: string;
}

export interface MigrateResult {
  /** Versions applied by this call; empty when the schema was already current. */
  applied: number[];
  version: number;
}

export async function migrate(db: Queryable, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrateResult> {
  checkOrder(migrations);
  return db.transaction(async (tx) => {
    if (tx.dialect === 'postgres') await tx.get('SELECT pg_advisory_xact_lock(?)', [PG_LOCK_KEY]);
    await tx.script(TABLE);
    const done = await tx.query<Applied>('SELECT version, name, checksum FROM schema_migrations ORDER BY version');
    checkApplied(done, migrations, tx.dialect);
    const known = new Set(done.map((a) => a.version));
    const applied: number[] = [];
    for (const m of migrations) {
      if (known.has(m.version)) continue;
      await tx.script(sqlOf(m, tx.dialect));
      await tx.exec('INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)', [m.version, m.name, checksum(m, tx.dialect), Date.now()]);
      applied.push(m.version);
    }
    return { applied, version: migrations.at(-1)?.version ?? 0 };
  });
}

function sqlOf(m: Migration, dialect: Dialect): string {
  return typeof m.sql === 'string' ? m.sql : m.sql[dialect];
}

function checksum(m: Migration, dialect: Dialect): string {
  return createHash('sha256').update(sqlOf(m, dialect)).digest('hex').slice(0, 16);
}

function checkOrder(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    const prev = migrations[i - 1];
    if (prev && m.version <= prev.version) throw failure(`Migration ${m.version} is listed after ${prev.version}`);
  });
}

/** A database ahead of this code, or a migration edited after it ran, is refused, not guessed at. */
function checkApplied(done: readonly Applied[], migrations: readonly Migration[], dialect: Dialect): void {
  const byVersion = new Map(migrations.map((m) => [m.version, m]));
  for (const a of done) {
    const m = byVersion.get(a.version);
    if (!m) {
      throw failure(`The database has schema version ${a.version} (${a.name}), newer than this wpbackup knows`, undefined, 'Run the newer wpbackup, or restore a database backup made before the upgrade');
    }
    if (checksum(m, dialect) !== a.checksum) {
      throw failure(`Migration ${a.version} (${a.name}) changed after it was applied to this database`, undefined, 'Migrations are never edited: add a new one');
    }
  }
}
