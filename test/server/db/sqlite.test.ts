import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Db } from '../../../src/server/db/db.ts';
import { SQLITE_FILE } from '../../../src/server/db/open.ts';
import { dbSuite } from './suite.ts';
import { sqliteTarget } from './targets.ts';
import type { Target } from './targets.ts';

dbSuite('data layer on SQLite', sqliteTarget);

describe('the SQLite file', () => {
  let target: Target;
  let db: Db;
  before(async () => {
    target = await sqliteTarget();
    db = await target.open();
  });
  after(async () => {
    await db.close();
    await target.cleanup();
  });

  it('is private (0600), in WAL mode, with foreign keys enforced and a busy timeout', async () => {
    assert.equal((await stat(join(target.options.dataDir, SQLITE_FILE))).mode & 0o777, 0o600);
    assert.equal((await db.get<{ journal_mode: string }>('PRAGMA journal_mode'))?.journal_mode, 'wal');
    assert.equal((await db.get<{ foreign_keys: number }>('PRAGMA foreign_keys'))?.foreign_keys, 1);
    assert.equal((await db.get<{ timeout: number }>('PRAGMA busy_timeout'))?.timeout, 5000);
  });
});
