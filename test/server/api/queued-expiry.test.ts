import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startReaper } from '../../../src/server/reaper.ts';
import { DIALECTS, startTestServer, twoNodeFleet, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';

// A queued job whose node has been offline or disabled longer than queuedJobTimeoutMs fails
// with an error naming the node and since when, and its site stops showing "running"
// (issue 7 §4). The reaper runs on an injected clock: no test waits 15 minutes.

const MIN = 60_000;
const TIMEOUT = 15 * MIN;
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

for (const dialect of DIALECTS) {
  describe(`queued jobs on unavailable nodes (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    before(async () => {
      t = await startTestServer(dialect, { queuedJobTimeoutMs: TIMEOUT });
      f = await twoNodeFleet(t);
    });
    after(() => t.close());

    const setLastSeen = (nodeId: string, at: number): Promise<number> => t.server.ctx.db.exec('UPDATE nodes SET last_seen = ? WHERE id = ?', [at, nodeId]);
    const status = async (site: string): Promise<{ status: string; error: string | null }> => (await t.api('GET', `/api/v1/sites/${site}/backup/status`)).body;

    it('fails a backup queued for an offline node after the timeout, naming the node and since when', async () => {
      const now = Date.now();
      const lastSeen = now - 2 * MIN;
      await setLastSeen(f.nodeA, lastSeen);
      assert.equal((await t.api('POST', `/api/v1/sites/${f.siteA}/backup/start`)).status, 202);
      let clock = now + TIMEOUT - MIN;
      const reaper = startReaper(t.server.ctx, { intervalMs: 3_600_000, now: () => clock });
      try {
        assert.deepEqual(await reaper.runOnce(), [], 'not before the job has waited the timeout');
        assert.equal((await status(f.siteA)).status, 'running');
        clock = now + TIMEOUT + MIN;
        const expired = await reaper.runOnce();
        assert.equal(expired.length, 1);
        const want = `node a.example.com has been offline since ${iso(lastSeen)}; the backup was not started`;
        assert.equal(expired[0]?.error, want);
        assert.deepEqual(await status(f.siteA).then((s) => ({ status: s.status, error: s.error })), { status: 'failed', error: want });
        // Once only, and audited.
        assert.deepEqual(await reaper.runOnce(), []);
        const audit = await t.api('GET', '/api/v1/audit?limit=20');
        assert.ok(JSON.stringify(audit.body).includes('node_unavailable'), 'audited as job.expired (node_unavailable)');
      } finally {
        await reaper.stop();
      }
    });

    it('leaves a queued job alone while its node is online, and fails it once the node is disabled', async () => {
      const now = Date.now();
      assert.equal((await t.api('POST', `/api/v1/sites/${f.siteB}/backup/start`)).status, 202);
      const later = now + TIMEOUT + 5 * MIN;
      // Heard from a minute ago (by the later clock): online, the job just waits.
      await setLastSeen(f.nodeB, later - MIN);
      const reaper = startReaper(t.server.ctx, { intervalMs: 3_600_000, now: () => later });
      try {
        assert.deepEqual(await reaper.runOnce(), []);
        assert.equal((await status(f.siteB)).status, 'running');
        const disabled = await t.api('PATCH', `/api/v1/nodes/${f.nodeB}`, { body: { status: 'disabled' } });
        assert.equal(disabled.status, 200);
        const since = (await t.server.ctx.db.get<{ disabled_at: number }>('SELECT disabled_at FROM nodes WHERE id = ?', [f.nodeB]))?.disabled_at;
        assert.ok(since && since >= now, 'disabled_at recorded');
        // Disabled now; 15 minutes later (by the clock) the job fails.
        assert.deepEqual(await t.server.ctx.repos.jobs.expireQueuedOnDeadNodes(TIMEOUT, Number(since) + TIMEOUT - MIN), [], 'not before the node has been disabled for the timeout');
        const reaper2 = startReaper(t.server.ctx, { intervalMs: 3_600_000, now: () => Number(since) + TIMEOUT + MIN });
        try {
          const expired = await reaper2.runOnce();
          const want = `node b.example.com has been disabled since ${iso(Number(since))}; the backup was not started`;
          assert.deepEqual(expired.map((j) => j.error), [want]);
          assert.equal((await status(f.siteB)).status, 'failed');
        } finally {
          await reaper2.stop();
        }
      } finally {
        await reaper.stop();
      }
    });

    it('names a node that never reported by when it joined', async () => {
      const r = t.server.ctx.repos;
      const node = await r.nodes.create({ hostname: 'web-3.example.com', status: 'active' });
      const site = await r.sites.create({ nodeId: node.id, name: 'never.example.com', wpPath: '/var/www/never' });
      await r.jobs.resetSite(site.id);
      const expired = await r.jobs.expireQueuedOnDeadNodes(TIMEOUT, node.createdAt + TIMEOUT + MIN);
      assert.deepEqual(expired.map((j) => j.error), [`node web-3.example.com has been offline since it joined at ${iso(node.createdAt)} (it never reported); the clean-up was not started`]);
    });
  });
}
