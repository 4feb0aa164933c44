import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestServer, twoNodeFleet, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';

// The schedule routes over HTTP: the fleet default and a site's own, next_run_at on the
// site, 400s that name the field and the fix, audit entries, and the node job limit in the
// node routes and the agent's poll reply. The clock is the test's.

const HOUR = 3_600_000;

for (const dialect of DIALECTS) {
  describe(`schedule routes (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    const clock = { t: Date.parse('2026-06-01T10:20:00Z') };
    before(async () => {
      t = await startTestServer(dialect, { now: () => clock.t, pollWaitMs: 100 });
      f = await twoNodeFleet(t);
    });
    after(() => t.close());

    it('a fleet default reaches inheriting sites: next_run_at on GET /sites and /sites/{id}; a site may override, disable, and inherit again', async () => {
      const put = await t.api('PUT', '/api/v1/schedules/default', { body: { preset: 'daily', at: '03:00', timezone: 'Europe/Berlin', window_minutes: 0 } });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.deepEqual(put.body.schedule, { cron: '0 3 * * *', timezone: 'Europe/Berlin', preset: 'daily at 03:00' });
      assert.equal(put.body.window_minutes, 0);
      const site = await t.api('GET', `/api/v1/sites/${f.siteA}`);
      assert.equal(site.body.next_run_at, '2026-06-02T01:00:00.000Z'); // 03:00 CEST
      const listed = (await t.api('GET', '/api/v1/sites')).body.sites.find((s: { id: string }) => s.id === f.siteA);
      assert.equal(listed.next_run_at, '2026-06-02T01:00:00.000Z');
      const created = await t.api('POST', '/api/v1/sites', { body: { node_id: f.nodeA, name: 'new.example.com', wp_path: '/var/www/new' } });
      assert.equal(created.body.next_run_at, '2026-06-02T01:00:00.000Z', 'a new site inherits at once');

      const own = await t.api('PUT', `/api/v1/sites/${f.siteA}/schedule`, { body: { cron: '15 */6 * * *', timezone: 'UTC' } });
      assert.equal(own.status, 200, JSON.stringify(own.body));
      assert.deepEqual([own.body.mode, own.body.schedule?.cron, own.body.effective?.cron, own.body.next_run_at], ['custom', '15 */6 * * *', '15 */6 * * *', '2026-06-01T12:15:00.000Z']);
      const off = await t.api('PUT', `/api/v1/sites/${f.siteA}/schedule`, { body: { disabled: true } });
      assert.deepEqual([off.body.mode, off.body.effective, off.body.next_run_at], ['disabled', null, null]);
      assert.equal((await t.api('GET', `/api/v1/sites/${f.siteA}`)).body.next_run_at, null);
      const back = await t.api('DELETE', `/api/v1/sites/${f.siteA}/schedule`);
      assert.deepEqual([back.body.mode, back.body.effective?.preset, back.body.next_run_at], ['inherit', 'daily at 03:00', '2026-06-02T01:00:00.000Z']);
      const got = await t.api('GET', `/api/v1/sites/${f.siteA}/schedule`);
      assert.deepEqual(got.body, back.body);

      // A wider window moves every site's offset, and its next run with it.
      const wide = await t.api('PUT', '/api/v1/schedules/default', { body: { window_minutes: 30 } });
      assert.equal(wide.body.schedule.preset, 'daily at 03:00', 'the schedule stays when only the window is given');
      const spread = (await t.api('GET', `/api/v1/sites/${f.siteA}/schedule`)).body;
      assert.ok(spread.offset_seconds >= 0 && spread.offset_seconds < 1800);
      assert.equal(spread.next_run_at, new Date(Date.parse('2026-06-02T01:00:00Z') + spread.offset_seconds * 1000).toISOString());

      const audit = (await t.server.ctx.repos.audit.list({ limit: 50 })).map((e) => e.action);
      for (const a of ['schedule.default.update', 'site.schedule.update', 'site.schedule.clear']) assert.ok(audit.includes(a), `${a} audited`);
    });

    it('refuses a bad cron, an unknown time zone and a half preset with 400s naming the field and the fix', async () => {
      const cases: [unknown, string, RegExp][] = [
        [{ cron: '0 25 * * *' }, 'cron', /not a valid cron expression.*e\.g\./],
        [{ cron: '0 3 * * *', timezone: 'Europe/Berln' }, 'timezone', /"Europe\/Berln" is not an IANA time zone; use a name like/],
        [{ preset: 'weekly', at: '03:00' }, 'day', /weekly needs day/],
        [{}, 'cron', /exactly one of cron, preset or disabled/],
      ];
      for (const [body, field, message] of cases) {
        const r = await t.api('PUT', `/api/v1/sites/${f.siteA}/schedule`, { body });
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.equal(r.body.error.details?.field, field, JSON.stringify(r.body));
        assert.match(r.body.error.message, message);
      }
      const shape = await t.api('PUT', `/api/v1/sites/${f.siteA}/schedule`, { body: { preset: 'daily', at: '3am' } });
      assert.equal(shape.status, 400);
      assert.match(shape.body.error.message, /at/);
      assert.equal((await t.api('PUT', '/api/v1/schedules/default', { body: { window_minutes: 5000 } })).status, 400);
    });

    it('a site_admin may set its own site\'s schedule, not the fleet default; a node_admin may read the default', async () => {
      const mine = await t.api('PUT', `/api/v1/sites/${f.siteA}/schedule`, { token: f.siteAdmin.token, body: { preset: 'hourly' } });
      assert.equal(mine.status, 200);
      assert.equal((await t.api('PUT', `/api/v1/sites/${f.siteB}/schedule`, { token: f.siteAdmin.token, body: { preset: 'hourly' } })).status, 403);
      assert.equal((await t.api('PUT', '/api/v1/schedules/default', { token: f.siteAdmin.token, body: { disabled: true } })).status, 403);
      assert.equal((await t.api('PUT', '/api/v1/schedules/default', { token: f.nodeAdmin.token, body: { disabled: true } })).status, 403);
      assert.equal((await t.api('GET', '/api/v1/schedules/default', { token: f.nodeAdmin.token })).status, 200);
    });

    it('the node job limit: set through PATCH /nodes/{id} (1 to 64), shown on the node and told to its agent on each poll', async () => {
      const patched = await t.api('PATCH', `/api/v1/nodes/${f.nodeA}`, { token: f.nodeAdmin.token, body: { job_limit: 3 } });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      assert.equal(patched.body.job_limit, 3);
      assert.equal((await t.api('PATCH', `/api/v1/nodes/${f.nodeA}`, { body: { job_limit: 0 } })).status, 400);
      assert.equal((await t.api('PATCH', `/api/v1/nodes/${f.nodeB}`, { token: f.nodeAdmin.token, body: { job_limit: 2 } })).status, 403);
      const poll = await t.api('POST', '/api/v1/agent/poll', { token: f.keyA, body: {} });
      assert.equal(poll.body.job_limit, 3);
      const audit = (await t.server.ctx.repos.audit.list({ limit: 20 })).find((e) => e.action === 'node.update' && e.targetId === f.nodeA);
      assert.deepEqual(audit?.detail, { job_limit: 3 });
      clock.t += HOUR;
    });
  });
}
