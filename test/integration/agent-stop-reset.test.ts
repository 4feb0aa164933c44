import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateToken, hashToken } from '../../src/server/auth/tokens.ts';
import type { Progress } from '../../src/server/db/sites.ts';
import { spawnAgent } from '../helpers/agent.ts';
import { addBulk } from '../helpers/bulk.ts';
import { listKeys, makeBucket, pendingUploads, removeBucket } from '../helpers/s3.ts';
import { DIALECTS, startTestServer, type TestServer } from '../helpers/server.ts';
import { services, TEST_HOME } from '../helpers/services.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

// Stop (POST /sites/{id}/backup/stop) and reset (POST /daemon/backup/reset/{site_id}) of a
// backup an agent PROCESS is running, in each stage: the site ends stopped (or idle), the
// agent's temp dir is empty, no multipart upload is left in the bucket, nothing was stored,
// and the next backup completes. The agent runs with --limit-upload so the stages last (the
// last ~2 MB of the archive sit in the throttle's buffers during upload_remote, so the rate
// must be low enough for that to outlast the agent's 1 s heartbeat, which carries the stop);
// it is restarted without the limit for the backup that must complete, to keep the run short.

const STAGES = ['backup_db', 'backup_files', 'create_bundle', 'upload_remote'] as const;
type Stage = (typeof STAGES)[number];
const RATE = '700K';

