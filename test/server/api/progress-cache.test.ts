import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import type { ServerContext } from '../../../src/server/context.ts';
import { reapExpiredJobs } from '../../../src/server/reaper.ts';
import type { RunningServer } from '../../../src/server/start.ts';
import { DIALECTS, startTestServer, type TestServer, twoServersOnPostgres, type TwoServers } from '../../helpers/server.ts';
import { openEvents } from '../../helpers/sse.ts';

// Progress reports are kept in memory and on the event stream at once, and written to the
// database at a bounded rate per job (progress-cache.ts): every report is visible here, stage
// changes and the job's end are written at once, and the lease is still renewed. The clock is
// the context's own (ContextOptions.now), moved by the tests: nothing sleeps.

const LEASE_MS = 8_000; // the write interval is then min(2 s, lease / 4) = 2 s
const WRITE_MS = 2_000;

interface Job {
  siteId: string;
  jobId: string;
  key: string;
}

type Report = { status: string; progress: number; stage: string | null; stage_detail: string; error: null };
const report = (progress: number, stage = 'backup_files', detail = `${progress} %`): Report => ({ status: 'running', progress, stage, stage_detail: detail, error: null });

/** A node with a key, a site and its backup job, claimed through the API. */
async function claimedJob(ctx: ServerContext, url: string, name: string): Promise<Job> {
  const key = generateToken('node');
  const node = await ctx.repos.nodes.create({ hostname: `${name}.example.com`, status: 'active', nodeKeyHash: hashToken(key) });
  const site = await ctx.repos.sites.create({ nodeId: node.id, name, wpPath: `/var/www/${name}-${randomBytes(3).toString('hex')}` });
  await ctx.repos.jobs.enqueueBackup(site.id);
  const res = await fetch(`${url}/api/v1/agent/poll`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}' });
  const body = (await res.json()) as { job: { job_id: string } | null };
  assert.ok(body.job, 'a job was handed out');
  return { siteId: site.id, jobId: body.job.job_id, key };
}

/** Counts the database writes of progress (jobs.report) from now on. */
function countWrites(ctx: ServerContext): { count: () => number } {
  const jobs = ctx.repos.jobs;
  const original = jobs.report.bind(jobs);
  let n = 0;
  jobs.report = (...args) => {
    n++;
    return original(...args);
  };
  return { count: () => n };
}

