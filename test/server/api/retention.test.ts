import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { archiveFileName, archiveKey } from '../../../src/engine/archive-name.ts';
import type { ServerContext } from '../../../src/server/context.ts';
import { deliveriesRepo } from '../../../src/server/alerts/dispatch.ts';
import type { PruneFailure } from '../../../src/server/retention/prune-failed.ts';
import type { Storage } from '../../../src/storage/storage.ts';
import { listKeys, makeBucket, removeBucket } from '../../helpers/s3.ts';
import { DIALECTS, startTestServer, twoNodeFleet, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';
import { services } from '../../helpers/services.ts';

// Retention against real storage (MinIO and a local directory) on both databases: prunes
// delete objects, then rows, and leave no orphan; the guards (newest, pinned, busy site);
// the prune after a completed backup; failed deletions retried with backoff on the
// injectable clock and reported; reconcile's two kinds of orphan. The clock only moves when
// a test moves it.

const DAY = 86_400_000;
const T0 = Date.parse('2026-03-01T12:00:00Z');

for (const dialect of DIALECTS) {
  describe(`retention (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    let bucket: string;
    let localRoot: string;
    let clock = Date.now();
    const ctx = (): ServerContext => t.server.ctx;
    const rand = (): string => randomBytes(4).toString('hex');

    before(async () => {
      t = await startTestServer(dialect, { now: () => clock });
      // Retries run when a test says so (runOnce), never on the timer in between.
      await t.server.deletionRetrier.stop();
      f = await twoNodeFleet(t);
      bucket = await makeBucket('wpb-retention');
      localRoot = mkdtempSync(join(tmpdir(), 'wpb-retention-'));
    });
    // Sessions expire by this clock too: each test starts from the real time.
    beforeEach(() => {
      clock = Date.now();
    });
    after(async () => {
      await t.close();
      await removeBucket(bucket);
      rmSync(localRoot, { recursive: true, force: true });
    });

    /** A provider of its own per test (a prefix in the bucket, or a directory), so orphan counts are the test's. */
    async function provider(kind: 'local' | 's3'): Promise<string> {
      if (kind === 'local') return (await ctx().repos.storageProviders.create({ name: `local-${rand()}`, type: 'local', rootPath: join(localRoot, rand()) })).id;
      const m = services().minio;
      const res = await t.api('POST', '/api/v1/storage-providers', {
        body: { name: `s3-${rand()}`, type: 's3', endpoint: m.endpoint, bucket, region: m.region, prefix: `p-${rand()}/`, path_style: true, access_key_id: m.accessKey, secret_access_key: m.secretKey },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body.id as string;
    }
    const storageOf = async (providerId: string): Promise<Storage> => (await ctx().storage.require(providerId)).storage;
    const newSite = async (): Promise<string> => (await ctx().repos.sites.create({ nodeId: f.nodeA, name: `r-${rand()}.example.com`, wpPath: `/var/www/r-${rand()}` })).id;

    /** A completed backup made at `at`: its object in storage, then its row. */
    async function backupAt(siteId: string, providerId: string, at: number, jobId?: string): Promise<string> {
      const key = archiveKey(f.nodeA, siteId, archiveFileName(`s-${rand()}`, new Date(at)));
      const put = await (await storageOf(providerId)).put(key, Readable.from([randomBytes(64)]));
      const saved = clock;
      clock = at;
      const row = await ctx().repos.backups.create({ siteId, storageId: providerId, key, filename: key.split('/').pop() ?? key, jobId });
      clock = saved;
      await ctx().repos.backups.complete(row.id, { size: put.size, sha256: put.sha256 });
      return row.id;
    }
    const daily = async (siteId: string, providerId: string, n: number): Promise<string[]> => {
      const ids: string[] = [];
      for (let d = 0; d < n; d++) ids.push(await backupAt(siteId, providerId, T0 + d * DAY));
      return ids.reverse(); // newest first
    };
    const keyOf = async (id: string): Promise<string> => (await ctx().repos.backups.get(id))?.key ?? assert.fail(`no row ${id}`);
    const objectExists = async (providerId: string, key: string): Promise<boolean> => (await (await storageOf(providerId)).head(key)) !== undefined;

    for (const kind of ['s3', 'local'] as const) {
      it(`prunes on ${kind} storage as the policy says (dry run first) and leaves no orphan`, async () => {
        const pid = await provider(kind);
        const site = await newSite();
        const ids = await daily(site, pid, 6);
        const keys = await Promise.all(ids.map(keyOf));
        assert.equal((await t.api('PUT', `/api/v1/sites/${site}/retention`, { body: { keep_last: 2, keep_weekly: 2 } })).status, 200);

        const dry = await t.api('POST', `/api/v1/sites/${site}/prune`, { body: { dry_run: true } });
        assert.equal(dry.status, 200, JSON.stringify(dry.body));
        // 2026-03-01 is a Sunday (ISO week 9); the 2nd..6th are week 10.
        assert.deepEqual(dry.body.keep.map((k: { backup_id: string; kept_by: string[] }) => [k.backup_id, k.kept_by]), [[ids[0], ['last', 'weekly']], [ids[1], ['last']], [ids[5], ['weekly']]]);
        assert.deepEqual(dry.body.remove.map((r: { backup_id: string }) => r.backup_id), [ids[2], ids[3], ids[4]]);
        assert.match(dry.body.remove[0].reason, /kept by no rule of the site policy \(keep_last 2, keep_weekly 2, buckets in UTC\)/);
        assert.ok(dry.body.remove.every((r: { deleted: unknown }) => r.deleted === null));
        for (const key of keys) assert.ok(await objectExists(pid, key), 'a dry run deletes nothing');

        const real = await t.api('POST', `/api/v1/sites/${site}/prune`);
        assert.equal(real.status, 200);
        assert.ok(real.body.remove.every((r: { deleted: unknown }) => r.deleted === true));
        for (const [i, id] of ids.entries()) {
          const kept = i === 0 || i === 1 || i === 5;
          assert.equal((await ctx().repos.backups.get(id)) !== undefined, kept, `row ${i}`);
          assert.equal(await objectExists(pid, keys[i] ?? ''), kept, `object ${i}`);
        }
        if (kind === 's3') {
          const prefix = (await ctx().repos.storageProviders.get(pid))?.prefix ?? '';
          assert.deepEqual((await listKeys(bucket)).filter((k) => k.startsWith(prefix)).sort(), [keys[0], keys[1], keys[5]].map((k) => prefix + k).sort());
        }
        const rec = await t.api('POST', `/api/v1/storage-providers/${pid}/reconcile`, { body: { grace_minutes: 0 } });
        assert.equal(rec.status, 200, JSON.stringify(rec.body));
        assert.deepEqual([rec.body.objects_scanned, rec.body.orphan_objects, rec.body.orphan_rows], [3, [], []]);
        const audit = await ctx().repos.audit.list({ targetType: 'backup', limit: 100 });
        const pruned = new Set(audit.filter((e) => e.action === 'backup.prune').map((e) => e.targetId));
        assert.deepEqual(ids.map((id) => pruned.has(id)), [false, false, true, true, true, false]);
      });
    }

    it('never deletes the newest, a pinned backup, or anything of a site whose backup is queued', async () => {
      const pid = await provider('local');
      const site = await newSite();
      const ids = await daily(site, pid, 4);
      const oldest = ids[3] ?? '';
      const pin = await t.api('POST', `/api/v1/backups/backups/${oldest}/pin`);
      assert.equal(pin.status, 200);
      assert.equal(pin.body.pinned, true);
      assert.equal((await t.api('DELETE', `/api/v1/backups/backups/${oldest}`)).status, 409, 'a pinned backup is not deleted by hand either');
      await t.api('PUT', `/api/v1/sites/${site}/retention`, { body: { keep_last: 1 } });

      await ctx().repos.jobs.enqueueBackup(site);
      const busy = await t.api('POST', `/api/v1/sites/${site}/prune`);
      assert.match(busy.body.skipped, /queued/);
      assert.deepEqual(busy.body.remove, []);
      assert.equal((await ctx().repos.retention.completed(site)).length, 4);
      assert.equal((await t.api('POST', `/api/v1/sites/${site}/backup/stop`)).status, 200);
      assert.equal(await ctx().repos.jobs.activeForSite(site), undefined);

      const res = await t.api('POST', `/api/v1/sites/${site}/prune`);
      assert.equal(res.body.skipped, null);
      assert.deepEqual(res.body.keep.map((k: { backup_id: string; kept_by: string[] }) => [k.backup_id, k.kept_by]), [[ids[0], ['last']], [oldest, ['pinned']]]);
      assert.deepEqual((await ctx().repos.retention.completed(site)).map((b) => b.id), [ids[0], oldest]);

      assert.equal((await t.api('DELETE', `/api/v1/backups/backups/${oldest}/pin`)).body.pinned, false);
      await t.api('POST', `/api/v1/sites/${site}/prune`);
      assert.deepEqual((await ctx().repos.retention.completed(site)).map((b) => b.id), [ids[0]], 'the newest stays, whatever the policy');
    });

    it('stops deleting when a backup of the site is queued mid-prune', async () => {
      const pid = await provider('local');
      const site = await newSite();
      const ids = await daily(site, pid, 4);
      await t.api('PUT', `/api/v1/sites/${site}/retention`, { body: { keep_last: 1 } });
      // The first deletion queues a backup, as a schedule or a user might at that moment.
      const registry = ctx().storage;
      const realRequire = registry.require.bind(registry);
      registry.require = async (id) => {
        const found = await realRequire(id);
        const storage: Storage = Object.create(found.storage) as Storage;
        storage.delete = async (key) => {
          await found.storage.delete(key);
          if (!(await ctx().repos.jobs.activeForSite(site))) await ctx().repos.jobs.enqueueBackup(site);
        };
        return { ...found, storage };
      };
      try {
        const res = await t.api('POST', `/api/v1/sites/${site}/prune`);
        assert.deepEqual(res.body.remove.map((r: { backup_id: string; deleted: unknown }) => [r.backup_id, r.deleted]), [[ids[1], true], [ids[2], null], [ids[3], null]]);
        assert.match(res.body.remove[1].error, /left alone: a backup of this site is queued/);
        assert.deepEqual((await ctx().repos.retention.completed(site)).map((b) => b.id), [ids[0], ids[2], ids[3]]);
      } finally {
        registry.require = realRequire;
        await t.api('POST', `/api/v1/sites/${site}/backup/stop`);
      }
    });

    it('prunes after each completed backup (the agent\'s finish)', async () => {
      const pid = await provider('local');
      const site = await newSite();
      await daily(site, pid, 3);
      await t.api('PUT', `/api/v1/sites/${site}/retention`, { body: { keep_last: 1 } });
      await ctx().repos.jobs.enqueueBackup(site);
      const job = await ctx().repos.jobs.claimNext(f.nodeA, 600_000);
      assert.equal(job?.siteId, site);
      const fresh = await backupAt(site, pid, T0 + 10 * DAY, job.id);
      const fin = await t.api('POST', `/api/v1/agent/jobs/${job.id}/finish`, { token: f.keyA, body: { status: 'completed', stage: null, error: null } });
      assert.equal(fin.status, 200, JSON.stringify(fin.body));
      await ctx().jobEnded.idle();
      assert.deepEqual((await ctx().repos.retention.completed(site)).map((b) => b.id), [fresh]);
    });

    it('retries a failed deletion with backoff, reports it, and never shows the marked row as downloadable', async () => {
      const pid = await provider('s3');
      const site = await newSite();
      const ids = await daily(site, pid, 3);
      const doomed = ids[2] ?? '';
      const doomedKey = await keyOf(doomed);
      // A storage whose delete fails for one key, over the real one.
      let failing = true;
      const registry = ctx().storage;
      const realRequire = registry.require.bind(registry);
      registry.require = async (id) => {
        const found = await realRequire(id);
        const storage: Storage = Object.create(found.storage) as Storage;
        storage.delete = async (key) => (failing && key === doomedKey ? Promise.reject(new Error('injected: access denied')) : found.storage.delete(key));
        return { ...found, storage };
      };
      const reported: PruneFailure[] = [];
      const unsubscribe = ctx().pruneFailed.subscribe((e) => void reported.push(e));
      try {
        await t.api('PUT', `/api/v1/sites/${site}/retention`, { body: { keep_last: 1 } });
        const res = await t.api('POST', `/api/v1/sites/${site}/prune`);
        const byId = Object.fromEntries(res.body.remove.map((r: { backup_id: string }) => [r.backup_id, r]));
        assert.equal(byId[ids[1] ?? ''].deleted, true);
        assert.equal(byId[doomed].deleted, false);
        assert.match(byId[doomed].error, /injected: access denied; retried from/);

        let row = await ctx().repos.backups.get(doomed);
        assert.deepEqual([row?.status, row?.deleteAttempts, row?.deleteAfter], ['deleting', 1, clock + 60_000]);
        assert.ok(await objectExists(pid, doomedKey));
        const listed = await t.api('GET', `/api/v1/sites/${site}/backups`);
        assert.deepEqual(listed.body.backups.map((b: { id: string }) => b.id), [ids[0]]);
        assert.equal((await t.api('GET', `/api/v1/backups/backups/${doomed}/download`)).status, 404);
        const status = await t.api('GET', `/api/v1/sites/${site}/retention`);
        assert.deepEqual(status.body.pending_deletions.map((d: { backup_id: string; attempts: number }) => [d.backup_id, d.attempts]), [[doomed, 1]]);
        assert.match(status.body.pending_deletions[0].error, /injected/);
        await ctx().pruneFailed.idle();
        assert.deepEqual(reported.map((e) => [e.backupId, e.attempts]), [[doomed, 1]]);
        assert.ok((await ctx().repos.audit.list({ targetId: doomed })).some((e) => e.action === 'backup.delete_failed'));
        const alertsOn = async (): Promise<string[]> => (await deliveriesRepo(ctx()).activeFor([`site:${site}`])).map((a) => a.kind);
        assert.deepEqual(await alertsOn(), ['prune.failed'], 'the "prune failed" alert is raised');

        clock += 59_000;
        assert.deepEqual(await t.server.deletionRetrier.runOnce(), { deleted: [], failed: [] }, 'not due yet');
        clock += 1_000;
        assert.deepEqual(await t.server.deletionRetrier.runOnce(), { deleted: [], failed: [doomed] });
        row = await ctx().repos.backups.get(doomed);
        assert.deepEqual([row?.status, row?.deleteAttempts, row?.deleteAfter], ['deleting', 2, clock + 120_000], 'the wait doubles');

        failing = false;
        clock += 120_000;
        assert.deepEqual(await t.server.deletionRetrier.runOnce(), { deleted: [doomed], failed: [] });
        assert.equal(await ctx().repos.backups.get(doomed), undefined);
        assert.equal(await objectExists(pid, doomedKey), false);
        await ctx().pruneFailed.idle();
        assert.equal(reported.length, 2);
        assert.deepEqual(await alertsOn(), [], 'the retry that succeeded clears it');
      } finally {
        registry.require = realRequire;
        unsubscribe();
      }
    });

    for (const kind of ['s3', 'local'] as const) {
      it(`reconcile on ${kind} finds rows without objects and objects without rows, and removes them on request`, async () => {
        const pid = await provider(kind);
        const storage = await storageOf(pid);
        const site = await newSite();
        const [kept, lost] = await daily(site, pid, 2);
        await storage.delete(await keyOf(lost ?? ''));
        const strayKey = archiveKey(f.nodeA, site, 'stray_20260101_000000.tar.zst');
        await storage.put(strayKey, Readable.from([Buffer.from('stray')]));
        await storage.put('not-a-backup/readme.txt', Readable.from([Buffer.from('x')]));
        // An upload in progress: its row is 'uploading' and its object is there already.
        const uploadingKey = archiveKey(f.nodeA, site, 'uploading_20260101_000000.tar.zst');
        await storage.put(uploadingKey, Readable.from([Buffer.from('part')]));
        await ctx().repos.backups.create({ siteId: site, storageId: pid, key: uploadingKey, filename: 'uploading_20260101_000000.tar.zst' });

        clock = Date.now();
        const young = await t.api('POST', `/api/v1/storage-providers/${pid}/reconcile`, { body: {} });
        assert.deepEqual([young.body.orphan_objects, young.body.skipped], [[], { in_progress: 1, recent: 1 }], 'a young object, or one being uploaded, is no orphan');
        assert.deepEqual(young.body.orphan_rows.map((r: { backup_id: string }) => r.backup_id), [lost]);

        clock = Date.now() + 7 * 3600_000;
        const found = await t.api('POST', `/api/v1/storage-providers/${pid}/reconcile`, { body: {} });
        assert.deepEqual(found.body.orphan_objects.map((o: { key: string }) => o.key), [strayKey]);
        assert.deepEqual(found.body.orphan_rows.map((r: { backup_id: string }) => r.backup_id), [lost]);
        assert.deepEqual([found.body.skipped, found.body.removed], [{ in_progress: 1, recent: 0 }, null]);
        assert.ok(await storage.head(strayKey), 'listing removes nothing');

        const removed = await t.api('POST', `/api/v1/storage-providers/${pid}/reconcile`, { body: { delete: true } });
        assert.deepEqual(removed.body.removed, { objects: 1, rows: 1, errors: [] });
        assert.equal(await storage.head(strayKey), undefined);
        assert.equal(await ctx().repos.backups.get(lost ?? ''), undefined);
        assert.ok(await ctx().repos.backups.get(kept ?? ''));
        assert.ok(await storage.head('not-a-backup/readme.txt'), 'only keys at a backup\'s place are looked at');
        assert.ok(await storage.head(uploadingKey), 'an upload in progress is left alone');
        const again = await t.api('POST', `/api/v1/storage-providers/${pid}/reconcile`, { body: {} });
        assert.deepEqual([again.body.orphan_objects, again.body.orphan_rows], [[], []]);
        assert.ok((await ctx().repos.audit.list({ targetId: pid })).some((e) => e.action === 'storage.reconcile_delete'));
      });
    }

    it('keeps the fleet default for sites without their own, in the fleet time zone, and refuses bad input', async () => {
      const site = await newSite();
      const set = await t.api('PUT', '/api/v1/retention', { body: { keep_daily: 7, keep_monthly: -1, time_zone: 'Europe/Berlin' } });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      const shown = await t.api('GET', `/api/v1/sites/${site}/retention`);
      assert.equal(shown.body.source, 'fleet');
      assert.equal(shown.body.time_zone, 'Europe/Berlin');
      assert.deepEqual(shown.body.effective, { keep_last: null, keep_hourly: null, keep_daily: 7, keep_weekly: null, keep_monthly: -1, keep_yearly: null });
      await t.api('PUT', `/api/v1/sites/${site}/retention`, { body: { keep_last: 3 } });
      const own = await t.api('GET', `/api/v1/sites/${site}/retention`);
      assert.deepEqual([own.body.source, own.body.effective.keep_last, own.body.effective.keep_daily], ['site', 3, null], 'a site policy replaces the default whole');
      await t.api('DELETE', `/api/v1/sites/${site}/retention`);
      assert.equal((await t.api('GET', `/api/v1/sites/${site}/retention`)).body.source, 'fleet');
      for (const body of [{ time_zone: 'Mars/Olympus' }, { keep_daily: -2 }, { keep_daily: 1.5 }, { keep_weekly: '3' }, { keep_forever: 1 }]) {
        const res = await t.api('PUT', '/api/v1/retention', { body });
        assert.equal(res.status, 400, JSON.stringify(body));
      }
      assert.equal((await t.api('PUT', '/api/v1/retention', { body: {} })).status, 200);
      const siteAdmin = await t.api('PUT', `/api/v1/sites/${f.siteA}/retention`, { body: { keep_last: 1 }, token: f.siteAdmin.token });
      assert.equal(siteAdmin.status, 403);
    });
  });
}
