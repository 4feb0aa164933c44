import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cron } from 'croner';
import { openContext, type ServerContext } from '../../src/server/context.ts';
import { scheduleOnce, startScheduler } from '../../src/server/scheduler.ts';
import { nextRunAfter, specOf, spreadOffsetMs } from '../../src/server/schedule-spec.ts';
import { setFleetSchedule, setSiteSchedule } from '../../src/server/services/schedules.ts';
import { DIALECTS } from '../helpers/server.ts';
import { postgresTarget, sqliteTarget, type Target } from './db/targets.ts';

// The scheduler with the injectable clock, never real waits: two server contexts on one
// PostgreSQL database both tick (two pools: two servers; on SQLite, one process, so one
// context ticking twice at once), and the "agent" is the repositories claiming and
// finishing what was queued.

const MIN = 60_000;
const HOUR = 60 * MIN;
const STEP = 10 * MIN;

class Clock {
  t: number;
  constructor(iso: string) {
    this.t = Date.parse(iso);
  }
  now = (): number => this.t;
}

async function twoServers(dialect: 'sqlite' | 'postgres', clock: Clock): Promise<{ a: ServerContext; b: ServerContext; close: () => Promise<void> }> {
  const target: Target = dialect === 'sqlite' ? await sqliteTarget() : await postgresTarget();
  const open = (): Promise<ServerContext> => openContext({ dataDir: target.options.dataDir, databaseUrl: target.options.databaseUrl, publicUrl: 'http://127.0.0.1:1', env: {}, now: clock.now });
  const a = await open();
  // SQLite is one server process; a second handle on the file in the same process would block
  // its event loop on the first one's write lock. There the two "servers" are one context.
  const b = dialect === 'postgres' ? await open() : a;
  await a.repos.storageProviders.create({ name: 'local', type: 'local', rootPath: `${target.options.dataDir}/backups`, isDefault: true });
  return { a, b, close: async () => { await a.close(); if (b !== a) await b.close(); await target.cleanup(); } };
}

/** What the agents would do: claim every queued job of these nodes and finish it. */
async function runQueued(ctx: ServerContext, nodeIds: Iterable<string>): Promise<void> {
  for (const nodeId of new Set(nodeIds)) {
    for (let job = await ctx.repos.jobs.claimNext(nodeId, HOUR); job; job = await ctx.repos.jobs.claimNext(nodeId, HOUR)) {
      assert.ok(await ctx.repos.jobs.finish(job.id, nodeId, { state: 'done' }));
    }
  }
}

/** Slots of a cron in (from, to], each plus the offset: when the scheduler should run the site. */
function expectedRuns(cron: string, tz: string, offset: number, from: number, to: number): number[] {
  const c = new Cron(cron, { timezone: tz, paused: true });
  const out: number[] = [];
  for (let d = c.nextRun(new Date(from - offset)); d && d.getTime() + offset <= to; d = c.nextRun(d)) out.push(d.getTime() + offset);
  return out;
}

const toGrid = (t: number, start: number): number => start + Math.ceil((t - start) / STEP) * STEP;

async function backupJobTimes(ctx: ServerContext, siteId: string): Promise<number[]> {
  return (await ctx.repos.jobs.listForSite(siteId, 10_000)).filter((j) => j.type === 'backup').map((j) => j.createdAt).sort((x, y) => x - y);
}

