import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { reapExpiredJobs } from '../../src/server/reaper.ts';
import { generateToken, hashToken } from '../../src/server/auth/tokens.ts';
import type { Progress } from '../../src/server/db/sites.ts';
import { spawnAgent } from '../helpers/agent.ts';
import { defaultsFile, tableChecksums } from '../helpers/mysql.ts';
import { parseMetrics, sample } from '../helpers/prometheus.ts';
import { createRestoreTarget } from '../helpers/restore-target.ts';
import { listKeys, makeBucket, pendingUploads, removeBucket } from '../helpers/s3.ts';
import { DIALECTS, startTestServer, type TestServer } from '../helpers/server.ts';
import { services, TEST_HOME } from '../helpers/services.ts';
import { diffTrees, snapshotTree } from '../helpers/tree.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

// The whole fleet path with real processes: a server, an agent process joined by code, MinIO
// behind a storage provider, a real WordPress site. Back up, restore by the spec's manual
// procedure, then kill -9 the agent mid-upload and recover. Once per database dialect.

const LEASE_MS = 3000;
const STAGES = ['backup_db', 'backup_files', 'create_bundle', 'upload_remote', 'cleanup'];
const EXCLUDED_BY_DEFAULT = new Set(['cache', 'wflogs']);

for (const dialect of DIALECTS) {
  describe(`agent end to end (${dialect}): server, agent process, MinIO, WordPress`, () => {
    let t: TestServer;
    let site: FixtureSite;
    let bucket: string;
    let work: string;
    let agent: ChildProcess | undefined;
    let agentOut = '';
    let siteId: string;
    const agentDir = (): string => join(work, 'agent');

    function startAgent(env: NodeJS.ProcessEnv = {}): ChildProcess {
      agent = spawnAgent({ serverUrl: t.url, dataDir: agentDir(), env, onOutput: (s) => (agentOut += s) });
      return agent;
    }

    const until = <T>(what: string, fn: () => Promise<T | undefined | false>, ms = 120_000, every = 25): Promise<T> =>
      waitFor(what, fn, { ms, every, context: () => `agent output:\n${agentOut}` });

    before(async () => {
      t = await startTestServer(dialect, { leaseMs: LEASE_MS, pollWaitMs: 1000 });
      site = await createFixtureSite({ name: `agente2e_${dialect}` });
      bucket = await makeBucket('wpb-e2e');
      work = mkdtempSync(join(TEST_HOME, 'agent-e2e-'));
      const m = services().minio;
      await t.server.ctx.repos.storageProviders.create({
        name: 'minio', type: 's3', endpoint: m.endpoint, bucket, region: m.region, pathStyle: true, isDefault: true,
        credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
      });
    });
    after(async () => {
      if (agent && agent.exitCode === null) agent.kill('SIGKILL');
      await t.close();
      await site.cleanup();
      await removeBucket(bucket);
      rmSync(work, { recursive: true, force: true });
    });

    /** Starts a backup the way POST /sites/{id}/backup/start does, and records every stage the server is told. */
    async function backup(): Promise<{ jobId: string; stages: string[]; statuses: string[] }> {
      const repos = t.server.ctx.repos;
      const stages: string[] = [];
      const original = repos.jobs.report.bind(repos.jobs);
      repos.jobs.report = async (jobId: string, nodeId: string, leaseMs: number, p: Progress) => {
        if (p.stage && stages.at(-1) !== p.stage) stages.push(p.stage);
        return original(jobId, nodeId, leaseMs, p);
      };
      try {
        const job = await repos.jobs.enqueueBackup(siteId);
        const statuses: string[] = [];
        await until('the backup to end', async () => {
          const s = await repos.sites.backupState(siteId);
          if (s && statuses.at(-1) !== s.status) statuses.push(s.status);
          return s?.status !== 'running' && s?.currentJobId === job.id;
        }, 300_000);
        return { jobId: job.id, stages, statuses };
      } finally {
        repos.jobs.report = original;
      }
    }

    it('joins by code, backs up through the stages, and restores by the manual procedure with zero differences', async () => {
      const code = generateToken('join');
      await t.server.ctx.repos.joinCodes.create({ codeHash: hashToken(code), expiresAt: Date.now() + 60_000 });
      startAgent({ WPBACKUP_JOIN_CODE: code });
      const identity = await until('the agent to join', async () => {
        try {
          return JSON.parse(readFileSync(join(agentDir(), 'agent.json'), 'utf8')) as { node_id: string; node_key: string };
        } catch {
          return undefined;
        }
      });
      assert.equal((readdirSync(agentDir(), { withFileTypes: true }).length > 0), true);
      assert.equal(execFileSync('stat', ['-c', '%a', join(agentDir(), 'agent.json')], { encoding: 'utf8' }).trim(), '600');
      assert.ok(!agentOut.includes(identity.node_key), 'the node key is never printed');
      const s = await t.server.ctx.repos.sites.create({ nodeId: identity.node_id, name: 'fixture.example', wpPath: site.dir });
      siteId = s.id;

      // Watch every process's command line while the backup runs.
      const secrets = [identity.node_key, services().minio.secretKey];
      let leaks: string[] = [];
      let scanning = true;
      const scan = (async () => {
        while (scanning) {
          for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
            let cmd = '';
            try {
              cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
            } catch {
              continue;
            }
            leaks = leaks.concat(secrets.filter((x) => cmd.includes(x)).map(() => cmd.replace(/\0/g, ' ')));
          }
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      const run = await backup();
      scanning = false;
      await scan;
      assert.deepEqual(leaks, [], 'no command line holds the node key or the storage secret');

      const state = await t.server.ctx.repos.sites.backupState(siteId);
      assert.equal(state?.status, 'completed', `${state?.error}\n${agentOut}`);
      assert.equal(state?.progress, 100);
      assert.deepEqual(run.stages, STAGES);
      assert.deepEqual(run.statuses, ['running', 'completed']);
      // The agent timed each stage and sent the times with its finish (the server's histogram),
      // and logged the job as JSON lines carrying the job, site and node ids.
      const metrics = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.server.ctx.metrics.token}` } });
      const scraped = parseMetrics(await metrics.text());
      for (const stage of STAGES) assert.equal(sample(scraped, `wpbackup_backup_stage_duration_seconds_count{stage="${stage}"}`), 1, stage);
      const jobLines = agentOut.split('\n').filter((l) => l.includes(`"job":"${run.jobId}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(jobLines.map((l) => [l.event, l.stage ?? l.status ?? null]), [['job.start', null], ...STAGES.map((st) => ['job.stage', st]), ['job.end', 'completed']], agentOut);
      for (const l of jobLines) assert.deepEqual([l.site, l.node], [siteId, identity.node_id]);
      const b = await t.server.ctx.repos.backups.get(state?.lastBackupId ?? '');
      assert.ok(b && b.status === 'completed' && b.size && b.sha256);
      assert.match(b.key, new RegExp(`^${identity.node_id}/${siteId}/fixture\\.example_\\d{8}_\\d{6}\\.tar\\.zst$`));
      assert.deepEqual(await listKeys(bucket), [b.key]);
      assert.deepEqual(await pendingUploads(bucket), []);

      // Download through the API's presigned URL and restore with nothing but the standard tools.
      const dl = await t.api('GET', `/api/v1/backups/backups/${b.id}/download`);
      assert.equal(dl.status, 200, JSON.stringify(dl.body));
      assert.equal(dl.body.expires_in_seconds, 3600);
      const url = dl.body.url as string;
      const target = await createRestoreTarget(site.tablePrefix);
      const dir = mkdtempSync(join(work, 'manual-'));
      try {
        const sh = (cmd: string, args: string[]): void => void execFileSync(cmd, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
        sh('wget', ['-q', '-O', 'backup.tar.zst', url]);
        assert.equal(execFileSync('sha256sum', [join(dir, 'backup.tar.zst')], { encoding: 'utf8' }).split(' ')[0], b.sha256);
        sh('zstd', ['-q', '-d', 'backup.tar.zst']);
        sh('tar', ['-xf', 'backup.tar']);
        const cnf = defaultsFile({ user: target.dbUser, password: target.dbPassword });
        execFileSync('mysql', [`--defaults-extra-file=${cnf}`, target.dbName], { input: readFileSync(join(dir, 'database.sql')) });
        sh('rsync', ['-a', 'wp-content/', `${target.dir}/wp-content/`]);
        assert.deepEqual(await tableChecksums(target.dbName), await tableChecksums(site.dbName));
        const source = snapshotTree(join(site.dir, 'wp-content'), (rel) => EXCLUDED_BY_DEFAULT.has(rel));
        assert.deepEqual(diffTrees(source, snapshotTree(join(target.dir, 'wp-content'))), []);
      } finally {
        await target.cleanup();
      }
    });

    it('kill -9 mid-upload: the site fails within the lease, no upload is left, and the next backup completes', async () => {
      // Incompressible bulk so the upload runs long enough to be interrupted.
      execFileSync('sh', ['-c', `head -c 400M /dev/urandom > '${join(site.dir, 'wp-content', 'uploads', 'bulk.bin')}'`]);
      const repos = t.server.ctx.repos;
      const job = await repos.jobs.enqueueBackup(siteId);
      await until('the upload to start', async () => (await repos.jobs.get(job.id))?.uploadId, 120_000, 10);
      assert.equal((await pendingUploads(bucket)).length, 1, 'the multipart upload is in progress');
      agent?.kill('SIGKILL');
      await new Promise((r) => agent?.once('exit', r));
      const killedAt = Date.now();
      // No agent polls any more, so nothing drives the poll-time reaper: call it as a timer would.
      const failed = await until('the lease to run out', async () => {
        await reapExpiredJobs(t.server.ctx);
        const s = await repos.sites.backupState(siteId);
        return s?.status === 'failed' ? s : undefined;
      }, LEASE_MS * 4, 200);
      assert.ok(Date.now() - killedAt <= LEASE_MS + 1500, `failed ${Date.now() - killedAt} ms after the kill`);
      assert.match(failed.error ?? '', /stopped reporting during/);
      assert.deepEqual(await pendingUploads(bucket), [], 'the server aborted the incomplete upload');
      assert.equal(readdirSync(join(agentDir(), 'tmp')).length, 1, 'the killed run left its temp dir');

      // Restarted without a code: it cleans the orphaned temp dir and runs the next backup.
      startAgent();
      await until('the orphaned temp dir to go', async () => readdirSync(join(agentDir(), 'tmp')).length === 0);
      const run = await backup();
      const state = await repos.sites.backupState(siteId);
      assert.equal(state?.status, 'completed', `${state?.error}\n${agentOut}`);
      assert.deepEqual(run.stages, STAGES);
      assert.deepEqual(await pendingUploads(bucket), []);
      assert.equal((await listKeys(bucket)).length, 2);
      agent?.kill('SIGTERM');
      await new Promise((r) => agent?.once('exit', r));
    });
  });
}
