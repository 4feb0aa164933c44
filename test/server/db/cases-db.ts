import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { lockRow } from '../../../src/server/db/db.ts';
import { ConflictError, isConflict } from '../../../src/server/db/errors.ts';
import { migrate } from '../../../src/server/db/migrate.ts';
import { MIGRATIONS } from '../../../src/server/db/migrations.ts';
import { inProcesses } from './children.ts';
import { sqliteTarget, postgresTarget } from './targets.ts';
import { makeNode, unique } from './suite.ts';
import type { SuiteContext } from './suite.ts';

const OPEN_IN_CHILD = `
import { openDb } from '{src}server/db/open.ts';
const db = await openDb(JSON.parse(process.argv[1]));
await db.close();
console.log('ok');`;

export function dbCases(ctx: SuiteContext): void {
  describe('migrations', () => {
    it('run once: migrating again or reopening applies nothing', async () => {
      assert.deepEqual(await migrate(ctx.db), { applied: [], version: MIGRATIONS.at(-1)?.version });
      const again = await ctx.target.open();
      await again.close();
      const rows = await ctx.db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(rows.map((r) => Number(r.version)), MIGRATIONS.map((m) => m.version));
    });

    it('are applied once when four servers start at the same moment on a new database', async () => {
      const fresh = ctx.target.dialect === 'sqlite' ? await sqliteTarget() : await postgresTarget();
      try {
        const outputs = await inProcesses(4, OPEN_IN_CHILD, JSON.stringify(fresh.options));
        assert.deepEqual(outputs, ['ok', 'ok', 'ok', 'ok']);
        const db = await fresh.open();
        const rows = await db.query('SELECT version FROM schema_migrations');
        await db.close();
        assert.equal(rows.length, MIGRATIONS.length);
      } finally {
        await fresh.cleanup();
      }
    });

    it('refuse a migration edited after it ran, and a database newer than the code', async () => {
      const edited = [{ version: 1, name: 'initial schema', sql: 'SELECT 1' }];
      await assert.rejects(migrate(ctx.db, edited), /changed after it was applied/);
      await assert.rejects(migrate(ctx.db, []), /newer than this wpbackup knows/);
    });
  });

  describe('the query layer', () => {
    it('translates ? placeholders but not a ? inside a literal', async () => {
      const row = await ctx.db.get<{ s: string; n: number }>(`SELECT 'a?b''?' AS s, CAST(? AS INTEGER) AS n -- trailing ?`, [5]);
      assert.deepEqual({ ...row }, { s: "a?b'?", n: 5 });
    });

    it('commits, rolls back, and nests transactions as savepoints', async () => {
      const tag = unique('tx');
      const add = (q: typeof ctx.db, action: string) => q.exec('INSERT INTO audit_log (id, at, action, target_id) VALUES (?, ?, ?, ?)', [unique('id'), 1, action, tag]);
      await assert.rejects(
        ctx.db.transaction(async (tx) => {
          await add(tx as typeof ctx.db, 'rolled-back');
          throw new Error('boom');
        }),
        /boom/,
      );
      await ctx.db.transaction(async (tx) => {
        await add(tx as typeof ctx.db, 'outer');
        await assert.rejects(
          tx.transaction(async (inner) => {
            await add(inner as typeof ctx.db, 'inner');
            throw new Error('inner boom');
          }),
        );
        await tx.transaction((inner) => add(inner as typeof ctx.db, 'inner-kept'));
      });
      const rows = await ctx.db.query<{ action: string }>('SELECT action FROM audit_log WHERE target_id = ? ORDER BY action', [tag]);
      assert.deepEqual(rows.map((r) => r.action), ['inner-kept', 'outer']);
    });

    it('keeps concurrent transactions apart: a rollback undoes only its own rows', async () => {
      const tag = unique('iso');
      const one = (i: number) =>
        ctx.db.transaction(async (tx) => {
          await tx.exec('INSERT INTO audit_log (id, at, action, target_id) VALUES (?, ?, ?, ?)', [unique('id'), i, 'a', tag]);
          await tick();
          await tx.exec('INSERT INTO audit_log (id, at, action, target_id) VALUES (?, ?, ?, ?)', [unique('id'), i, 'b', tag]);
          if (i % 2) throw new Error('odd');
        });
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => one(i)));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 10);
      const rows = await ctx.db.query<{ at: number }>('SELECT at FROM audit_log WHERE target_id = ?', [tag]);
      assert.equal(rows.length, 20);
      assert.ok(rows.every((r) => Number(r.at) % 2 === 0));
    });

    it('lockRow: read-then-write transactions on one row run one after the other, on every server', async () => {
      const node = await makeNode(ctx.repos);
      await ctx.repos.nodes.update(node.id, { quotaBytes: 0 });
      // On PostgreSQL half the callers use a second pool, as a second server process would.
      const other = ctx.target.dialect === 'postgres' ? await ctx.target.open() : undefined;
      const servers = [ctx.repos, other ? ctx.reposOn(other) : ctx.repos];
      try {
        const bump = (i: number): Promise<void> =>
          (servers[i % 2] ?? ctx.repos).transaction(async (repos, tx) => {
            assert.equal(await lockRow(tx, 'nodes', node.id), true);
            const n = (await repos.nodes.get(node.id))?.quotaBytes ?? 0;
            await tick();
            await repos.nodes.update(node.id, { quotaBytes: n + 1 });
          });
        await Promise.all(Array.from({ length: 12 }, (_, i) => bump(i)));
        assert.equal((await ctx.repos.nodes.get(node.id))?.quotaBytes, 12, 'no update was lost');
        assert.equal(await ctx.repos.transaction((_, tx) => lockRow(tx, 'nodes', 'no-such-node')), false);
      } finally {
        await other?.close();
      }
    });

    it('refuses a transaction handle used after its transaction ended', async () => {
      const leaked = await ctx.db.transaction(async (tx) => tx);
      await assert.rejects(leaked.get('SELECT 1 AS one'), /after its transaction ended/);
    });

    it('inside a transaction, the outer handle fails at once on SQLite and uses another connection on PostgreSQL', async () => {
      const outcome = await ctx.db.transaction(async () => ctx.db.get('SELECT 1 AS one').then(() => 'ran', (e: Error) => e.message));
      if (ctx.target.dialect === 'sqlite') assert.match(outcome, /inside its own transaction/);
      else assert.equal(outcome, 'ran');
    });

    it('lands relaxed writes; on PostgreSQL they do not wait for the WAL flush', async () => {
      const node = await makeNode(ctx.repos);
      assert.equal(await ctx.db.relaxed.exec('UPDATE nodes SET last_seen = ? WHERE id = ?', [42, node.id]), 1);
      assert.equal((await ctx.repos.nodes.get(node.id))?.lastSeen, 42);
      if (ctx.target.dialect === 'sqlite') assert.equal(ctx.db.relaxed, ctx.db);
      else assert.equal((await ctx.db.relaxed.get<{ synchronous_commit: string }>('SHOW synchronous_commit'))?.synchronous_commit, 'off');
      await ctx.db.transaction(async (tx) => assert.equal(tx.relaxed, tx, 'inside a transaction, its durability applies'));
    });

    it('turns unique and foreign-key violations into conflicts', async () => {
      const node = await ctx.repos.nodes.create({ hostname: 'a', nodeKeyHash: unique('k') });
      const dupe = ctx.db.exec('INSERT INTO nodes (id, hostname, status, created_at) VALUES (?, ?, ?, ?)', [node.id, 'b', 'active', 1]);
      await assert.rejects(dupe, (e) => isConflict(e, 'duplicate'));
      const orphan = ctx.repos.sites.create({ nodeId: 'no-such-node', name: 'x', wpPath: '/x' });
      await assert.rejects(orphan, (e) => e instanceof ConflictError && e.reason === 'reference' && e.kind === 'bad_input');
    });
  });
}
