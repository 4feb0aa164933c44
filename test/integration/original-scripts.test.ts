import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateToken, hashToken } from '../../src/server/auth/tokens.ts';
import { spawnAgent } from '../helpers/agent.ts';
import { REPO } from '../helpers/cli.ts';
import { makeBucket, removeBucket } from '../helpers/s3.ts';
import { DIALECTS, startTestServer, TEST_PASSWORD, type TestServer } from '../helpers/server.ts';
import { services, TEST_HOME } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';

// An operator moving from the original system points its shell clients at wpbackup. The
// requests of start_backup.sh, monitor_backup.sh, check_status.sh and reset_backup.sh (and the
// original's download link) run through curl and jq (test/fixtures/zimpricecheck/client.sh)
// against a real server, a real agent process and a real MariaDB site adopted from the
// agent's scan, whose backup really runs to MinIO. Once per database dialect.

const CLIENT = join(REPO, 'test', 'fixtures', 'zimpricecheck', 'client.sh');

interface Run {
  code: number | null;
  out: string;
  /** The key=value lines the command printed (the last of each key). */
  values: Record<string, string>;
}

function client(env: NodeJS.ProcessEnv, args: string[]): Promise<Run> {
  const child = spawn('bash', [CLIENT, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
  return new Promise((resolve) =>
    child.on('close', (code) => {
      const values: Record<string, string> = {};
      for (const line of out.split('\n')) {
        const m = /^([a-z_]+)=(.*)$/.exec(line);
        if (m) values[m[1] as string] = m[2] as string;
      }
      resolve({ code, out, values });
    }),
  );
}

for (const dialect of DIALECTS) {
  describe(`the original system's scripts against wpbackup (${dialect}): server, agent, MariaDB site, MinIO`, () => {
    let t: TestServer;
    let site: FixtureSite;
    let bucket: string;
    let work: string;
    let agent: ChildProcess | undefined;
    let agentOut = '';
    let siteId = '';
    let host = '';
    let env: NodeJS.ProcessEnv;

    const until = <T>(what: string, fn: () => Promise<T | undefined | false>, ms = 120_000): Promise<T> =>
      waitFor(what, fn, { ms, every: 50, context: () => `agent output:\n${agentOut}` });

    before(async () => {
      t = await startTestServer(dialect, { pollWaitMs: 1000 });
      site = await createFixtureSite({ name: `orig_${dialect}` });
      host = new URL(site.siteUrl).hostname;
      bucket = await makeBucket('wpb-orig');
      work = mkdtempSync(join(TEST_HOME, 'orig-scripts-'));
      const m = services().minio;
      await t.server.ctx.repos.storageProviders.create({
        name: 'minio', type: 's3', endpoint: m.endpoint, bucket, region: m.region, pathStyle: true, isDefault: true,
        credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
      });
      // The scripts sign in as an operator by email and password (EMAIL, PASSWORD), API_URL without /api/v1.
      env = { API_URL: t.url, EMAIL: 'admin@example.com', PASSWORD: TEST_PASSWORD, POLL_INTERVAL: '1' };
    });
    after(async () => {
      if (agent && agent.exitCode === null) {
        const exited = new Promise((r) => agent?.once('exit', r));
        agent.kill('SIGTERM');
        await exited;
      }
      await t.close();
      await site.cleanup();
      await removeBucket(bucket);
      rmSync(work, { recursive: true, force: true });
    });

    it("the agent's scan names the site by its siteurl's host, and adopting it keeps that name", async () => {
      const code = generateToken('join');
      await t.server.ctx.repos.joinCodes.create({ codeHash: hashToken(code), expiresAt: Date.now() + 60_000 });
      agent = spawnAgent({ serverUrl: t.url, dataDir: join(work, 'agent'), args: ['--scan-root', site.dir], env: { WPBACKUP_JOIN_CODE: code }, onOutput: (s) => (agentOut += s) });
      const nodeId = await until('the agent to join', async () => (await t.server.ctx.repos.nodes.list()).at(0)?.id);
      const found = await until('the scan to report the site', async () => {
        const res = await t.api('GET', `/api/v1/nodes/${nodeId}/discovered-sites`);
        return (res.body?.discovered_sites as { path: string; name: string }[] | undefined)?.find((d) => d.path === site.dir);
      });
      // The directory is named after the database (orig_<dialect>_...); the site after its URL.
      assert.equal(found.name, host);
      assert.notEqual(found.name, site.dir.split('/').pop());
      const adopted = await t.api('POST', '/api/v1/sites/adopt', { body: { node_id: nodeId, path: site.dir } });
      assert.equal(adopted.status, 201, JSON.stringify(adopted.body));
      assert.equal(adopted.body.name, host);
      siteId = adopted.body.id as string;
    });

    it('start_backup.sh, monitor_backup.sh and check_status.sh run a backup to the end; the download link serves it', async () => {
      assert.ok(siteId, 'the site was adopted');
      const start = await client(env, ['start', siteId]);
      assert.equal(start.code, 0, start.out);
      assert.deepEqual({ name: start.values.name, wp_path: start.values.wp_path, success: start.values.success }, { name: host, wp_path: site.dir, success: 'true' }, start.out);

      const monitor = await client(env, ['monitor', siteId]);
      assert.equal(monitor.code, 0, `${monitor.out}\nagent output:\n${agentOut}`);
      const last = monitor.out.trim().split('\n').at(-1) ?? '';
      assert.match(last, /^poll status=completed progress=100 message=.* error=null$/, monitor.out);

      const state = await t.server.ctx.repos.sites.backupState(siteId);
      assert.equal(state?.status, 'completed', state?.error ?? '');
      const status = await client(env, ['status', siteId]);
      assert.equal(status.code, 0, status.out);
      assert.deepEqual(status.values, { status: 'completed', progress: '100', message: state?.stageDetail ?? 'null', error: 'null' });

      // The archive is named like `wpbackup backup` names it: siteurl's host, then the time.
      const backup = await t.server.ctx.repos.backups.get(state?.lastBackupId ?? '');
      assert.ok(backup?.sha256, 'the backup was recorded');
      assert.match(backup.filename, new RegExp(`^${host.replace(/\./g, '\\.')}_\\d{8}_\\d{6}\\.tar\\.zst$`));
      const file = join(work, 'download.tar.zst');
      const dl = await client(env, ['download', backup.id, file]);
      assert.equal(dl.code, 0, dl.out);
      assert.equal(dl.values.download_url_set, 'yes');
      assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), backup.sha256);
    });

    it("start_backup.sh shows wpbackup's refusal (detail); reset_backup.sh resets; a wrong password stops every script", async () => {
      assert.ok(siteId, 'the site was adopted');
      assert.equal((await t.api('PATCH', `/api/v1/sites/${siteId}`, { body: { quota_bytes: 1 } })).status, 200);
      const refused = await client(env, ['start', siteId]);
      assert.notEqual(refused.values.success, 'true', refused.out);
      assert.match(refused.values.error ?? '', /would exceed the site quota/, refused.out);
      assert.equal((await t.api('PATCH', `/api/v1/sites/${siteId}`, { body: { quota_bytes: null } })).status, 200);

      const reset = await client(env, ['reset', siteId]);
      assert.equal(reset.code, 0, reset.out);
      assert.deepEqual(reset.values, { success: 'true', dirs_removed: '0', space_freed_mb: '0' });
      await until('the agent to run the clean-up job', async () => !(await t.server.ctx.repos.jobs.activeForSite(siteId, 'reset')));
      const status = await client(env, ['status', siteId]);
      assert.equal(status.values.status, 'idle', status.out);

      for (const cmd of ['start', 'status', 'monitor', 'reset']) {
        const denied = await client({ ...env, PASSWORD: 'not the password' }, [cmd, siteId]);
        assert.equal(denied.code, 1, denied.out);
        assert.match(denied.out, /ERROR: Failed to get auth token/);
      }
    });
  });
}
