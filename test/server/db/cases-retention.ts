import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupRow } from '../../../src/server/db/backups.ts';
import type { Repos } from '../../../src/server/db/repos.ts';
import { makeSite, unique } from './suite.ts';
import type { SuiteContext } from './suite.ts';

// Retention's rows (db/retention.ts): policies, and the one-winner guards between pins,
// prunes and retries when several servers act on the same backup at once.

async function completedBackup(r: Repos, siteId: string): Promise<BackupRow> {
  const store = await r.storageProviders.create({ name: unique('ret'), type: 'local', rootPath: '/srv/ret' });
  const b = await r.backups.create({ siteId, storageId: store.id, key: unique('k'), filename: 'f.tar.zst' });
  return (await r.backups.complete(b.id, { size: 1, sha256: 'ab'.repeat(32) })) ?? assert.fail('completed');
}

export function retentionCases(ctx: SuiteContext): void {
  describe('retention', () => {
    it('stores the fleet policy and a site\'s own, which goes with its site', async () => {
      const { retention, sites } = ctx.repos;
      const none = { keepLast: null, keepHourly: null, keepDaily: null, keepWeekly: null, keepMonthly: null, keepYearly: null };
      const fleet = await retention.setPolicy(null, { ...none, keepDaily: 7, timeZone: 'Europe/Berlin' });
      assert.deepEqual([fleet.siteId, fleet.keepDaily, fleet.timeZone], [null, 7, 'Europe/Berlin']);
      assert.equal((await retention.setPolicy(null, { ...none, keepLast: 2, timeZone: 'UTC' })).keepDaily, null, 'a set replaces the whole policy');
      const site = await makeSite(ctx.repos);
      const own = await retention.setPolicy(site.id, { ...none, keepLast: 3, timeZone: 'Asia/Tokyo' });
      assert.deepEqual([own.siteId, own.keepLast, own.timeZone], [site.id, 3, null], 'the time zone is the fleet\'s alone');
      assert.equal(await sites.remove(site.id), true);
      assert.equal(await retention.getPolicy(site.id), undefined);
      assert.equal(await retention.clearPolicy(null), true);
      assert.equal(await retention.getPolicy(null), undefined);
    });

    it('lets exactly one of a pin and a prune on two servers win', async () => {
      const other = await ctx.target.open();
      try {
        const r2 = ctx.reposOn(other);
        for (let i = 0; i < 5; i++) {
          const b = await completedBackup(ctx.repos, (await makeSite(ctx.repos)).id);
          const [pinned, claimed] = await Promise.all([ctx.repos.retention.setPinned(b.id, true), r2.retention.claimForDeletion(b.id, ctx.clock.t + 1000)]);
          const row = await ctx.repos.backups.get(b.id);
          if (claimed) assert.equal(row?.status, 'deleting');
          else assert.deepEqual([row?.status, row?.pinned, pinned?.pinned], ['completed', true, true]);
          assert.equal(await ctx.repos.retention.claimForDeletion(b.id, 0), undefined, 'never claimed twice, never a pinned one');
        }
      } finally {
        await other.close();
      }
    });

    it('hands a due deletion to one retrier, records failures, and lists what is pending', async () => {
      const other = await ctx.target.open();
      try {
        const site = await makeSite(ctx.repos);
        const b = await completedBackup(ctx.repos, site.id);
        const marked = (await ctx.repos.retention.claimForDeletion(b.id, ctx.clock.t + 500)) ?? assert.fail('claimed');
        assert.deepEqual(await ctx.repos.retention.dueDeletions(ctx.clock.t), [], 'not due while claimed');
        const failed = await ctx.repos.retention.deletionFailed(b.id, 'denied', ctx.clock.t + 1000);
        assert.deepEqual([failed?.deleteAttempts, failed?.deleteError, failed?.deleteAfter], [1, 'denied', ctx.clock.t + 1000]);
        ctx.clock.advance(1000);
        const due = (await ctx.repos.retention.dueDeletions(ctx.clock.t)).filter((d) => d.id === marked.id);
        assert.equal(due.length, 1);
        const row = due[0] ?? assert.fail('due');
        const wins = await Promise.all([ctx.repos.retention.claimRetry(row, ctx.clock.t + 60_000), ctx.reposOn(other).retention.claimRetry(row, ctx.clock.t + 60_000)]);
        assert.deepEqual(wins.filter(Boolean).length, 1);
        assert.deepEqual((await ctx.repos.retention.pendingDeletions(site.id)).map((p) => p.id), [b.id]);
        assert.equal(await ctx.repos.retention.setPinned(b.id, true), undefined, 'a backup being deleted cannot be pinned');
      } finally {
        await other.close();
      }
    });
  });
}
