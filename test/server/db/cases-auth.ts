import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isConflict } from '../../../src/server/db/errors.ts';
import { makeNode, makeSite, unique } from './suite.ts';
import type { SuiteContext } from './suite.ts';

export function authCases(ctx: SuiteContext): void {
  describe('users', () => {
    it('have unique emails whatever their case, and a hash only login reads', async () => {
      const { users } = ctx.repos;
      const local = unique('Admin');
      const user = await users.create({ email: ` ${local}@Example.COM `, passwordHash: 'scrypt$hash', role: 'super_admin' });
      assert.equal(user.email, `${local.toLowerCase()}@example.com`);
      assert.ok(!('passwordHash' in user));
      await assert.rejects(users.create({ email: `${local.toUpperCase()}@example.com`, passwordHash: 'x', role: 'site_admin' }), (e) => isConflict(e, 'duplicate'));
      // The index guards rows written around the repository too.
      const raw = ctx.db.exec('INSERT INTO users (id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)', [unique('id'), `${local.toUpperCase()}@EXAMPLE.com`, 'x', 'site_admin', 1]);
      await assert.rejects(raw, (e) => isConflict(e, 'duplicate'));
      assert.equal((await users.getByEmail(`${local.toUpperCase()}@example.com`))?.id, user.id);
      assert.deepEqual(await users.credentialsByEmail(`${local}@example.com`), { user, passwordHash: 'scrypt$hash' });
      assert.equal(await users.credentialsByEmail('nobody@example.com'), undefined);
      assert.ok((await users.count('super_admin')) >= 1);
    });

    it('are assigned nodes and sites, which decide what they reach', async () => {
      const { users } = ctx.repos;
      const u = await users.create({ email: `${unique('na')}@x.test`, passwordHash: 'h', role: 'node_admin' });
      const node = await makeNode(ctx.repos);
      const onNode = await makeSite(ctx.repos, node.id);
      const direct = await makeSite(ctx.repos);
      const foreign = await makeSite(ctx.repos);
      await users.assignNode(u.id, node.id);
      await users.assignNode(u.id, node.id); // idempotent
      await users.assignSite(u.id, direct.id);
      assert.deepEqual(await users.assignedNodeIds(u.id), [node.id]);
      assert.deepEqual(await users.assignedSiteIds(u.id), [direct.id]);
      assert.equal(await users.isAssignedSite(u.id, onNode.id), true);
      assert.equal(await users.isAssignedSite(u.id, direct.id), true);
      assert.equal(await users.isAssignedSite(u.id, foreign.id), false);
      assert.equal(await users.isAssignedNode(u.id, node.id), true);
      await assert.rejects(users.assignSite(u.id, 'no-such-site'), (e) => isConflict(e, 'reference'));
      assert.equal(await users.unassignNode(u.id, node.id), true);
      assert.equal(await users.isAssignedSite(u.id, onNode.id), false);
      assert.equal(await users.setRole(u.id, 'site_admin'), true);
      assert.equal(await users.setPasswordHash(u.id, 'new'), true);
      assert.equal((await users.credentialsByEmail(u.email))?.passwordHash, 'new');
    });

    it('take their tokens and assignments with them when removed', async () => {
      const { users, tokens } = ctx.repos;
      const u = await users.create({ email: `${unique('gone')}@x.test`, passwordHash: 'h', role: 'site_admin' });
      const site = await makeSite(ctx.repos);
      await users.assignSite(u.id, site.id);
      const hash = unique('tok');
      await tokens.create({ userId: u.id, tokenHash: hash, kind: 'api' });
      assert.equal(await users.remove(u.id), true);
      assert.equal(await tokens.authenticate(hash), undefined);
      assert.equal((await ctx.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM user_sites WHERE user_id = ?', [u.id]))?.n, 0);
    });
  });

  describe('tokens', () => {
    it('authenticate by hash until they expire, record use sparingly, and are revoked', async () => {
      const { users, tokens } = ctx.repos;
      const u = await users.create({ email: `${unique('t')}@x.test`, passwordHash: 'h', role: 'site_admin' });
      const hash = unique('session');
      const t = await tokens.create({ userId: u.id, tokenHash: hash, kind: 'session', expiresAt: ctx.clock.t + 60_000 });
      const api = await tokens.create({ userId: u.id, tokenHash: unique('api'), kind: 'api', name: 'backup script' });
      await assert.rejects(tokens.create({ userId: u.id, tokenHash: hash, kind: 'api' }), (e) => isConflict(e, 'duplicate'));
      const auth = await tokens.authenticate(hash);
      assert.deepEqual(auth, { token: t, user: u });
      assert.equal(await tokens.touch(t.id), true);
      assert.equal(await tokens.touch(t.id), false);
      assert.deepEqual((await tokens.listForUser(u.id)).map((x) => x.id).sort(), [t.id, api.id].sort());
      ctx.clock.advance(60_000);
      assert.equal(await tokens.authenticate(hash), undefined, 'expired');
      assert.ok((await tokens.deleteExpired()) >= 1);
      assert.equal(await tokens.get(t.id), undefined);
      assert.equal(await tokens.revoke(api.id, 'someone-else'), false);
      assert.equal(await tokens.revoke(api.id, u.id), true);
      assert.deepEqual(await tokens.listForUser(u.id), []);
    });
  });

  describe('join codes', () => {
    it('are used once, never after they expire, even by agents racing', async () => {
      const { joinCodes, nodes } = ctx.repos;
      const code = unique('code');
      await joinCodes.create({ codeHash: code, expiresAt: ctx.clock.t + 60_000 });
      assert.ok((await joinCodes.listOpen()).some((c) => c.codeHash === code));
      const racers = await Promise.all(Array.from({ length: 5 }, () => makeNode(ctx.repos, 'pending')));
      const results = await Promise.all(racers.map((n) => ctx.reposOn(ctx.db).joinCodes.consume(code, n.id)));
      const winners = results.filter((r) => r !== undefined);
      assert.equal(winners.length, 1);
      assert.ok(racers.some((n) => n.id === winners[0]?.usedByNode));
      const late = unique('late');
      await joinCodes.create({ codeHash: late, expiresAt: ctx.clock.t + 1000 });
      ctx.clock.advance(1000);
      assert.equal(await joinCodes.consume(late, (await nodes.list())[0]?.id ?? ''), undefined);
      assert.ok((await joinCodes.deleteExpired()) >= 1);
    });
  });

  describe('audit log', () => {
    it('records who did what with JSON detail, newest first, filtered and paged', async () => {
      const { audit } = ctx.repos;
      const target = unique('site');
      for (const action of ['site.create', 'backup.start', 'backup.stop']) {
        ctx.clock.advance(10);
        await audit.record({ userId: 'u1', action, targetType: 'site', targetId: target, detail: { action, n: 1 } });
      }
      const all = await audit.list({ targetType: 'site', targetId: target });
      assert.deepEqual(all.map((e) => e.action), ['backup.stop', 'backup.start', 'site.create']);
      assert.deepEqual(all[0]?.detail, { action: 'backup.stop', n: 1 });
      const page = await audit.list({ targetId: target, before: all[0]?.at, limit: 1 });
      assert.deepEqual(page.map((e) => e.action), ['backup.start']);
      const byNode = await audit.record({ nodeId: 'n1', action: 'node.join' });
      assert.deepEqual([byNode.userId, byNode.detail], [null, null]);
    });
  });
}
