import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { lockTable } from '../../helpers/table-lock.ts';
import { DIALECTS, startTestServer, twoNodeFleet, type ApiResponse, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';

// The agent's multi-step writes, each one transaction (src/server/services/): recording a
// completed upload against the quota (quota.ts) and finishing a job (job-finish.ts). On
// PostgreSQL the racing requests are held at a lock on the backups table until both have read
// what they decide on, so the race happens every run.

const MARGIN = 1000;
const FAIL_AT = 4242; // a site size the injected trigger refuses to store

const TRIGGER = {
  sqlite: {
    create: `CREATE TRIGGER wpb_test_fail BEFORE UPDATE OF size_bytes ON sites WHEN NEW.size_bytes = ${FAIL_AT} BEGIN SELECT RAISE(ABORT, 'injected failure'); END`,
    drop: 'DROP TRIGGER wpb_test_fail',
  },
  postgres: {
    create: `CREATE FUNCTION wpb_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.size_bytes = ${FAIL_AT} THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER wpb_test_fail BEFORE UPDATE ON sites FOR EACH ROW EXECUTE FUNCTION wpb_test_fail()`,
    drop: 'DROP TRIGGER wpb_test_fail ON sites; DROP FUNCTION wpb_test_fail()',
  },
};

for (const dialect of DIALECTS) {
  describe(`agent writes in one transaction (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    let providerId: string;
    const root = mkdtempSync(join(tmpdir(), 'wpb-agent-tx-'));
    before(async () => {
      t = await startTestServer(dialect, { uploadMarginBytes: MARGIN, pollWaitMs: 200 });
      f = await twoNodeFleet(t);
      await t.server.ctx.repos.nodes.update(f.nodeA, { jobLimit: 8 }); // node A runs several jobs at once here
      providerId = (await t.server.ctx.repos.storageProviders.create({ name: 'local', type: 'local', rootPath: root })).id;
    });
    after(async () => {
      await t?.close();
      rmSync(root, { recursive: true, force: true });
    });

    const agent = (path: string, body: unknown = {}): Promise<ApiResponse> => t.api('POST', path, { body, token: f.keyA });

    /** A backup of a new site on node A, handed to its agent, with an archive of size bytes uploaded but not completed. */
    async function uploaded(size: number): Promise<{ jobId: string; siteId: string; complete: () => Promise<ApiResponse> }> {
      const name = `tx-${randomBytes(3).toString('hex')}.example.com`;
      const site = await t.server.ctx.repos.sites.create({ nodeId: f.nodeA, name, wpPath: `/var/www/${name}` });
      await t.server.ctx.repos.jobs.enqueueBackup(site.id, { storageId: providerId });
      const polled = await agent('/api/v1/agent/poll');
      assert.equal(polled.body.job?.site.id, site.id, JSON.stringify(polled.body));
      const jobId: string = polled.body.job.job_id;
      const base = `/api/v1/agent/jobs/${jobId}/upload`;
      assert.equal((await agent(`${base}/start`)).status, 200);
      const urls = await agent(`${base}/parts`, { part_numbers: [1], part_size: size });
      assert.equal(urls.status, 200, JSON.stringify(urls.body));
      const body = randomBytes(size);
      const res = await fetch(urls.body.urls['1'], { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(res.status, 200);
      const etag = res.headers.get('etag') ?? '';
      await res.text();
      const sha256 = createHash('sha256').update(body).digest('hex');
      return { jobId, siteId: site.id, complete: () => agent(`${base}/complete`, { parts: [{ part_number: 1, etag }], size, sha256 }) };
    }

    it('two jobs of one node completing at once cannot together pass its quota', async () => {
      const repos = t.server.ctx.repos;
      const used = await repos.backups.usageByNode(f.nodeA);
      // Each archive fits what is left (3000 + the margin); both together do not.
      await repos.nodes.update(f.nodeA, { quotaBytes: used + 3000 });
      try {
        const [a, b] = [await uploaded(2500), await uploaded(2500)];
        const lock = dialect === 'postgres' ? await lockTable(t.target, 'backups') : undefined;
        let results: ApiResponse[];
        try {
          const pending = [a.complete(), b.complete()];
          await lock?.waiters(2);
          await lock?.release();
          results = await Promise.all(pending);
        } finally {
          await lock?.release();
        }
        assert.deepEqual(results.map((r) => r.status).sort(), [200, 413], JSON.stringify(results.map((r) => r.body)));
        const refused = results.find((r) => r.status === 413);
        assert.match(refused?.body.error.message ?? '', /the archive holds 2500 bytes, more than job \S+'s limit of 1500 bytes \(node a\.example\.com's remaining quota of 500 bytes plus a margin of 1000 bytes\); the object was removed/);
        assert.equal(await repos.backups.usageByNode(f.nodeA), used + 2500);
        const states = await Promise.all([a, b].map(async (j) => (await repos.jobs.get(j.jobId))?.state));
        assert.deepEqual(states.sort(), ['claimed', 'failed'], 'the refused job failed; the other is still its agent\'s');
      } finally {
        await repos.nodes.update(f.nodeA, { quotaBytes: null });
      }
    });

    it("a finish that fails halfway changes nothing: the job stays the agent's to finish again", async () => {
      const repos = t.server.ctx.repos;
      const a = await uploaded(100);
      const done = await a.complete();
      assert.equal(done.status, 200);
      const jobBefore = await repos.jobs.get(a.jobId);
      const finish = { status: 'completed', stage: null, error: null, source_bytes: FAIL_AT };
      await t.server.ctx.db.script(TRIGGER[dialect].create);
      try {
        const failed = await agent(`/api/v1/agent/jobs/${a.jobId}/finish`, finish);
        assert.equal(failed.status, 500, JSON.stringify(failed.body));
      } finally {
        await t.server.ctx.db.script(TRIGGER[dialect].drop);
      }
      assert.deepEqual(await repos.jobs.get(a.jobId), jobBefore, 'the job is as it was');
      const state = await repos.sites.backupState(a.siteId);
      assert.deepEqual([state?.status, state?.lastBackupId], ['running', null], 'the site still runs the backup');
      assert.equal((await repos.backups.get(done.body.backup_id))?.sourceBytes, null);

      const again = await agent(`/api/v1/agent/jobs/${a.jobId}/finish`, finish);
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.state, 'done');
      const site = await repos.sites.get(a.siteId);
      assert.deepEqual([site?.status, site?.lastBackupId, site?.sizeBytes], ['completed', done.body.backup_id, FAIL_AT]);
      assert.equal((await repos.backups.get(done.body.backup_id))?.sourceBytes, FAIL_AT);
    });
  });
}
