import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateToken, hashToken } from '../../src/server/auth/tokens.ts';
import { runCli } from '../helpers/cli.ts';
import { DIALECTS, startTestServer, type TestServer } from '../helpers/server.ts';

// `wpbackup schedules show|set|clear` and `wpbackup nodes set-limit` against a running
// server, over the API with an API token, the way an operator runs them.

for (const dialect of DIALECTS) {
  describe(`wpbackup schedules (${dialect})`, () => {
    let t: TestServer;
    let env: NodeJS.ProcessEnv;
    let siteId: string;
    let nodeId: string;
    before(async () => {
      t = await startTestServer(dialect, { now: () => Date.parse('2026-06-01T10:20:00Z') });
      const r = t.server.ctx.repos;
      const token = generateToken('api');
      const admin = await r.users.getByEmail('admin@example.com');
      await r.tokens.create({ userId: admin!.id, tokenHash: hashToken(token), kind: 'api', name: 'cli' });
      nodeId = (await r.nodes.create({ hostname: 'web1.example.com', status: 'active' })).id;
      siteId = (await r.sites.create({ nodeId, name: 'shop.example.com', wpPath: '/var/www/shop' })).id;
      env = { WPBACKUP_URL: t.url, WPBACKUP_TOKEN: token };
    });
    after(() => t.close());

    const cli = (...args: string[]) => runCli(args, { env });

    it('sets the fleet default and a site\'s own schedule, shows them, and clears the site back to inherit', async () => {
      const fleet = await cli('schedules', 'set', '--daily', '03:00', '--tz', 'Europe/Berlin', '--window', '0', '--json');
      assert.equal(fleet.code, 0, fleet.stderr);
      assert.deepEqual(JSON.parse(fleet.stdout).schedule, { cron: '0 3 * * *', timezone: 'Europe/Berlin', preset: 'daily at 03:00' });
      const weekly = await cli('schedules', 'set', '--site', 'shop.example.com', '--weekly', 'mon', '02:30', '--json');
      assert.equal(weekly.code, 0, weekly.stderr);
      const w = JSON.parse(weekly.stdout);
      assert.deepEqual([w.mode, w.schedule.cron, w.schedule.timezone, w.next_run_at], ['custom', '30 2 * * 1', 'UTC', '2026-06-08T02:30:00.000Z']);
      const shown = await cli('schedules', 'show', '--site', siteId);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, /custom/);
      assert.match(shown.stdout, /weekly on mon at 02:30 \(30 2 \* \* 1, UTC\)/);
      assert.match(shown.stdout, /next run: 2026-06-08T02:30:00.000Z/);
      const cleared = await cli('schedules', 'clear', '--site', siteId, '--json');
      assert.deepEqual([JSON.parse(cleared.stdout).mode, JSON.parse(cleared.stdout).next_run_at], ['inherit', '2026-06-02T01:00:00.000Z']);
      const cron = await cli('schedules', 'set', '--site', siteId, '--cron', '0 */4 * * *', '--tz', 'America/New_York', '--json');
      assert.equal(JSON.parse(cron.stdout).effective.timezone, 'America/New_York');
      const show = await cli('schedules', 'show');
      assert.match(show.stdout, /Fleet default: daily at 03:00 \(0 3 \* \* \*, Europe\/Berlin\)/);
      assert.equal((await cli('schedules', 'set', '--site', siteId, '--disable', '--json')).code, 0);
      assert.equal((await t.api('GET', `/api/v1/sites/${siteId}`)).body.next_run_at, null);
    });

    it('bad input exits 2 with the field and the fix: an invalid cron, an unknown zone, two schedules at once', async () => {
      const badCron = await cli('schedules', 'set', '--site', siteId, '--cron', '0 3 * *');
      assert.equal(badCron.code, 2);
      assert.match(badCron.stderr, /cron: "0 3 \* \*" has 4 field\(s\); give five/);
      const badZone = await cli('schedules', 'set', '--daily', '03:00', '--tz', 'Berlin');
      assert.equal(badZone.code, 2);
      assert.match(badZone.stderr, /timezone: "Berlin" is not an IANA time zone; use a name like "Europe\/Berlin"/);
      const two = await cli('schedules', 'set', '--hourly', '--daily', '03:00');
      assert.equal(two.code, 2);
      assert.match(two.stderr, /exactly one of --cron, --hourly, --daily, --weekly or --disable/);
      const day = await cli('schedules', 'set', '--weekly', 'someday', '03:00');
      assert.equal(day.code, 2);
      assert.match(day.stderr, /--weekly needs a day and a time/);
    });

    it('nodes set-limit sets a node\'s job limit by hostname; 0 is refused with exit 2', async () => {
      const r = await cli('nodes', 'set-limit', 'web1.example.com', '4', '--json');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { node_id: nodeId, job_limit: 4 });
      assert.equal((await t.server.ctx.repos.nodes.get(nodeId))?.jobLimit, 4);
      const bad = await cli('nodes', 'set-limit', 'web1.example.com', '0');
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /from 1 to 64/);
    });
  });
}