describe('spreading offsets', () => {
  it('are deterministic, whole seconds within the window, and spread over it', () => {
    const ids = Array.from({ length: 500 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    const window = 30 * MIN;
    const offsets = ids.map((id) => spreadOffsetMs(id, window));
    assert.deepEqual(ids.map((id) => spreadOffsetMs(id, window)), offsets);
    assert.ok(offsets.every((o) => o >= 0 && o < window && o % 1000 === 0));
    // 500 sites over 1800 possible seconds: no second holds more than a handful, and every 5-minute part of the window has some.
    const perSecond = new Map<number, number>();
    for (const o of offsets) perSecond.set(o, (perSecond.get(o) ?? 0) + 1);
    assert.ok(Math.max(...perSecond.values()) <= 5, `at most 5 starts in one second, got ${Math.max(...perSecond.values())}`);
    for (let part = 0; part < 6; part++) assert.ok(offsets.some((o) => o >= part * 5 * MIN && o < (part + 1) * 5 * MIN), `part ${part} of the window is used`);
    assert.equal(spreadOffsetMs(ids[0]!, 0), 0);
  });
});

describe('schedule requests', () => {
  it('presets become cron expressions; bad cron and unknown zones are 400s naming the field and the fix', () => {
    assert.deepEqual(specOf({ preset: 'daily', at: '03:05', timezone: 'Europe/Berlin' }), { cron: '5 3 * * *', timezone: 'Europe/Berlin', preset: 'daily at 03:05' });
    assert.deepEqual(specOf({ preset: 'weekly', day: 'mon', at: '23:59' }), { cron: '59 23 * * 1', timezone: 'UTC', preset: 'weekly on mon at 23:59' });
    assert.deepEqual(specOf({ preset: 'hourly' }), { cron: '0 * * * *', timezone: 'UTC', preset: 'hourly' });
    assert.equal(specOf({ disabled: true }), null);
    const refused = (r: Parameters<typeof specOf>[0], field: string, fix: RegExp): void => {
      assert.throws(() => specOf(r), (e: { status: number; details: { field: string }; message: string }) => e.status === 400 && e.details.field === field && fix.test(e.message));
    };
    refused({ cron: '61 * * * *' }, 'cron', /not a valid cron expression.*e\.g\. "0 3 \* \* \*"/);
    refused({ cron: '0 0 3 * * *' }, 'cron', /has 6 field\(s\); give five/);
    refused({ cron: '0 0 30 2 *' }, 'cron', /never runs/);
    refused({ cron: '0 3 * * *', timezone: 'Mars/Olympus' }, 'timezone', /not an IANA time zone; use a name like "Europe\/Berlin"/);
    refused({ preset: 'daily' }, 'at', /needs at: "HH:MM"/);
    refused({ preset: 'weekly', at: '03:00' }, 'day', /needs day: one of sun, mon/);
    refused({ cron: '0 3 * * *', preset: 'hourly' }, 'cron', /exactly one of cron, preset or disabled/);
  });

  it('DST in Europe/Berlin: 02:30 runs at 03:00 on the spring-forward day and once on the fall-back day, as croner says', () => {
    const spec = { cron: '30 2 * * *', timezone: 'Europe/Berlin' };
    const spring = Date.parse('2026-03-28T12:00:00Z');
    const first = nextRunAfter(spec, 0, spring)!;
    assert.equal(new Date(first).toISOString(), '2026-03-29T01:00:00.000Z');
    assert.equal(new Date(nextRunAfter(spec, 0, first)!).toISOString(), '2026-03-30T00:30:00.000Z');
    const fall = nextRunAfter(spec, 0, Date.parse('2026-10-24T12:00:00Z'))!;
    assert.equal(new Date(fall).toISOString(), '2026-10-25T00:30:00.000Z');
    assert.equal(new Date(nextRunAfter(spec, 0, fall)!).toISOString(), '2026-10-26T01:30:00.000Z');
    const c = new Cron(spec.cron, { timezone: spec.timezone, paused: true });
    assert.deepEqual([first, fall], [c.nextRun(new Date(spring))!.getTime(), c.nextRun(new Date('2026-10-24T12:00:00Z'))!.getTime()]);
  });
});

for (const dialect of DIALECTS) {
  describe(`scheduler, a simulated week on 50 sites with two servers (${dialect})`, () => {
    const clock = new Clock('2026-03-23T00:00:00Z'); // a Monday; Berlin changes to summer time on the 29th
    let s: Awaited<ReturnType<typeof twoServers>>;
    before(async () => {
      s = await twoServers(dialect, clock);
    });
    after(() => s.close());

    it('queues exactly the expected runs per site, each at its first tick after its slot plus offset', async () => {
      const { a, b } = s;
      const nodes = await Promise.all(Array.from({ length: 5 }, (_, i) => a.repos.nodes.create({ hostname: `web${i}.example.com`, status: 'active' })));
      const sites = [];
      for (let i = 0; i < 50; i++) sites.push(await a.repos.sites.create({ nodeId: nodes[i % 5]!.id, name: `site${i}.example.com`, wpPath: `/var/www/site${i}` }));
      const fleet = await setFleetSchedule(a, { spec: specOf({ preset: 'daily', at: '03:00', timezone: 'Europe/Berlin' }) });
      assert.equal(fleet.windowMinutes, 30);
      const hourly = specOf({ preset: 'hourly' })!;
      const weekly = specOf({ preset: 'weekly', day: 'mon', at: '02:30' })!;
      const plan = sites.map((site, i) => ({ site, spec: i < 10 ? hourly : i < 15 ? weekly : i < 20 ? null : fleet.spec }));
      for (const [i, p] of plan.entries()) {
        if (i < 15) await setSiteSchedule(a, p.site.id, 'custom', p.spec);
        else if (i < 20) await setSiteSchedule(b, p.site.id, 'disabled', null);
      }
      const start = clock.t;
      const end = start + 7 * 24 * HOUR;
      const nodeOf = new Map(sites.map((x) => [x.id, x.nodeId]));
      while (clock.t < end) {
        clock.t += STEP;
        const [ra, rb] = await Promise.all([scheduleOnce(a, clock.t), scheduleOnce(b, clock.t)]);
        assert.deepEqual([...ra.skipped, ...rb.skipped], [], 'no run finds its site busy: each ends before the next tick');
        await runQueued(a, [...ra.enqueued, ...rb.enqueued].map((id) => nodeOf.get(id)!));
      }
      let total = 0;
      for (const p of plan) {
        const want = p.spec ? expectedRuns(p.spec.cron, p.spec.timezone, spreadOffsetMs(p.site.id, 30 * MIN), start, end).map((t) => toGrid(t, start)) : [];
        assert.deepEqual(await backupJobTimes(a, p.site.id), want, `runs of ${p.site.name} (${p.spec?.preset ?? 'disabled'})`);
        total += want.length;
      }
      // 10 hourly sites, 5 weekly, 30 daily: 10 * 168 + 5 * 1 + 30 * 7.
      assert.equal(total, 10 * 168 + 5 + 30 * 7);
    });
  });

  describe(`scheduler edge cases (${dialect})`, () => {
    const clock = new Clock('2026-03-28T00:00:00Z');
    let s: Awaited<ReturnType<typeof twoServers>>;
    let nodeId: string;
    const newSite = async (): Promise<string> => (await s.a.repos.sites.create({ nodeId, name: 'x.example.com', wpPath: `/var/www/${Math.random().toString(36).slice(2)}` })).id;
    before(async () => {
      s = await twoServers(dialect, clock);
      nodeId = (await s.a.repos.nodes.create({ hostname: 'web.example.com', status: 'active' })).id;
      await s.a.repos.nodes.update(nodeId, { jobLimit: 64 });
      await setFleetSchedule(s.a, { windowMinutes: 0 });
    });
    after(() => s.close());

    it('a run missed while every server was down runs once at start, and the next run is the next slot after now', async () => {
      const site = await newSite();
      await setSiteSchedule(s.a, site, 'custom', specOf({ preset: 'hourly' }));
      clock.t += 5 * HOUR + 10 * MIN; // five slots pass with no server up
      const scheduler = startScheduler(s.a, { intervalMs: 24 * HOUR }); // its first pass runs at once
      await scheduler.stop();
      assert.equal((await scheduleOnce(s.b, clock.t)).enqueued.length, 0, 'the other server finds nothing left to run');
      assert.deepEqual(await backupJobTimes(s.a, site), [clock.t]);
      assert.equal((await s.a.repos.schedules.get(site))?.nextRunAt, Date.parse('2026-03-28T06:00:00Z'));
      await runQueued(s.a, [nodeId]);
    });

    it('a site whose backup is still running is skipped, its slot counted as run; an inactive node is skipped too', async () => {
      const busy = await newSite();
      await setSiteSchedule(s.a, busy, 'custom', specOf({ preset: 'hourly' }));
      const manual = await s.a.repos.jobs.enqueueBackup(busy);
      await s.a.repos.jobs.claimNext(nodeId, HOUR);
      const otherNode = (await s.a.repos.nodes.create({ hostname: 'off.example.com', status: 'disabled' })).id;
      const off = (await s.a.repos.sites.create({ nodeId: otherNode, name: 'off.example.com', wpPath: '/var/www/off' })).id;
      await setSiteSchedule(s.a, off, 'custom', specOf({ preset: 'hourly' }));
      clock.t = Date.parse('2026-03-28T07:00:00Z') + MIN;
      const r = await scheduleOnce(s.a, clock.t);
      assert.deepEqual(r.skipped.filter((x) => x.siteId === busy || x.siteId === off).sort((x, y) => x.reason.localeCompare(y.reason)), [
        { siteId: busy, reason: 'busy' }, { siteId: off, reason: 'node_inactive' },
      ]);
      assert.deepEqual((await s.a.repos.jobs.listForSite(busy)).map((j) => j.id), [manual.id]);
      assert.equal((await s.a.repos.jobs.listForSite(off)).length, 0);
      assert.equal((await s.a.repos.schedules.get(busy))?.nextRunAt, Date.parse('2026-03-28T08:00:00Z'));
      await s.a.repos.jobs.finish(manual.id, nodeId, { state: 'done' });
      await setSiteSchedule(s.a, busy, 'disabled', null);
      await setSiteSchedule(s.a, off, 'disabled', null);
    });

    it('DST: a daily 02:30 Europe/Berlin site runs at 01:00Z on the spring-forward day (03:00 local, as croner says)', async () => {
      const site = await newSite();
      clock.t = Date.parse('2026-03-28T12:00:00Z');
      await setSiteSchedule(s.a, site, 'custom', specOf({ cron: '30 2 * * *', timezone: 'Europe/Berlin' }));
      const start = clock.t;
      while (clock.t < Date.parse('2026-03-30T12:00:00Z')) {
        clock.t += STEP;
        const r = await scheduleOnce(clock.t % (2 * STEP) === 0 ? s.a : s.b, clock.t);
        if (r.enqueued.length) await runQueued(s.a, [nodeId]);
      }
      assert.deepEqual((await backupJobTimes(s.a, site)).map((t) => new Date(t).toISOString()), ['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
      assert.ok(start < clock.t);
    });
  });
}
