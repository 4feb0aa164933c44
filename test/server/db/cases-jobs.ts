import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Db, Queryable } from '../../../src/server/db/db.ts';
import { ConflictError, NotFoundError } from '../../../src/server/db/errors.ts';
import { MAX_DELIVERIES } from '../../../src/server/db/job-endings.ts';
import { ReportBatches } from '../../../src/server/db/report-batches.ts';
import type { Repos } from '../../../src/server/db/repos.ts';
import { makeNode, makeSite } from './suite.ts';
import type { SuiteContext } from './suite.ts';

const LEASE = 30_000;

export function jobCases(ctx: SuiteContext): void {
  /**
   * Repositories for concurrent callers: on PostgreSQL two separate pools, as two server
   * processes would have; on SQLite the one handle a process has.
   */
  async function racers(): Promise<{ repos: Repos[]; close: () => Promise<void> }> {
    if (ctx.target.dialect === 'sqlite') return { repos: [ctx.repos], close: async () => {} };
    const other: Db = await ctx.target.open();
    return { repos: [ctx.repos, ctx.reposOn(other)], close: () => other.close() };
  }

  describe('jobs', () => {
    it('enqueueBackup: of 20 concurrent starts for one site exactly one wins, the others get a 409 conflict', async () => {
      const site = await makeSite(ctx.repos);
      const { repos, close } = await racers();
      try {
        const calls = Array.from({ length: 20 }, (_, i) => (repos[i % repos.length] as Repos).jobs.enqueueBackup(site.id));
        const results = await Promise.allSettled(calls);
        const won = results.filter((r) => r.status === 'fulfilled');
        assert.equal(won.length, 1);
        for (const r of results) {
          if (r.status === 'rejected') assert.ok(r.reason instanceof ConflictError && r.reason.reason === 'active_job' && r.reason.status === 409, String(r.reason));
        }
        const jobs = await ctx.repos.jobs.listForSite(site.id);
        assert.equal(jobs.length, 1);
        const state = await ctx.repos.sites.backupState(site.id);
        assert.deepEqual([state?.status, state?.currentJobId], ['running', jobs[0]?.id]);
      } finally {
        await close();
      }
    });

    it('enqueueBackup refuses an unknown site with a 404 marker', async () => {
      await assert.rejects(ctx.repos.jobs.enqueueBackup('no-such-site'), (e) => e instanceof NotFoundError && e.status === 404);
    });

    it('claimNext: 10 concurrent claims for 3 queued jobs hand out each job once, to its own node only', async () => {
      const node = await makeNode(ctx.repos);
      await ctx.repos.nodes.update(node.id, { jobLimit: 3 }); // the limit has its own cases (cases-schedules.ts)
      const stranger = await makeNode(ctx.repos);
      const queued = [];
      for (let i = 0; i < 3; i++) queued.push(await ctx.repos.jobs.enqueueBackup((await makeSite(ctx.repos, node.id)).id));
      assert.equal(await ctx.repos.jobs.claimNext(stranger.id, LEASE), undefined);
      const { repos, close } = await racers();
      try {
        const claims = await Promise.all(Array.from({ length: 10 }, (_, i) => (repos[i % repos.length] as Repos).jobs.claimNext(node.id, LEASE)));
        const got = claims.filter((c) => c !== undefined);
        assert.deepEqual(got.map((j) => j.id).sort(), queued.map((j) => j.id).sort());
        for (const j of got) assert.deepEqual([j.state, j.claimedBy, j.attempt, j.leaseUntil], ['claimed', node.id, 1, ctx.clock.t + LEASE]);
      } finally {
        await close();
      }
    });

    it('progress reports written together (report-batches.ts) each get the answer their own write would', async () => {
      const node = await makeNode(ctx.repos);
      await ctx.repos.nodes.update(node.id, { jobLimit: 4 });
      const stranger = await makeNode(ctx.repos);
      const sites = [];
      for (let i = 0; i < 4; i++) sites.push(await makeSite(ctx.repos, node.id));
      const jobs = [];
      for (const site of sites) jobs.push(await ctx.repos.jobs.enqueueBackup(site.id));
      for (let i = 0; i < 4; i++) assert.ok(await ctx.repos.jobs.claimNext(node.id, LEASE));
      const [a, b, c, d] = jobs.map((j) => j.id) as [string, string, string, string];
      // Statements on the relaxed handle, counted: on PostgreSQL the reports queued behind the first go in one.
      let statements = 0;
      const relaxed = ctx.db.relaxed;
      const counting = { dialect: relaxed.dialect, query: (sql: string, params?: never[]) => (statements++, relaxed.query(sql, params)), get: relaxed.get.bind(relaxed), exec: relaxed.exec.bind(relaxed), script: relaxed.script.bind(relaxed), transaction: relaxed.transaction.bind(relaxed) };
      const db = { dialect: ctx.db.dialect, relaxed: counting } as unknown as Queryable;
      const batches = new ReportBatches({ db, now: () => ctx.clock.t }, { maxInFlight: 1, maxBatch: 10 });
      const p = (progress: number): { progress: number; stage: string; stageDetail: string } => ({ progress, stage: 'backup_files', stageDetail: `at ${progress}` });
      const replies = await Promise.all([
        batches.report({ jobId: a, nodeId: node.id, leaseMs: LEASE, p: p(10) }),
        batches.report({ jobId: b, nodeId: node.id, leaseMs: LEASE, p: p(20) }),
        batches.report({ jobId: b, nodeId: node.id, leaseMs: LEASE, p: p(25) }),
        batches.report({ jobId: c, nodeId: stranger.id, leaseMs: LEASE, p: p(30) }),
        batches.report({ jobId: d, nodeId: node.id, leaseMs: LEASE, p: p(40), keyHash: 'not-the-nodes-key' }),
      ]);
      const renewed = { cancelRequested: false, leaseUntil: ctx.clock.t + LEASE };
      assert.deepEqual(replies, [renewed, renewed, renewed, undefined, undefined]);
      const states = await Promise.all(sites.map((s) => ctx.repos.sites.backupState(s.id)));
      assert.deepEqual(states.map((s) => s?.progress), [10, 25, 0, 0], 'the newer of two queued reports is the one written; refused ones are not');
      assert.deepEqual((await Promise.all(jobs.map((j) => ctx.repos.jobs.get(j.id)))).map((j) => j?.state), ['running', 'running', 'claimed', 'claimed']);
      if (ctx.target.dialect === 'postgres') assert.equal(statements, 2, 'the first report alone, the four queued behind it in one statement');
      await assert.rejects(batches.report({ jobId: a, nodeId: node.id, leaseMs: LEASE, p: p(101) }), /progress/i, 'a bad report fails alone');
      // Text PostgreSQL refuses (NUL) is written alone: the report queued beside it (behind d's) is not failed with it.
      const [first, nul, beside] = await Promise.allSettled([
        batches.report({ jobId: d, nodeId: node.id, leaseMs: LEASE, p: p(41) }),
        batches.report({ jobId: a, nodeId: node.id, leaseMs: LEASE, p: { progress: 11, stage: 'backup_files', stageDetail: 'a\u0000b' } }),
        batches.report({ jobId: b, nodeId: node.id, leaseMs: LEASE, p: p(26) }),
      ]);
      assert.deepEqual([first, beside], [{ status: 'fulfilled', value: renewed }, { status: 'fulfilled', value: renewed }]);
      if (ctx.target.dialect === 'postgres') assert.equal(nul.status, 'rejected');
      assert.equal((await ctx.repos.sites.backupState(sites[1]?.id ?? ''))?.progress, 26);
    });

    it('a lost agent: its lease runs out, job and site fail with the spec message, and the site can start again', async () => {
      const { jobs, sites } = ctx.repos;
      const site = await makeSite(ctx.repos);
      const node = await ctx.repos.nodes.get(site.nodeId);
      const job = await jobs.enqueueBackup(site.id);
      assert.equal((await jobs.claimNext(site.nodeId, LEASE))?.id, job.id);
      // The agent's progress reports are the lease renewals; the first one marks the job running.
      const p = { progress: 60, stage: 'upload_remote', stageDetail: 'Uploading' };
      assert.deepEqual(await jobs.report(job.id, site.nodeId, LEASE, p), { cancelRequested: false, leaseUntil: ctx.clock.t + LEASE });
      assert.equal((await jobs.get(job.id))?.state, 'running');
      ctx.clock.advance(LEASE - 1000);
      const beat = await jobs.report(job.id, site.nodeId, LEASE, p);
      assert.deepEqual(beat, { cancelRequested: false, leaseUntil: ctx.clock.t + LEASE });
      assert.equal(await jobs.report(job.id, 'another-node', LEASE, p), undefined);
      ctx.clock.advance(LEASE - 1000);
      assert.ok(!(await jobs.expireLeases(ctx.clock.t)).some((j) => j.id === job.id), 'the report kept it alive');

      const expired = (await jobs.expireLeases(ctx.clock.t + 2000)).filter((j) => j.id === job.id);
      const message = `agent on ${node?.hostname} stopped reporting during upload_remote`;
      assert.deepEqual(expired.map((j) => [j.state, j.error]), [['failed', message]]);
      const state = await sites.backupState(site.id);
      assert.deepEqual([state?.status, state?.error, state?.stage], ['failed', message, 'upload_remote']);
      assert.ok(!(await jobs.expireLeases(ctx.clock.t + 2000)).some((j) => j.id === job.id), 'expired once');
      assert.equal(await jobs.report(job.id, site.nodeId, LEASE, { progress: 70, stage: 'upload_remote', stageDetail: null }), undefined, 'the old agent learns it lost the job');
      assert.equal((await sites.backupState(site.id))?.progress, 60, 'and its report is not written');
      assert.notEqual((await jobs.enqueueBackup(site.id)).id, job.id);
    });

    it('a job lost on its way to the agent (claimed, never reported) is queued again, then fails after 3 claims', async () => {
      const { jobs, sites } = ctx.repos;
      const site = await makeSite(ctx.repos);
      const job = await jobs.enqueueBackup(site.id);
      for (let claim = 1; claim <= MAX_DELIVERIES; claim++) {
        const claimed = await jobs.claimNext(site.nodeId, LEASE);
        assert.deepEqual([claimed?.id, claimed?.attempt], [job.id, claim]);
        ctx.clock.advance(LEASE + 1000);
        const expired = (await jobs.expireLeases(ctx.clock.t)).filter((j) => j.id === job.id);
        const state = (await jobs.get(job.id))?.state;
        if (claim < MAX_DELIVERIES) {
          assert.deepEqual([expired, state], [[], 'queued'], `claim ${claim}: queued again`);
          assert.equal((await sites.backupState(site.id))?.status, 'running');
        } else {
          assert.deepEqual([expired.map((j) => j.state), state], [['failed'], 'failed'], 'the last claim fails');
          assert.match((await sites.backupState(site.id))?.error ?? '', /stopped reporting during startup/);
        }
      }
    });

    it('expireLeases on several servers at once returns each expired job to exactly one of them', async () => {
      const node = await makeNode(ctx.repos);
      await ctx.repos.nodes.update(node.id, { jobLimit: 6 });
      const mine = new Set<string>();
      for (let i = 0; i < 6; i++) {
        await ctx.repos.jobs.enqueueBackup((await makeSite(ctx.repos, node.id)).id);
        const id = (await ctx.repos.jobs.claimNext(node.id, 1000))?.id ?? '';
        await ctx.repos.jobs.report(id, node.id, 1000, { progress: 1, stage: 'backup_db', stageDetail: null });
        mine.add(id);
      }
      const { repos, close } = await racers();
      try {
        const at = ctx.clock.t + 5000;
        const results = await Promise.all(Array.from({ length: 4 }, (_, i) => (repos[i % repos.length] as Repos).jobs.expireLeases(at)));
        const ids = results.flat().map((j) => j.id).filter((id) => mine.has(id));
        assert.equal(ids.length, 6);
        assert.equal(new Set(ids).size, 6);
      } finally {
        await close();
      }
    });

    it('report: writes progress and renews the lease in one call, and tells a lost or stopped agent', async () => {
      const { jobs, sites } = ctx.repos;
      const site = await makeSite(ctx.repos);
      const job = await jobs.enqueueBackup(site.id);
      await jobs.claimNext(site.nodeId, LEASE);
      ctx.clock.advance(5000);
      const p = { progress: 42, stage: 'create_bundle', stageDetail: 'Bundling' };
      assert.deepEqual(await jobs.report(job.id, site.nodeId, LEASE, p), { cancelRequested: false, leaseUntil: ctx.clock.t + LEASE });
      assert.deepEqual([(await jobs.get(job.id))?.state, (await jobs.get(job.id))?.leaseUntil], ['running', ctx.clock.t + LEASE]);
      const state = await sites.backupState(site.id);
      assert.deepEqual([state?.progress, state?.stage, state?.stageDetail], [42, 'create_bundle', 'Bundling']);
      assert.equal(await jobs.report(job.id, 'another-node', LEASE, p), undefined);
      await assert.rejects(jobs.report(job.id, site.nodeId, LEASE, { ...p, progress: -1 }), /0 to 100/);
      await jobs.requestCancel(site.id);
      assert.equal((await jobs.report(job.id, site.nodeId, LEASE, p))?.cancelRequested, true);
      await jobs.resetSite(site.id);
      assert.equal(await jobs.report(job.id, site.nodeId, LEASE, p), undefined);
    });

    it('finish: done completes the site with its backup, failed keeps the error; only the holder finishes, once', async () => {
      const { jobs, sites } = ctx.repos;
      const [a, b] = [await makeSite(ctx.repos), await makeSite(ctx.repos)];
      const ja = await jobs.enqueueBackup(a.id);
      await jobs.claimNext(a.nodeId, LEASE);
      assert.equal(await jobs.finish(ja.id, 'another-node', { state: 'done' }), undefined);
      assert.equal((await jobs.finish(ja.id, a.nodeId, { state: 'done', backupId: 'backup-1' }))?.state, 'done');
      assert.equal(await jobs.finish(ja.id, a.nodeId, { state: 'failed', error: 'late' }), undefined);
      const done = await sites.backupState(a.id);
      assert.deepEqual([done?.status, done?.progress, done?.lastBackupId, done?.finishedAt], ['completed', 100, 'backup-1', ctx.clock.t]);

      const jb = await jobs.enqueueBackup(b.id);
      await jobs.claimNext(b.nodeId, LEASE);
      await jobs.finish(jb.id, b.nodeId, { state: 'failed', error: 'mariadb-dump: access denied' });
      const failed = await sites.backupState(b.id);
      assert.deepEqual([failed?.status, failed?.error], ['failed', 'mariadb-dump: access denied']);
    });

    it('requestCancel: a queued backup stops at once, a running one hears it on its next report', async () => {
      const { jobs, sites } = ctx.repos;
      const site = await makeSite(ctx.repos);
      assert.equal(await jobs.requestCancel(site.id), undefined);
      const queued = await jobs.enqueueBackup(site.id);
      assert.deepEqual(await jobs.requestCancel(site.id).then((r) => [r?.job.id, r?.job.state, r?.immediate]), [queued.id, 'cancelled', true]);
      assert.equal((await sites.backupState(site.id))?.status, 'stopped');
      assert.equal(await jobs.claimNext(site.nodeId, LEASE), undefined);

      const running = await jobs.enqueueBackup(site.id);
      await jobs.claimNext(site.nodeId, LEASE);
      assert.equal((await jobs.requestCancel(site.id))?.immediate, false);
      assert.deepEqual(await jobs.report(running.id, site.nodeId, LEASE, { progress: 5, stage: 'backup_db', stageDetail: null }), { cancelRequested: true, leaseUntil: ctx.clock.t + LEASE });
      assert.equal((await sites.backupState(site.id))?.progress, 5, 'a stopping agent still reports where it is');
      await jobs.finish(running.id, site.nodeId, { state: 'cancelled' });
      assert.equal((await sites.backupState(site.id))?.status, 'stopped');
    });

    it('resetSite: cancels the stuck backup (with its upload to abort), idles the site and queues one clean-up job', async () => {
      const { jobs, sites } = ctx.repos;
      const site = await makeSite(ctx.repos);
      const stuck = await jobs.enqueueBackup(site.id);
      await jobs.claimNext(site.nodeId, LEASE);
      await jobs.setUpload(stuck.id, site.nodeId, { storageId: (await ctx.repos.storageProviders.create({ name: `s-${stuck.id}`, type: 'local', rootPath: '/srv' })).id, uploadKey: 'n/s/f.tar.zst', uploadId: 'upload-1' });
      const reset = await jobs.resetSite(site.id);
      assert.deepEqual(reset.cancelled.map((j) => [j.id, j.state, j.uploadId]), [[stuck.id, 'cancelled', 'upload-1']]);
      assert.deepEqual([reset.reset.type, reset.reset.state], ['reset', 'queued']);
      assert.equal((await jobs.resetSite(site.id)).reset.id, reset.reset.id, 'one clean-up job at a time');
      assert.equal((await sites.backupState(site.id))?.status, 'idle');
      assert.equal(await jobs.report(stuck.id, site.nodeId, LEASE, { progress: 9, stage: 'backup_db', stageDetail: null }), undefined, 'the cancelled job is no longer its agent\'s');

      const next = await jobs.enqueueBackup(site.id);
      assert.equal((await jobs.claimNext(site.nodeId, LEASE))?.id, reset.reset.id, 'the clean-up runs first');
      assert.equal((await jobs.claimNext(site.nodeId, LEASE))?.id, next.id);
      await assert.rejects(jobs.resetSite('no-such-site'), (e) => e instanceof NotFoundError);
    });
  });
}