for (const dialect of DIALECTS) {
  describe(`progress reports in memory, written at a bounded rate (${dialect})`, () => {
    let t: TestServer;
    let clock = Date.now();
    let writes: { count: () => number };

    before(async () => {
      t = await startTestServer(dialect, { leaseMs: LEASE_MS, pollWaitMs: 500, now: () => clock });
      writes = countWrites(t.server.ctx);
    });
    after(async () => {
      await t.close();
    });

    const ctx = (): ServerContext => t.server.ctx;
    const send = async (job: Job, r: Report): Promise<{ cancel: boolean; lease_until: string }> => {
      const res = await t.api('POST', `/api/v1/agent/jobs/${job.jobId}/progress`, { body: r, token: job.key });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const status = async (job: Job): Promise<{ status: string; progress: number; stage: string | null; stage_detail: string | null; message: string | null }> =>
      (await t.api('GET', `/api/v1/sites/${job.siteId}/backup/status`)).body;
    const stored = async (job: Job) => {
      const s = await ctx().repos.sites.backupState(job.siteId);
      assert.ok(s);
      return s;
    };

    it('shows every report at once through status, the site and the event stream, and writes at most one per interval', async () => {
      const job = await claimedJob(ctx(), t.url, 'live');
      const before = writes.count();
      await send(job, report(10));
      assert.equal(writes.count(), before + 1, 'the first report is written (the job becomes running)');
      assert.equal((await stored(job)).progress, 10);

      const { stream } = await openEvents(`${t.url}/api/v1/sites/${job.siteId}/backup/events`, t.adminToken);
      try {
        await stream.saw('"progress":10');
        await send(job, report(20));
        await send(job, report(30, 'backup_files', 'Reading wp-content (30 MB of 100 MB)'));
        assert.equal(writes.count(), before + 1, 'reports within the interval are not written');
        assert.equal((await stored(job)).progress, 10, 'the database still holds the written report');
        const live = await status(job);
        assert.equal(live.progress, 30);
        assert.equal(live.stage_detail, 'Reading wp-content (30 MB of 100 MB)');
        assert.equal(live.message, 'Reading wp-content (30 MB of 100 MB)');
        assert.equal((await t.api('GET', `/api/v1/sites/${job.siteId}`)).body.backup.progress, 30);
        await stream.saw('"progress":30');

        clock += WRITE_MS;
        await send(job, report(40));
        assert.equal(writes.count(), before + 2, 'a report after the interval is written');
        assert.equal((await stored(job)).progress, 40);
      } finally {
        stream.cancel();
      }
    });

    it('writes a stage change at once', async () => {
      const job = await claimedJob(ctx(), t.url, 'stages');
      await send(job, report(5, 'backup_db'));
      await send(job, report(6, 'backup_db'));
      const before = writes.count();
      await send(job, report(7, 'backup_files', 'files'));
      assert.equal(writes.count(), before + 1);
      const s = await stored(job);
      assert.equal(s.stage, 'backup_files');
      assert.equal(s.progress, 7);
      assert.equal(s.stageDetail, 'files');
    });

    it("keeps the last report when the job ends, in the database and for another reader", async () => {
      const job = await claimedJob(ctx(), t.url, 'ending');
      await send(job, report(50, 'upload_remote'));
      await send(job, report(63, 'upload_remote', 'Uploading (63 %)'));
      assert.equal((await stored(job)).progress, 50, 'the last report is not written yet');
      const held = ctx().progress.size;
      const fin = await t.api('POST', `/api/v1/agent/jobs/${job.jobId}/finish`, { body: { status: 'failed', stage: 'upload_remote', error: 'bucket gone' }, token: job.key });
      assert.equal(fin.status, 200, JSON.stringify(fin.body));
      const right = await status(job);
      assert.equal(right.status, 'failed');
      assert.equal(right.progress, 63, 'a read right after the finish already shows the last report');
      await ctx().jobEnded.idle();
      const s = await stored(job);
      assert.equal(s.status, 'failed');
      assert.equal(s.progress, 63);
      assert.equal(s.stage, 'upload_remote');
      assert.equal(s.stageDetail, 'Uploading (63 %)');
      assert.equal(ctx().progress.size, held - 1, 'the ended job is forgotten');
      const last = await status(job);
      assert.equal(last.progress, 63);
      assert.equal(last.stage_detail, 'Uploading (63 %)');
    });

    it('still renews the lease, well inside it, so a job reporting every second never expires', async () => {
      const job = await claimedJob(ctx(), t.url, 'lease');
      const before = writes.count();
      await send(job, report(1));
      for (let i = 2; i <= 30; i++) {
        clock += 1_000;
        const last = await send(job, report(i));
        const row = await ctx().repos.jobs.get(job.jobId);
        assert.ok(row?.leaseUntil && row.leaseUntil - clock >= LEASE_MS - WRITE_MS, `the lease has at least ${LEASE_MS - WRITE_MS} ms left at report ${i}`);
        assert.equal(new Date(last.lease_until).getTime(), row.leaseUntil, 'the reply names the lease the database holds');
        // The reaper at this moment does not expire it (the earlier tests' jobs, silent, it does).
        const expired = await reapExpiredJobs(ctx(), () => {}, clock);
        assert.ok(!expired.some((j) => j.id === job.jobId), `the job expired at report ${i}`);
      }
      const written = writes.count() - before;
      assert.ok(written >= 15 && written <= 16, `30 reports over 29 s were written ${written} times (once per ${WRITE_MS} ms)`);
      assert.equal((await ctx().repos.jobs.get(job.jobId))?.state, 'running');
    });

    it('tells the agent to stop at its next report, written or not, and forgets the job', async () => {
      const job = await claimedJob(ctx(), t.url, 'stopping');
      await send(job, report(10));
      assert.equal((await t.api('POST', `/api/v1/sites/${job.siteId}/backup/stop`)).status, 202);
      const before = writes.count();
      assert.equal((await send(job, report(11))).cancel, true);
      assert.equal(writes.count(), before, 'the stop came from the job row read for the report');
      assert.equal((await t.api('POST', `/api/v1/daemon/backup/reset/${job.siteId}`)).status, 200);
      const reset = await send(job, report(12));
      assert.equal(reset.cancel, true);
      const after = await status(job);
      assert.equal(after.status, 'idle');
      assert.equal(after.progress, 0, 'a reset site shows no progress of the old job');
    });
  });
}

describe('a second server on the same PostgreSQL reads progress from the database', () => {
  let servers: TwoServers;
  let a: RunningServer;
  let b: RunningServer;
  let token: string;
  let clock = Date.now();

  before(async () => {
    servers = await twoServersOnPostgres({ pollWaitMs: 500, leaseMs: LEASE_MS, now: () => clock });
    ({ a, b, token } = servers);
  });
  after(() => servers.close());

  const progressOn = async (s: RunningServer, siteId: string): Promise<number> => {
    const res = await fetch(`${s.url}/api/v1/sites/${siteId}/backup/status`, { headers: { authorization: `Bearer ${token}` } });
    return ((await res.json()) as { progress: number }).progress;
  };
  const send = async (job: Job, progress: number): Promise<void> => {
    const res = await fetch(`${a.url}/api/v1/agent/jobs/${job.jobId}/progress`, { method: 'POST', headers: { authorization: `Bearer ${job.key}`, 'content-type': 'application/json' }, body: JSON.stringify(report(progress)) });
    assert.equal(res.status, 200);
  };

  it('sees the written report, at most one interval old, and the newest after the interval', async () => {
    const job = await claimedJob(a.ctx, a.url, 'shared');
    await send(job, 10);
    assert.equal(await progressOn(b, job.siteId), 10);
    await send(job, 30);
    assert.equal(await progressOn(a, job.siteId), 30, 'the server that took the report shows it');
    assert.equal(await progressOn(b, job.siteId), 10, 'the other server shows the database, not yet written');
    clock += WRITE_MS;
    await send(job, 40);
    assert.equal(await progressOn(b, job.siteId), 40);
  });
});