describe('agent stop and reset in every stage', () => {
  let site: FixtureSite;
  before(async () => {
    site = await createFixtureSite({ name: 'agentstop' });
    // A dump that takes over a second (it compresses to little), and a few MB of incompressible media.
    await addBulk(site, { dbMb: 120, files: 1500, mediaMb: 8 });
  });
  after(async () => {
    await site.cleanup();
  });

  for (const dialect of DIALECTS) {
    describe(dialect, () => {
      let t: TestServer;
      let bucket: string;
      let work: string;
      let agent: ChildProcess | undefined;
      let agentOut = '';
      let siteId: string;
      let nodeId = '';
      /** Stages the agent reported, per job, in order. */
      const reported = new Map<string, string[]>();
      const agentDir = (): string => join(work, 'agent');
      const tempDirs = (): string[] => (existsSync(join(agentDir(), 'tmp')) ? readdirSync(join(agentDir(), 'tmp')) : []);

      const until = <T>(what: string, fn: () => Promise<T | undefined | false>, ms = 60_000, every = 25): Promise<T> =>
        waitFor(what, fn, { ms, every, context: () => `agent output:\n${agentOut}` });

      function startAgent(args: string[], env: NodeJS.ProcessEnv = {}): void {
        agent = spawnAgent({ serverUrl: t.url, dataDir: agentDir(), args, env, onOutput: (s) => (agentOut += s) });
      }

      async function stopAgent(): Promise<void> {
        const a = agent;
        agent = undefined;
        if (!a || a.exitCode !== null || a.signalCode !== null) return;
        const exited = new Promise((r) => a.once('exit', r));
        a.kill('SIGTERM');
        await exited;
      }

      /** The agent, running with or without the upload limit (restarted if it must change). */
      let limited: boolean | undefined;
      async function agentWith(limit: boolean): Promise<void> {
        if (agent && limited === limit) return;
        await stopAgent();
        // The stopped agent's poll ends once the server sees its connection close (also when that
        // happened before the handler listened for it); a job queued later goes to the new agent.
        await until('the stopped agent\'s poll to end', async () => t.server.ctx.caps.polls.held(nodeId) === 0);
        const polls = agentOut.split('agent polling').length;
        startAgent(limit ? ['--limit-upload', RATE] : []);
        limited = limit;
        await until('the agent to poll', async () => agentOut.split('agent polling').length > polls);
      }

      const status = async (): Promise<{ status: string; stage: string | null; stage_detail: string | null; job_id: string | null; error: string | null }> => {
        const r = await t.api('GET', `/api/v1/sites/${siteId}/backup/status`);
        assert.equal(r.status, 200);
        return r.body;
      };

      async function startBackup(): Promise<string> {
        const r = await t.api('POST', `/api/v1/sites/${siteId}/backup/start`, { body: {} });
        assert.equal(r.status, 202, JSON.stringify(r.body));
        return r.body.job_id as string;
      }

      /**
       * True once the agent reported the stage (recorded in process as it arrives, so a stage of
       * a few milliseconds is not missed the way a status poll can miss it), and, for the dump
       * and the bundle, once real work is under way.
       */
      async function inStage(stage: Stage, jobId: string): Promise<boolean> {
        if (!(reported.get(jobId) ?? []).includes(stage)) return false;
        const s = await status();
        if (s.status !== 'running') return false;
        if (stage === 'backup_db') {
          // The dump has started writing.
          const [run] = tempDirs();
          const dump = run && join(agentDir(), 'tmp', run, 'database.sql.zst');
          return !!dump && existsSync(dump) && statSync(dump).size > 0;
        }
        // The multipart upload exists (parts go up as soon as it does).
        if (stage === 'create_bundle') return !!(await t.server.ctx.repos.jobs.get(jobId))?.uploadId;
        return true;
      }

      async function reachStage(stage: Stage): Promise<string> {
        await agentWith(true);
        const jobId = await startBackup();
        await until(`${stage} to be under way`, () => inStage(stage, jobId), 60_000, 5);
        return jobId;
      }

      /** The last stage the agent reported before it stopped and cleaned up. */
      function stoppedIn(jobId: string): string | undefined {
        return (reported.get(jobId) ?? []).filter((s) => s !== 'cleanup').at(-1);
      }

      async function nextBackupCompletes(): Promise<void> {
        await agentWith(false);
        const jobId = await startBackup();
        const s = await until('the next backup to end', async () => {
          const st = await status();
          return st.job_id === jobId && st.status !== 'running' ? st : undefined;
        });
        assert.equal(s.status, 'completed', `${s.error}\n${agentOut}`);
        const b = await t.server.ctx.repos.backups.get((await t.server.ctx.repos.sites.backupState(siteId))?.lastBackupId ?? '');
        assert.ok(b && b.status === 'completed');
        assert.deepEqual(await listKeys(bucket), [b.key]);
        assert.deepEqual(await pendingUploads(bucket), []);
        assert.deepEqual(tempDirs(), []);
        // Leave the bucket empty for the next case.
        const del = await t.api('DELETE', `/api/v1/backups/backups/${b.id}`);
        assert.ok(del.status < 300, JSON.stringify(del.body));
        await until('the stored backup to be deleted', async () => (await listKeys(bucket)).length === 0);
      }

      before(async () => {
        t = await startTestServer(dialect, { leaseMs: 10_000, pollWaitMs: 1000 });
        bucket = await makeBucket('wpb-stop');
        work = mkdtempSync(join(TEST_HOME, 'agent-stop-'));
        const m = services().minio;
        await t.server.ctx.repos.storageProviders.create({
          name: 'minio', type: 's3', endpoint: m.endpoint, bucket, region: m.region, pathStyle: true, isDefault: true,
          credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
        });
        const repos = t.server.ctx.repos;
        const original = repos.jobs.report.bind(repos.jobs);
        repos.jobs.report = async (jobId: string, nodeId: string, leaseMs: number, p: Progress) => {
          const stages = reported.get(jobId) ?? [];
          if (p.stage && stages.at(-1) !== p.stage) stages.push(p.stage);
          reported.set(jobId, stages);
          return original(jobId, nodeId, leaseMs, p);
        };
        const code = generateToken('join');
        await repos.joinCodes.create({ codeHash: hashToken(code), expiresAt: Date.now() + 60_000 });
        startAgent(['--limit-upload', RATE], { WPBACKUP_JOIN_CODE: code });
        limited = true;
        const identity = await until('the agent to join', async () => {
          try {
            return JSON.parse(readFileSync(join(agentDir(), 'agent.json'), 'utf8')) as { node_id: string };
          } catch {
            return undefined;
          }
        });
        nodeId = identity.node_id;
        siteId = (await repos.sites.create({ nodeId, name: 'stop.example', wpPath: site.dir })).id;
      });
      after(async () => {
        await stopAgent();
        await t.close();
        await removeBucket(bucket);
        rmSync(work, { recursive: true, force: true });
      });

      for (const stage of STAGES) {
        it(`stop in ${stage}: stopped within a few seconds, nothing left behind, the next backup completes`, async (tc) => {
          const jobId = await reachStage(stage);
          const r = await t.api('POST', `/api/v1/sites/${siteId}/backup/stop`, { body: {} });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          assert.equal(r.body.job_id, jobId);
          const askedAt = Date.now();
          const s = await until('the site to be stopped', async () => {
            const st = await status();
            return st.status !== 'running' ? st : undefined;
          }, 10_000);
          const took = Date.now() - askedAt;
          assert.equal(s.status, 'stopped', `${s.error}\n${agentOut}`);
          assert.ok(took < 3000, `stopping took ${took} ms`);
          // Where the stop took effect: at the agent's next heartbeat, so maybe a stage later.
          tc.diagnostic(`stopped in ${stoppedIn(jobId)} after ${took} ms: ${reported.get(jobId)?.join(' > ')}`);
          assert.equal((await t.server.ctx.repos.jobs.get(jobId))?.state, 'cancelled');
          await until('the temp dir to be emptied', async () => tempDirs().length === 0, 5000);
          assert.deepEqual(await pendingUploads(bucket), []);
          assert.deepEqual(await listKeys(bucket), []);
          await nextBackupCompletes();
        });
      }

      for (const stage of STAGES) {
        it(`reset in ${stage}: idle at once, job cancelled, upload aborted, temp dir cleaned, the next backup completes`, async (tc) => {
          const jobId = await reachStage(stage);
          const r = await t.api('POST', `/api/v1/daemon/backup/reset/${siteId}`, { body: {} });
          assert.equal(r.status, 200, JSON.stringify(r.body));
          assert.equal(r.body.status.status, 'idle');
          assert.deepEqual(r.body.cancelled_job_ids, [jobId]);
          const uploading = stage === 'create_bundle' || stage === 'upload_remote';
          if (uploading) assert.equal(r.body.aborted_uploads, 1);
          assert.equal((await status()).status, 'idle');
          assert.equal((await t.server.ctx.repos.jobs.get(jobId))?.state, 'cancelled');
          const resetJob = r.body.reset_job_id as string;
          await until('the agent to run the reset job', async () => (await t.server.ctx.repos.jobs.get(resetJob))?.state === 'done', 10_000);
          tc.diagnostic(`reset took effect in ${stoppedIn(jobId)}: ${reported.get(jobId)?.join(' > ')}`);
          assert.deepEqual(tempDirs(), []);
          assert.equal((await status()).status, 'idle');
          assert.deepEqual(await pendingUploads(bucket), []);
          assert.deepEqual(await listKeys(bucket), []);
          await nextBackupCompletes();
        });
      }
    });
  }
});
