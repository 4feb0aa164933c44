import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeNode, makeSite, unique } from './suite.ts';
import type { SuiteContext } from './suite.ts';

// Ending access at the repository level (migration 4): disabled users, tokens ended per user,
// node keys rotated through a pending key, revoked, and re-join codes bound to a node.

export function accessCases(ctx: SuiteContext): void {
  describe('ending access', () => {
    const user = async (): Promise<string> => (await ctx.repos.users.create({ email: `${unique('u')}@x.test`, passwordHash: 'h', role: 'site_admin' })).id;
    const token = async (userId: string, kind: 'session' | 'api'): Promise<{ id: string; hash: string }> => {
      const hash = unique('hash');
      return { id: (await ctx.repos.tokens.create({ userId, tokenHash: hash, kind })).id, hash };
    };

    it('a disabled user’s tokens do not authenticate, and come back with the flag cleared', async () => {
      const { users, tokens } = ctx.repos;
      const u = await user();
      const t = await token(u, 'api');
      assert.equal((await users.get(u))?.disabled, false);
      assert.equal(await users.setDisabled(u, true), true);
      assert.equal((await users.get(u))?.disabled, true);
      assert.equal((await users.credentialsByEmail((await users.get(u))?.email ?? ''))?.user.disabled, true);
      assert.equal(await tokens.authenticate(t.hash), undefined);
      await users.setDisabled(u, false);
      assert.equal((await tokens.authenticate(t.hash))?.user.id, u);
    });

    it('revokeForUser ends all of a user’s tokens but one, or one kind, and no one else’s', async () => {
      const { tokens } = ctx.repos;
      const u = await user();
      const other = await user();
      const keep = await token(u, 'session');
      await token(u, 'session');
      await token(u, 'api');
      const others = await token(other, 'api');
      assert.equal(await tokens.revokeForUser(u, { kind: 'api' }), 1);
      assert.equal(await tokens.revokeForUser(u, { exceptId: keep.id }), 1);
      assert.deepEqual((await tokens.listForUser(u)).map((t) => t.id), [keep.id]);
      assert.equal(await tokens.revokeForUser(u), 1);
      assert.ok(await tokens.authenticate(others.hash));
    });

    it('a rotated node key: the pending key is promoted when first used, and the old one stops working', async () => {
      const { nodes } = ctx.repos;
      const node = await nodes.create({ hostname: unique('web'), status: 'active', nodeKeyHash: unique('old') });
      const old = (await ctx.db.get<{ h: string }>('SELECT node_key_hash AS h FROM nodes WHERE id = ?', [node.id]))?.h ?? '';
      assert.equal(await nodes.issuePendingKey(node.id, unique('early')), false, 'no rotation asked for');
      assert.equal(await nodes.requestKeyRotation(node.id), true);
      assert.equal((await nodes.get(node.id))?.keyRotationAt, ctx.clock.now());
      const next = unique('new');
      assert.equal(await nodes.issuePendingKey(node.id, next), true);
      assert.equal((await nodes.findByKeyHash(old))?.id, node.id, 'the old key works until the new one is used');
      // Another server's handle sees and promotes the same rows.
      const promoted = await ctx.reposOn(ctx.db).nodes.findByKeyHash(next);
      assert.equal(promoted?.id, node.id);
      assert.equal(promoted?.keyRotationAt, null);
      assert.equal(await nodes.findByKeyHash(old), undefined);
      assert.equal((await nodes.findByKeyHash(next))?.id, node.id);
      const empty = await makeNode(ctx.repos);
      assert.equal(await nodes.requestKeyRotation(empty.id), false, 'a node without a key has nothing to rotate');
    });

    it('a node key and the job its request names read in one query: as findByKeyHash and jobs.get give them, pending keys promoted too', async () => {
      const { nodes, jobs } = ctx.repos;
      const key = unique('key');
      const node = await nodes.create({ hostname: unique('web'), status: 'active', nodeKeyHash: key });
      const site = await makeSite(ctx.repos, node.id);
      const job = await jobs.enqueueBackup(site.id);
      assert.deepEqual(await nodes.findByKeyHashWithJob(key, job.id), { node: await nodes.findByKeyHash(key), job: await jobs.get(job.id) });
      assert.deepEqual(await nodes.findByKeyHashWithJob(key, 'no-such-job'), { node: await nodes.findByKeyHash(key), job: undefined });
      assert.equal(await nodes.findByKeyHashWithJob(unique('other'), job.id), undefined, 'an unknown key finds nothing, whatever the job');
      await nodes.requestKeyRotation(node.id);
      const next = unique('next');
      await nodes.issuePendingKey(node.id, next);
      const promoted = await nodes.findByKeyHashWithJob(next, job.id);
      assert.equal(promoted?.node.id, node.id);
      assert.equal(promoted?.node.keyRotationAt, null, 'the pending key became the key');
      assert.deepEqual(promoted?.job, await jobs.get(job.id));
      assert.equal(await nodes.findByKeyHashWithJob(key, job.id), undefined, 'the old key stopped working');
    });

    it('node keys read together (node-key-reads.ts) each get the answer their own read would, in one statement on PostgreSQL', async () => {
      const { nodes, jobs } = ctx.repos;
      const keys = [unique('k1'), unique('k2'), unique('k3')];
      const made = await Promise.all(keys.map((k) => nodes.create({ hostname: unique('web'), status: 'active', nodeKeyHash: k })));
      const job = await jobs.enqueueBackup((await makeSite(ctx.repos, made[0]?.id)).id);
      await nodes.requestKeyRotation(made[2]?.id ?? '');
      const pending = unique('pending');
      await nodes.issuePendingKey(made[2]?.id ?? '', pending);
      const asks: [string, string][] = [[keys[0] ?? '', job.id], [keys[1] ?? '', job.id], [keys[0] ?? '', 'no-such-job'], [unique('stranger'), job.id], [keys[0] ?? '', job.id]];
      const expected = await Promise.all(asks.map(([k, j]) => nodes.findByKeyHashWithJob(k, j)));
      // Statements counted: the first read goes alone, the ones that arrive meanwhile go in one.
      let statements = 0;
      const counting = new Proxy(ctx.db, {
        get: (db, name) => {
          const v: unknown = Reflect.get(db, name);
          if (typeof v !== 'function') return v;
          return (...a: unknown[]): unknown => {
            if (name === 'query' || name === 'get') statements++;
            return Reflect.apply(v, db, a);
          };
        },
      });
      const batched = ctx.reposOn(counting, { batchKeyReads: { maxInFlight: 1, maxBatch: 10 } }).nodes;
      assert.deepEqual(await Promise.all(asks.map(([k, j]) => batched.findByKeyHashWithJob(k, j))), expected);
      if (ctx.target.dialect === 'postgres') assert.equal(statements, 2, 'the first read alone, the four queued behind it (one of them twice) in one statement');
      // A pending key read in a batch is promoted, as by a read of its own.
      const [promoted, plain] = await Promise.all([batched.findByKeyHashWithJob(pending, job.id), batched.findByKeyHashWithJob(keys[1] ?? '', job.id)]);
      assert.equal(promoted?.node.id, made[2]?.id);
      assert.equal(promoted?.node.keyRotationAt, null);
      assert.equal(promoted?.job?.id, job.id);
      assert.equal(plain?.node.id, made[1]?.id);
    });

    it('a token and the site its request names read in one query: as authenticate and sites.get give them', async () => {
      const { users, tokens, sites } = ctx.repos;
      const u = await users.create({ email: `${unique('reader')}@x.test`, passwordHash: 'h', role: 'site_admin' });
      const hash = unique('tok');
      await tokens.create({ userId: u.id, tokenHash: hash, kind: 'api' });
      const site = await makeSite(ctx.repos);
      assert.deepEqual(await tokens.authenticateWithSite(hash, site.id), { ...(await tokens.authenticate(hash)), site: await sites.get(site.id) });
      assert.deepEqual(await tokens.authenticateWithSite(hash, 'no-such-site'), { ...(await tokens.authenticate(hash)), site: undefined });
      assert.equal(await tokens.authenticateWithSite(unique('other'), site.id), undefined);
    });

    it('revoking a node key clears it and ends the leases of the node’s jobs (a running one fails)', async () => {
      const { nodes, jobs } = ctx.repos;
      const node = await nodes.create({ hostname: unique('web'), status: 'active', nodeKeyHash: unique('key') });
      const site = await makeSite(ctx.repos, node.id);
      await jobs.enqueueBackup(site.id);
      const job = await jobs.claimNext(node.id, 600_000);
      assert.ok(job);
      assert.ok(await jobs.report(job.id, node.id, 600_000, { progress: 1, stage: 'backup_db', stageDetail: null }));
      assert.equal((await jobs.get(job.id))?.state, 'running');
      assert.equal(await nodes.revokeKey(node.id), true);
      assert.equal((await nodes.get(node.id))?.hasKey, false);
      const expired = await jobs.expireLeases();
      assert.deepEqual(expired.map((j) => j.id).filter((id) => id === job.id), [job.id]);
    });

    it('a re-join code is used once, only as one, and a plain join code never re-joins', async () => {
      const { joinCodes } = ctx.repos;
      const node = await makeNode(ctx.repos);
      const later = ctx.clock.now() + 60_000;
      const bound = unique('bound');
      const plain = unique('plain');
      await joinCodes.create({ codeHash: bound, expiresAt: later, nodeId: node.id });
      await joinCodes.create({ codeHash: plain, expiresAt: later });
      assert.equal(await joinCodes.consumeRejoin(plain), undefined);
      assert.equal(await joinCodes.consume(bound, (await makeNode(ctx.repos)).id), undefined, 'a re-join code makes no new node');
      assert.equal((await joinCodes.consumeRejoin(bound))?.nodeId, node.id);
      assert.equal(await joinCodes.consumeRejoin(bound), undefined);
    });
  });
}
