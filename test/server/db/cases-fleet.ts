import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isConflict } from '../../../src/server/db/errors.ts';
import { makeNode, makeSite, unique } from './suite.ts';
import type { SuiteContext } from './suite.ts';

export function fleetCases(ctx: SuiteContext): void {
  describe('nodes', () => {
    it('are created, found by key hash, updated, touched at most every few seconds and removed', async () => {
      const { nodes } = ctx.repos;
      const key = unique('keyhash');
      const node = await nodes.create({ hostname: 'web1.example', nodeKeyHash: key });
      assert.deepEqual(node, { id: node.id, hostname: 'web1.example', status: 'pending', lastSeen: null, quotaBytes: null, hasKey: true, keyRotationAt: null, jobLimit: 1, createdAt: ctx.clock.t });
      assert.equal((await nodes.findByKeyHash(key))?.id, node.id);
      assert.equal(await nodes.findByKeyHash('other'), undefined);
      assert.equal((await nodes.update(node.id, { status: 'active', quotaBytes: 5e9 }))?.quotaBytes, 5e9);
      assert.equal((await nodes.update(node.id, { quotaBytes: null }))?.quotaBytes, null);
      assert.equal(await nodes.touchMany([node.id]), 1);
      assert.equal(await nodes.touchMany([node.id]), 0, 'a second touch within the gap writes nothing');
      ctx.clock.advance(6000);
      assert.equal(await nodes.touchMany([node.id]), 1);
      assert.equal((await nodes.get(node.id))?.lastSeen, ctx.clock.t);
      assert.ok((await nodes.list()).some((n) => n.id === node.id));
      assert.equal(await nodes.remove(node.id), true);
      assert.equal(await nodes.get(node.id), undefined);
    });

    it('are touched many at once, each at most once per gap, past 64 ids a statement', async () => {
      const { nodes } = ctx.repos;
      const made = await Promise.all(Array.from({ length: 70 }, () => makeNode(ctx.repos)));
      const ids = made.map((n) => n.id);
      assert.equal(await nodes.touchMany([ids[0] as string]), 1);
      assert.equal(await nodes.touchMany([...ids, ids[1] as string]), 69, 'the one touched within the gap is left alone, a repeat counts once');
      assert.equal(await nodes.touchMany(ids.slice(0, 3)), 0);
      ctx.clock.advance(6000);
      assert.equal(await nodes.touchMany(ids.slice(0, 3)), 3);
      assert.equal((await nodes.get(ids[69] as string))?.lastSeen, ctx.clock.t - 6000);
      assert.equal((await nodes.get(ids[2] as string))?.lastSeen, ctx.clock.t);
    });

    it('cannot be removed while sites belong to them', async () => {
      const site = await makeSite(ctx.repos);
      await assert.rejects(ctx.repos.nodes.remove(site.nodeId), (e) => isConflict(e, 'reference'));
    });
  });

  describe('sites', () => {
    it('are created idle, listed by node and by assignment, updated and removed', async () => {
      const { sites, users } = ctx.repos;
      const node = await makeNode(ctx.repos);
      const site = await sites.create({ nodeId: node.id, name: 'example.com', wpPath: '/var/www/example', dbName: 'wp', excludes: ['*.log'], retentionCount: 7 });
      assert.equal(site.status, 'idle');
      assert.deepEqual(site.excludes, ['*.log']);
      assert.equal(site.retentionCount, 7);
      const other = await makeSite(ctx.repos, node.id);
      assert.deepEqual((await sites.list({ nodeId: node.id })).map((s) => s.id).sort(), [site.id, other.id].sort());
      await assert.rejects(sites.create({ nodeId: node.id, name: 'again', wpPath: '/var/www/example' }), (e) => isConflict(e, 'duplicate'));

      const user = await users.create({ email: `${unique('u')}@x.test`, passwordHash: 'h', role: 'site_admin' });
      await users.assignSite(user.id, site.id);
      assert.deepEqual((await sites.list({ visibleTo: user.id })).map((s) => s.id), [site.id]);

      const updated = await sites.update(site.id, { excludes: ['cache/'], quotaBytes: 1000, sizeBytes: 5e9, scheduleCron: '0 3 * * *', dbName: null });
      assert.deepEqual([updated?.excludes, updated?.quotaBytes, updated?.sizeBytes, updated?.scheduleCron, updated?.dbName], [['cache/'], 1000, 5e9, '0 3 * * *', null]);
      assert.equal(await sites.remove(other.id), true);
      assert.equal(await sites.get(other.id), undefined);
      assert.equal(await sites.update(other.id, { name: 'gone' }), undefined);
    });

    it('are read several at once by id, unknown and repeated ids included', async () => {
      const node = await makeNode(ctx.repos);
      const made = await Promise.all([1, 2, 3].map(() => makeSite(ctx.repos, node.id)));
      const ids = made.map((s) => s.id);
      assert.deepEqual(await ctx.repos.sites.getMany([]), []);
      // Three ids and an unknown one: four, no padding; five with a repeat pad to eight.
      const found = await ctx.repos.sites.getMany([...ids, 'no-such-site']);
      assert.deepEqual(found.map((s) => s.id).sort(), [...ids].sort());
      assert.deepEqual(found.find((s) => s.id === ids[0]), await ctx.repos.sites.get(ids[0] as string));
      assert.deepEqual((await ctx.repos.sites.getMany([...ids, ids[0] as string, 'x'])).map((s) => s.id).sort(), [...ids].sort());
    });

    it('take progress only from their running job, and reset to idle', async () => {
      const { sites, jobs } = ctx.repos;
      const site = await makeSite(ctx.repos);
      const p = { progress: 10, stage: 'backup_db', stageDetail: 'Dumping' };
      assert.equal(await jobs.report('no-job', site.nodeId, 30_000, p), undefined);
      const job = await jobs.enqueueBackup(site.id);
      assert.equal(await jobs.report(job.id, site.nodeId, 30_000, p), undefined, 'a queued job is not claimed yet');
      assert.equal((await jobs.claimNext(site.nodeId, 30_000))?.id, job.id);
      assert.deepEqual(await jobs.report(job.id, site.nodeId, 30_000, p), { cancelRequested: false, leaseUntil: ctx.clock.t + 30_000 });
      await assert.rejects(jobs.report(job.id, site.nodeId, 30_000, { ...p, progress: 101 }), /0 to 100/);
      const state = await sites.backupState(site.id);
      assert.deepEqual(
        { status: state?.status, progress: state?.progress, stage: state?.stage, detail: state?.stageDetail, job: state?.currentJobId },
        { status: 'running', progress: 10, stage: 'backup_db', detail: 'Dumping', job: job.id },
      );
      await jobs.resetSite(site.id);
      const idle = await sites.backupState(site.id);
      assert.deepEqual([idle?.status, idle?.progress, idle?.stage, idle?.currentJobId], ['idle', 0, null, null]);
      assert.equal(await jobs.report(job.id, site.nodeId, 30_000, p), undefined, 'a reset site takes no more reports from the old job');
      assert.equal((await sites.backupState(site.id))?.progress, 0);
    });
  });

  describe('storage providers', () => {
    it('keep credentials encrypted, return them only through credentials(), and have one default', async () => {
      const { storageProviders: sp } = ctx.repos;
      const creds = { accessKeyId: 'AKIA', secretAccessKey: 'very-secret' };
      const s3 = await sp.create({ name: unique('s3'), type: 's3', bucket: 'b', endpoint: 'http://minio', region: 'us-east-1', pathStyle: true, credentials: creds, isDefault: true });
      assert.equal(s3.hasCredentials, true);
      assert.equal(s3.pathStyle, true);
      assert.ok(!JSON.stringify(s3).includes('very-secret'));
      const stored = await ctx.db.get<{ credentials_enc: string }>('SELECT credentials_enc FROM storage_providers WHERE id = ?', [s3.id]);
      assert.ok(stored && !stored.credentials_enc.includes('very-secret'));
      assert.deepEqual(await sp.credentials(s3.id), creds);

      const local = await sp.create({ name: unique('local'), type: 'local', rootPath: '/srv/backups', isDefault: true });
      assert.equal((await sp.getDefault())?.id, local.id);
      assert.equal((await sp.get(s3.id))?.isDefault, false);
      assert.equal(await sp.setDefault(s3.id), true);
      assert.equal((await sp.getDefault())?.id, s3.id);
      assert.equal((await sp.update(s3.id, { credentials: null }))?.hasCredentials, false);
      assert.equal(await sp.credentials(s3.id), undefined);
      await assert.rejects(sp.create({ name: local.name, type: 'local', rootPath: '/x' }), (e) => isConflict(e, 'duplicate'));
    });

    it('refuse a credentials blob moved to another row', async () => {
      const { storageProviders: sp } = ctx.repos;
      const a = await sp.create({ name: unique('a'), type: 's3', bucket: 'a', credentials: { accessKeyId: 'a', secretAccessKey: 'a' } });
      const b = await sp.create({ name: unique('b'), type: 's3', bucket: 'b' });
      await ctx.db.exec('UPDATE storage_providers SET credentials_enc = (SELECT credentials_enc FROM storage_providers WHERE id = ?) WHERE id = ?', [a.id, b.id]);
      await assert.rejects(sp.credentials(b.id), /integrity check/);
    });
  });

  describe('backups', () => {
    it('go from uploading to completed, list newest first, count towards usage and are removed', async () => {
      const { backups, sites, storageProviders } = ctx.repos;
      const site = await makeSite(ctx.repos);
      const store = await storageProviders.create({ name: unique('store'), type: 'local', rootPath: '/srv' });
      const made = [];
      for (const size of [100, 200, 300]) {
        ctx.clock.advance(1000);
        const b = await backups.create({ siteId: site.id, storageId: store.id, key: unique('k'), filename: 'f.tar.zst' });
        assert.equal(b.status, 'uploading');
        made.push(await backups.complete(b.id, { size, sha256: 'ab'.repeat(32), sourceBytes: size * 4 }));
      }
      assert.equal(await backups.complete(made[0]?.id ?? '', { size: 1, sha256: 'x' }), undefined, 'completes once');
      assert.deepEqual((await backups.listBySite(site.id)).map((b) => b.size), [300, 200, 100]);
      assert.deepEqual((await backups.listBySite(site.id, { limit: 1, before: made[2]?.createdAt })).map((b) => b.size), [200]);
      assert.equal((await backups.latestCompleted(site.id))?.size, 300);
      assert.equal(await backups.usageBySite(site.id), 600);
      assert.equal(await backups.usageByNode(site.nodeId), 600);
      assert.equal(await backups.compressionRatio(site.id), 0.25);
      assert.equal(await backups.compressionRatio((await makeSite(ctx.repos)).id), undefined);
      assert.ok((await backups.compressionRatio()) !== undefined);

      const last = made[2]?.id ?? '';
      await ctx.db.exec('UPDATE sites SET last_backup_id = ? WHERE id = ?', [last, site.id]);
      await assert.rejects(sites.remove(site.id), (e) => isConflict(e, 'reference'), 'a site with backups is not removed');
      await assert.rejects(storageProviders.remove(store.id), (e) => isConflict(e, 'reference'));
      assert.equal((await backups.markDeleting(last))?.status, 'deleting');
      assert.equal(await backups.remove(last), true);
      assert.equal((await sites.get(site.id))?.lastBackupId, null);
      assert.equal(await backups.usageBySite(site.id), 300);
    });
  });
}
