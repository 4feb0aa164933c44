import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Db } from '../../../src/server/db/db.ts';
import type { Repos } from '../../../src/server/db/repos.ts';
import { makeNode, makeSite } from './suite.ts';
import type { SuiteContext } from './suite.ts';

// Schedules and the per-node job limit, on both databases. Races run over two pools on
// PostgreSQL (two server processes); SQLite has the one handle a process has.

const LEASE = 30_000;

export function scheduleCases(ctx: SuiteContext): void {
  async function racers(): Promise<{ repos: Repos[]; close: () => Promise<void> }> {
    if (ctx.target.dialect === 'sqlite') return { repos: [ctx.repos], close: async () => {} };
    const other: Db = await ctx.target.open();
    return { repos: [ctx.repos, ctx.reposOn(other)], close: () => other.close() };
  }

  describe('schedules', () => {
    it('a site without a row inherits; put stores mode, cron, zone, preset and next run; rows go with their site', async () => {
      const site = await makeSite(ctx.repos);
      assert.equal(await ctx.repos.schedules.get(site.id), undefined);
      assert.ok((await ctx.repos.schedules.ensureRows()) >= 1);
      assert.deepEqual(await ctx.repos.schedules.get(site.id), { siteId: site.id, mode: 'inherit', spec: null, nextRunAt: null, lastRunAt: null });
      const spec = { cron: '0 3 * * *', timezone: 'Europe/Berlin', preset: 'daily at 03:00' };
      const row = await ctx.repos.schedules.put(site.id, 'custom', spec, 12345);
      assert.deepEqual(row, { siteId: site.id, mode: 'custom', spec, nextRunAt: 12345, lastRunAt: null });
      assert.equal((await ctx.repos.schedules.nextRuns([site.id])).get(site.id), 12345);
      await assert.rejects(ctx.repos.schedules.put(site.id, 'custom', null, null), 'custom needs a cron (CHECK)');
      assert.ok(await ctx.repos.sites.remove(site.id));
      assert.equal(await ctx.repos.schedules.get(site.id), undefined);
    });

    it('the fleet default starts empty with a 30 minute window, and keeps what a change leaves out', async () => {
      const f0 = await ctx.repos.schedules.fleet();
      assert.deepEqual([f0.spec, f0.windowMinutes], [null, 30]);
      const spec = { cron: '0 * * * *', timezone: 'UTC', preset: 'hourly' };
      assert.deepEqual((await ctx.repos.schedules.setFleet({ spec })).spec, spec);
      const f2 = await ctx.repos.schedules.setFleet({ windowMinutes: 10 });
      assert.deepEqual([f2.spec, f2.windowMinutes], [spec, 10]);
      const f3 = await ctx.repos.schedules.setFleet({ spec: null, windowMinutes: 30 });
      assert.deepEqual([f3.spec, f3.windowMinutes], [null, 30]);
    });

    it('claimSlot: of 20 concurrent claims of one due run (two servers) exactly one wins', async () => {
      const site = await makeSite(ctx.repos);
      await ctx.repos.schedules.put(site.id, 'custom', { cron: '0 * * * *', timezone: 'UTC', preset: null }, 1000);
      const { repos, close } = await racers();
      try {
        const wins = await Promise.all(Array.from({ length: 20 }, (_, i) => (repos[i % repos.length] as Repos).schedules.claimSlot(site.id, 1000, 3_601_000, 2000)));
        assert.equal(wins.filter(Boolean).length, 1);
        const row = await ctx.repos.schedules.get(site.id);
        assert.deepEqual([row?.nextRunAt, row?.lastRunAt], [3_601_000, 2000]);
      } finally {
        await close();
      }
    });

    it('due lists runs at or before now with their node, earliest first', async () => {
      const node = await makeNode(ctx.repos);
      const [a, b, c] = [await makeSite(ctx.repos, node.id), await makeSite(ctx.repos, node.id), await makeSite(ctx.repos, node.id)];
      const spec = { cron: '0 * * * *', timezone: 'UTC', preset: null };
      const base = 9e12; // later than every other test's rows
      await ctx.repos.schedules.put(a.id, 'custom', spec, base + 20);
      await ctx.repos.schedules.put(b.id, 'custom', spec, base + 10);
      await ctx.repos.schedules.put(c.id, 'custom', spec, base + 30);
      const due = (await ctx.repos.schedules.due(base + 20, 1000)).filter((d) => d.nextRunAt >= base);
      assert.deepEqual(due.map((d) => [d.siteId, d.nodeId, d.nodeStatus]), [[b.id, node.id, 'active'], [a.id, node.id, 'active']]);
    });
  });

  describe('per-node job limit', () => {
    it('a node gets no more jobs than its limit (default 1), under 20 concurrent claims from two servers', async () => {
      const node = await makeNode(ctx.repos);
      assert.equal(node.jobLimit, 1);
      const sites = await Promise.all(Array.from({ length: 6 }, () => makeSite(ctx.repos, node.id)));
      for (const s of sites) await ctx.repos.jobs.enqueueBackup(s.id);
      const { repos, close } = await racers();
      try {
        const claimRace = async (): Promise<number> => {
          const got = await Promise.all(Array.from({ length: 20 }, (_, i) => (repos[i % repos.length] as Repos).jobs.claimNext(node.id, LEASE)));
          return got.filter(Boolean).length;
        };
        assert.equal(await claimRace(), 1);
        assert.equal((await ctx.repos.nodes.update(node.id, { jobLimit: 3 }))?.jobLimit, 3);
        assert.equal(await claimRace(), 2);
        assert.equal(await claimRace(), 0);
        // A finished job frees its slot.
        const held = (await ctx.repos.jobs.listForSite(sites[0]!.id)).concat(...(await Promise.all(sites.slice(1).map((s) => ctx.repos.jobs.listForSite(s.id))))).filter((j) => j.state === 'claimed');
        assert.equal(held.length, 3);
        assert.ok(await ctx.repos.jobs.finish(held[0]!.id, node.id, { state: 'done' }));
        assert.equal(await claimRace(), 1);
      } finally {
        await close();
      }
    });

    it('the limit is 1 to 64', async () => {
      const node = await makeNode(ctx.repos);
      await assert.rejects(ctx.repos.nodes.update(node.id, { jobLimit: 0 }));
      await assert.rejects(ctx.repos.nodes.update(node.id, { jobLimit: 65 }));
      assert.equal((await ctx.repos.nodes.update(node.id, { jobLimit: 64 }))?.jobLimit, 64);
    });
  });
}
