import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { archiveFileName, archiveKey } from '../../src/engine/archive-name.ts';
import { runCli } from '../helpers/cli.ts';
import { DIALECTS, startTestServer, twoNodeFleet, type TestServer, type TwoNodeFleet } from '../helpers/server.ts';

// wpbackup retention|backups pin|prune|storage reconcile, run as the real CLI against a
// running server with WPBACKUP_URL and an API token.

for (const dialect of DIALECTS) {
  describe(`wpbackup retention, pin, prune, reconcile (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    let env: NodeJS.ProcessEnv;
    let root: string;
    let providerId: string;

    before(async () => {
      t = await startTestServer(dialect);
      f = await twoNodeFleet(t);
      const token = await t.api('POST', '/api/v1/tokens', { body: { name: 'cli' } });
      env = { WPBACKUP_URL: t.url, WPBACKUP_TOKEN: token.body.token as string };
      root = mkdtempSync(join(tmpdir(), 'wpb-cli-retention-'));
      providerId = (await t.server.ctx.repos.storageProviders.create({ name: 'cli-local', type: 'local', rootPath: root })).id;
    });
    after(async () => {
      await t.close();
      rmSync(root, { recursive: true, force: true });
    });

    async function backup(siteId: string, n: number): Promise<{ id: string; key: string }> {
      const key = archiveKey(f.nodeA, siteId, archiveFileName(`cli-${n}`, new Date(Date.UTC(2026, 0, n))));
      const { storage } = await t.server.ctx.storage.require(providerId);
      const put = await storage.put(key, Readable.from([randomBytes(32)]));
      const row = await t.server.ctx.repos.backups.create({ siteId, storageId: providerId, key, filename: key.split('/').pop() ?? key });
      await t.server.ctx.repos.backups.complete(row.id, { size: put.size, sha256: put.sha256 });
      return { id: row.id, key };
    }
    const wpbackup = (...args: string[]) => runCli(args, { env });

    it('sets and shows the fleet default and a site\'s own policy, pins, prunes (dry run first) and clears', async () => {
      const site = f.siteA;
      const [oldest, middle, newest] = [await backup(site, 1), await backup(site, 2), await backup(site, 3)];

      const fleet = await wpbackup('retention', 'set', '--keep-last', '2', '--keep-daily', 'all', '--time-zone', 'Europe/Berlin', '--json');
      assert.equal(fleet.code, 0, fleet.stderr);
      assert.deepEqual([fleet.events[0]?.keep_last, fleet.events[0]?.keep_daily, fleet.events[0]?.time_zone], [2, -1, 'Europe/Berlin']);
      const shown = await wpbackup('retention', 'show');
      // --site takes a name as well as an id, as `schedules` and `backup start` do.
      assert.match(shown.stdout, /Fleet default: keep_last 2, keep_daily all \(buckets in Europe\/Berlin\)/);

      const own = await wpbackup('retention', 'set', '--site', 'a.example.com', '--keep-last', '1');
      assert.equal(own.code, 0, own.stderr);
      assert.match(own.stdout, /its own policy\n {2}applies: {3}keep_last 1 \(buckets in Europe\/Berlin\)/);

      const pin = await wpbackup('backups', 'pin', oldest.id);
      assert.equal(pin.code, 0, pin.stderr);
      assert.match(pin.stdout, new RegExp(`Backup ${oldest.id} pinned`));

      const dry = await wpbackup('prune', '--site', site, '--dry-run', '--json');
      assert.equal(dry.code, 0, dry.stderr);
      const plan = dry.events[0] as { keep: { backup_id: string; kept_by: string[] }[]; remove: { backup_id: string; reason: string }[] };
      assert.deepEqual(plan.keep.map((k) => [k.backup_id, k.kept_by]), [[newest.id, ['last']], [oldest.id, ['pinned']]]);
      assert.deepEqual(plan.remove.map((r) => r.backup_id), [middle.id]);
      assert.ok(existsSync(join(root, middle.key)), 'a dry run deletes nothing');

      const real = await wpbackup('prune', '--site', site);
      assert.equal(real.code, 0, real.stderr);
      assert.match(real.stdout, new RegExp(`deleted +${middle.id}`));
      assert.match(real.stdout, new RegExp(`keep +${oldest.id} .*\\(pinned\\)`));
      assert.equal(existsSync(join(root, middle.key)), false);
      assert.equal(await t.server.ctx.repos.backups.get(middle.id), undefined);

      assert.match((await wpbackup('backups', 'unpin', oldest.id)).stdout, /unpinned/);
      const cleared = await wpbackup('retention', 'clear', '--site', site, '--json');
      assert.equal(cleared.events[0]?.source, 'fleet');
      const fleetPrune = await wpbackup('prune', '--dry-run', '--json');
      assert.equal(fleetPrune.code, 0, fleetPrune.stderr);
      assert.ok(fleetPrune.events.some((e) => e.site_id === site));
      assert.equal((await wpbackup('retention', 'clear')).code, 0);
    });

    it('reconcile lists an object without a row and removes it with --delete', async () => {
      const stray = archiveKey(f.nodeA, f.siteA, 'stray_20260101_000000.tar.zst');
      const { storage } = await t.server.ctx.storage.require(providerId);
      await storage.put(stray, Readable.from([Buffer.from('stray')]));
      const listed = await wpbackup('storage', 'reconcile', '--provider', providerId, '--grace-minutes', '0');
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, new RegExp(`object without a row: ${stray}`));
      assert.match(listed.stdout, /Run again with --delete/);
      assert.ok(existsSync(join(root, stray)));
      const removed = await wpbackup('storage', 'reconcile', '--provider', providerId, '--grace-minutes', '0', '--delete', '--json');
      assert.equal(removed.code, 0, removed.stderr);
      assert.deepEqual(removed.events[0]?.removed, { objects: 1, rows: 0, errors: [] });
      assert.equal(existsSync(join(root, stray)), false);
    });

    it('refuses bad input and forbidden calls with exit 2 and a message that names the fix', async () => {
      const cases: [string[], RegExp][] = [
        [['prune', '--site', 'no-such-site'], /No site named no-such-site/],
        [['retention', 'set', '--keep-daily', 'seven'], /--keep-daily must be a whole number, "all" or "off"/],
        [['retention', 'set', '--site', f.siteA, '--time-zone', 'UTC'], /--time-zone is the fleet's/],
        [['backups', 'pin'], /Name one backup by its id/],
        [['storage', 'reconcile'], /--provider must be a storage provider id/],
        [['retention', 'set', '--time-zone', 'Mars/Olympus'], /time_zone "Mars\/Olympus" is not a time zone/],
      ];
      for (const [args, message] of cases) {
        const r = await wpbackup(...args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, message);
      }
      const token = await t.api('POST', '/api/v1/tokens', { body: { name: 'viewer' }, token: f.siteAdmin.token });
      const refused = await runCli(['retention', 'set', '--site', f.siteA, '--keep-last', '1'], { env: { ...env, WPBACKUP_TOKEN: token.body.token as string } });
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /do not have access/);
    });
  });
}
