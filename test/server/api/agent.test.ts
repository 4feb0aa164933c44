import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../../src/agent/client.ts';
import { PresignedStorage } from '../../../src/agent/presigned-storage.ts';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import { listKeys, makeBucket, pendingUploads, removeBucket } from '../../helpers/s3.ts';
import { DIALECTS, startTestServer, type TestServer } from '../../helpers/server.ts';
import { services } from '../../helpers/services.ts';
import { waitFor } from '../../helpers/wait.ts';

const MiB = 1024 * 1024;

for (const dialect of DIALECTS) {
  describe(`agent API (${dialect})`, () => {
    let t: TestServer;
    let bucket: string;
    let localDir: string;
    let s3ProviderId: string;

    before(async () => {
      t = await startTestServer(dialect, { leaseMs: 5000, pollWaitMs: 1500 });
      bucket = await makeBucket('wpb-agent');
      localDir = mkdtempSync(join(tmpdir(), 'wpb-agent-local-'));
      const m = services().minio;
      const p = await t.server.ctx.repos.storageProviders.create({
        name: 'minio', type: 's3', endpoint: m.endpoint, bucket, region: m.region, pathStyle: true, isDefault: true,
        credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
      });
      s3ProviderId = p.id;
    });
    after(async () => {
      await t.close();
      await removeBucket(bucket);
      rmSync(localDir, { recursive: true, force: true });
    });

    const repos = (): TestServer['server']['ctx']['repos'] => t.server.ctx.repos;

    async function newCode(ttlMs = 60_000): Promise<string> {
      const code = generateToken('join');
      await repos().joinCodes.create({ codeHash: hashToken(code), expiresAt: Date.now() + ttlMs });
      return code;
    }

    async function joinNode(hostname = 'web1.example.com'): Promise<{ nodeId: string; key: string }> {
      const res = await t.api('POST', '/api/v1/agent/join', { body: { code: await newCode(), hostname }, token: null });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return { nodeId: res.body.node_id, key: res.body.node_key };
    }

    async function jobFor(node: { nodeId: string; key: string }, name = 'example.com'): Promise<{ siteId: string; jobId: string; key: string }> {
      const site = await repos().sites.create({ nodeId: node.nodeId, name, wpPath: `/var/www/${name}-${randomBytes(3).toString('hex')}` });
      await repos().jobs.enqueueBackup(site.id);
      const res = await t.api('POST', '/api/v1/agent/poll', { body: {}, token: node.key });
      assert.equal(res.status, 200);
      assert.ok(res.body.job, 'a job was handed out');
      return { siteId: site.id, jobId: res.body.job.job_id, key: res.body.job.key };
    }

    it('joins with a one-time code, once only, and refuses bad codes clearly', async () => {
      const code = await newCode();
      const ok = await t.api('POST', '/api/v1/agent/join', { body: { code, hostname: 'web1' }, token: null });
      assert.equal(ok.status, 200);
      assert.match(ok.body.node_key, /^wpb_n_[A-Za-z0-9_-]{43}$/);
      const node = await repos().nodes.get(ok.body.node_id);
      assert.equal(node?.status, 'active');
      assert.equal(node?.hostname, 'web1');
      const again = await t.api('POST', '/api/v1/agent/join', { body: { code, hostname: 'web2' }, token: null });
      assert.equal(again.status, 403);
      assert.match(again.body.error.message, /unknown, already used or expired/);
      const expired = await t.api('POST', '/api/v1/agent/join', { body: { code: await newCode(-1000), hostname: 'web3' }, token: null });
      assert.equal(expired.status, 403);
      const malformed = await t.api('POST', '/api/v1/agent/join', { body: { code: 'hello', hostname: 'web4' }, token: null });
      assert.equal(malformed.status, 400);
      assert.match(malformed.body.error.message, /not a join code/);
      assert.equal((await t.api('POST', '/api/v1/agent/join', { body: { code: await newCode() }, token: null })).status, 400);
      assert.equal((await t.api('POST', '/api/v1/agent/join', { body: { code: await newCode(), hostname: 'x', extra: 1 }, token: null })).status, 400);
      assert.equal((await t.api('POST', '/api/v1/agent/join', { raw: '{', headers: { 'content-type': 'application/json' }, token: null })).status, 400);
      // No node was left behind by the refused joins.
      assert.equal((await repos().nodes.list()).filter((n) => n.hostname.startsWith('web') && n.hostname !== 'web1').length, 0);
      // The key works; a made-up one does not; a user is not an agent.
      assert.deepEqual((await t.api('POST', '/api/v1/agent/poll', { body: {}, token: ok.body.node_key })).body, { job: null, job_limit: 1 });
      assert.equal((await t.api('POST', '/api/v1/agent/poll', { body: {}, token: generateToken('node') })).status, 401);
      assert.equal((await t.api('POST', '/api/v1/agent/poll', { body: {} })).status, 403);
      assert.equal((await t.api('POST', '/api/v1/agent/poll', { body: {}, token: null })).status, 401);
    });

    it('long-polls: a job queued while the agent waits is handed out with the object key', async () => {
      const node = await joinNode();
      const site = await repos().sites.create({ nodeId: node.nodeId, name: 'Shop Example.com', wpPath: '/var/www/shop' });
      const started = Date.now();
      const polling = t.api('POST', '/api/v1/agent/poll', { body: {}, token: node.key });
      await waitFor('the poll to wait', async () => t.server.ctx.jobNotifier.waiting(node.nodeId) === 1);
      const queued = await repos().jobs.enqueueBackup(site.id);
      const res = await polling;
      assert.equal(res.status, 200);
      assert.ok(Date.now() - started < 1500, 'answered as soon as the job was there');
      const job = res.body.job;
      assert.equal(job.job_id, queued.id);
      assert.equal(job.type, 'backup');
      assert.equal(job.node_id, node.nodeId);
      assert.deepEqual(job.site, { id: site.id, name: 'Shop Example.com', wp_path: '/var/www/shop', excludes: [] });
      assert.equal(job.lease_seconds, 5);
      assert.match(job.key, new RegExp(`^${node.nodeId}/${site.id}/Shop-Example.com_\\d{8}_\\d{6}\\.tar\\.zst$`));
      const row = await repos().jobs.get(queued.id);
      assert.equal(row?.uploadKey, job.key);
      assert.equal(row?.storageId, s3ProviderId);
      assert.equal(row?.state, 'claimed');
      const empty = await t.api('POST', '/api/v1/agent/poll', { body: {}, token: node.key });
      assert.deepEqual(empty.body, { job: null, job_limit: 1 });
    });

    it("progress updates the site's status, and a stop rides on the reply", async () => {
      const node = await joinNode();
      const j = await jobFor(node);
      const report = { status: 'running', progress: 12, stage: 'backup_db', stage_detail: 'Dumping database wp (1.0 MB)', error: null };
      const r1 = await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/progress`, { body: report, token: node.key });
      assert.equal(r1.status, 200);
      assert.equal(r1.body.cancel, false);
      assert.ok(Date.parse(r1.body.lease_until) > Date.now() + 3000);
      let state = await repos().sites.backupState(j.siteId);
      assert.deepEqual([state?.status, state?.progress, state?.stage, state?.stageDetail], ['running', 12, 'backup_db', 'Dumping database wp (1.0 MB)']);
      assert.equal((await repos().jobs.get(j.jobId))?.state, 'running');
      await repos().jobs.requestCancel(j.siteId);
      const r2 = await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/progress`, { body: { ...report, progress: 30, stage: 'backup_files' }, token: node.key });
      assert.equal(r2.body.cancel, true);
      const fin = await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/finish`, { body: { status: 'stopped', stage: 'backup_files', error: null }, token: node.key });
      assert.equal(fin.status, 200);
      assert.equal(fin.body.state, 'cancelled');
      state = await repos().sites.backupState(j.siteId);
      assert.equal(state?.status, 'stopped');
      // The job is over: a late report is told to stop, a second finish is refused.
      const late = await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/progress`, { body: report, token: node.key });
      assert.equal(late.body.cancel, true);
      assert.equal((await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/finish`, { body: { status: 'failed', stage: null, error: 'x' }, token: node.key })).status, 409);
    });

    it("refuses another node's job with 403 on every route", async () => {
      const owner = await joinNode('owner');
      const other = await joinNode('other');
      const j = await jobFor(owner);
      const report = { status: 'running', progress: 1, stage: 'backup_db', stage_detail: 'x', error: null };
      const calls: [string, unknown][] = [
        ['progress', report], ['upload/start', {}], ['upload/parts', { part_numbers: [1] }],
        ['upload/complete', { parts: [{ part_number: 1, etag: '"x"' }], size: 1, sha256: 'a'.repeat(64) }], ['upload/abort', {}],
        ['finish', { status: 'failed', stage: null, error: 'x' }],
      ];
      for (const [path, body] of calls) {
        const res = await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/${path}`, { body, token: other.key });
        assert.equal(res.status, 403, `${path}: ${JSON.stringify(res.body)}`);
      }
      assert.equal((await repos().jobs.get(j.jobId))?.state, 'claimed', 'untouched');
      // A user (even super_admin) is not an agent.
      assert.equal((await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/progress`, { body: report })).status, 403);
    });

    it('uploads through presigned part URLs to MinIO; complete records the backup with size and sha256', async () => {
      const node = await joinNode();
      const j = await jobFor(node);
      const client = new AgentClient(t.url, node.key);
      const storage = new PresignedStorage(client, { jobId: j.jobId, key: j.key }, { partSize: 5 * MiB, urlBatch: 2 });
      const data = randomBytes(11 * MiB + 123);
      let started: unknown;
      const put = await storage.put(j.key, Readable.from([data.subarray(0, 3 * MiB), data.subarray(3 * MiB)]), { onUploadStarted: (p) => void (started = p) });
      assert.equal(put.size, data.length);
      assert.equal(put.sha256, createHash('sha256').update(data).digest('hex'));
      assert.equal((started as { backend: string }).backend, 's3');
      assert.deepEqual(await listKeys(bucket), [j.key]);
      assert.deepEqual(await pendingUploads(bucket), []);
      const backups = await repos().backups.listBySite(j.siteId);
      assert.equal(backups.length, 1);
      assert.deepEqual([backups[0]?.status, backups[0]?.size, backups[0]?.sha256, backups[0]?.key, backups[0]?.jobId], ['completed', data.length, put.sha256, j.key, j.jobId]);
      assert.equal(backups[0]?.filename, j.key.split('/').pop());
      const sourceBytes = data.length * 3;
      const fin = await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/finish`, { body: { status: 'completed', stage: null, error: null, source_bytes: sourceBytes }, token: node.key });
      assert.equal(fin.body.state, 'done');
      const state = await repos().sites.backupState(j.siteId);
      assert.deepEqual([state?.status, state?.progress, state?.lastBackupId], ['completed', 100, backups[0]?.id]);
      // What went in is recorded: the site's size and the backup's source bytes, for quota estimates.
      assert.equal((await repos().backups.get(backups[0]?.id ?? ''))?.sourceBytes, sourceBytes);
      assert.equal((await repos().sites.get(j.siteId))?.sizeBytes, sourceBytes);
      const quota = await t.api('GET', `/api/v1/sites/${j.siteId}/quota/check`);
      assert.deepEqual([quota.body.estimate_basis, quota.body.estimate_bytes], ['last_backup', data.length]);
      // The agent's storage refuses everything but put.
      await assert.rejects(storage.list(''), /cannot list/);
      await assert.rejects(storage.get(j.key), /cannot download/);
      await assert.rejects(storage.delete(j.key), /cannot delete/);
    });

    it('uploads to a local storage provider through part URLs served by the server', async () => {
      const local = await repos().storageProviders.create({ name: `local-${randomBytes(3).toString('hex')}`, type: 'local', rootPath: localDir });
      const node = await joinNode();
      const site = await repos().sites.create({ nodeId: node.nodeId, name: 'local.example', wpPath: '/var/www/local' });
      const queued = await repos().jobs.enqueueBackup(site.id, { storageId: local.id });
      const job = (await t.api('POST', '/api/v1/agent/poll', { body: {}, token: node.key })).body.job;
      assert.equal(job.job_id, queued.id);
      const storage = new PresignedStorage(new AgentClient(t.url, node.key), { jobId: job.job_id, key: job.key }, { partSize: 1 * MiB, urlBatch: 3 });
      const data = randomBytes(3 * MiB + 7);
      const put = await storage.put(job.key, Readable.from([data]));
      assert.ok(readFileSync(join(localDir, job.key)).equals(data));
      const b = (await repos().backups.listBySite(site.id))[0];
      assert.deepEqual([b?.storageId, b?.size, b?.sha256], [local.id, data.length, put.sha256]);
      // A forged or mismatched part URL is refused.
      const bad = await fetch(`${t.url}/api/v1/agent/uploads/${'A'.repeat(40)}/parts/1`, { method: 'PUT', body: 'x', headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(bad.status, 403);
    });

    it('refuses bad input on every agent route', async () => {
      const node = await joinNode();
      const j = await jobFor(node);
      const k = { token: node.key };
      const post = (path: string, body: unknown): Promise<number> => t.api('POST', `/api/v1/agent/jobs/${j.jobId}/${path}`, { body, ...k }).then((r) => r.status);
      const report = { status: 'running', progress: 1, stage: 'backup_db', stage_detail: 'x', error: null };
      assert.equal(await post('progress', { ...report, progress: 101 }), 400);
      assert.equal(await post('progress', { ...report, progress: 1.5 }), 400);
      assert.equal(await post('progress', { ...report, stage: 'bogus' }), 400);
      assert.equal(await post('progress', { ...report, status: 'sleeping' }), 400);
      assert.equal(await post('progress', { progress: 1 }), 400);
      assert.equal(await post('progress', { ...report, extra: true }), 400);
      assert.equal(await post('finish', { status: 'done', stage: null, error: null }), 400);
      assert.equal(await post('finish', { status: 'failed' }), 400);
      assert.equal(await post('upload/parts', { part_numbers: [1] }), 409, 'parts before start');
      assert.equal(await post('upload/complete', { parts: [{ part_number: 1, etag: '"x"' }], size: 1, sha256: 'a'.repeat(64) }), 409, 'complete before start');
      assert.equal(await post('finish', { status: 'completed', stage: null, error: null }), 409, 'completed without an upload');
      assert.equal((await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/upload/start`, { ...k })).status, 200);
      assert.equal(await post('upload/parts', { part_numbers: [] }), 400);
      assert.equal(await post('upload/parts', { part_numbers: [0] }), 400);
      assert.equal(await post('upload/parts', { part_numbers: [10_001] }), 400);
      assert.equal(await post('upload/parts', { part_numbers: [1, 1] }), 400);
      assert.equal(await post('upload/parts', { part_numbers: '1' }), 400);
      assert.equal(await post('upload/parts', { part_numbers: Array.from({ length: 101 }, (_, i) => i + 1) }), 400);
      assert.equal(await post('upload/complete', { parts: [], size: 1, sha256: 'a'.repeat(64) }), 400);
      assert.equal(await post('upload/complete', { parts: [{ part_number: 1, etag: '"x"' }], size: -1, sha256: 'a'.repeat(64) }), 400);
      assert.equal(await post('upload/complete', { parts: [{ part_number: 1, etag: '"x"' }], size: 1, sha256: 'nope' }), 400);
      assert.equal(await post('upload/complete', { parts: [{ part_number: 1 }], size: 1, sha256: 'a'.repeat(64) }), 400);
      // Unknown jobs are 404, for everyone.
      assert.equal((await t.api('POST', '/api/v1/agent/jobs/00000000-0000-0000-0000-000000000000/progress', { body: report, ...k })).status, 404);
      // A part that S3 never got, and a size that does not match what is stored.
      const urls = (await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/upload/parts`, { body: { part_numbers: [1] }, ...k })).body.urls;
      const put = await fetch(urls['1'], { method: 'PUT', body: 'ten bytes!' });
      assert.equal(put.status, 200);
      const etag = put.headers.get('etag') as string;
      assert.equal(await post('upload/complete', { parts: [{ part_number: 2, etag }], size: 10, sha256: 'a'.repeat(64) }), 400);
      const mismatch = await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/upload/complete`, { body: { parts: [{ part_number: 1, etag }], size: 11, sha256: 'a'.repeat(64) }, ...k });
      assert.equal(mismatch.status, 400);
      assert.match(mismatch.body.error.message, /holds 10 bytes but 11 were reported/);
      assert.ok(!(await listKeys(bucket)).includes(j.key), 'the mismatched object was removed');
      // Failing the job aborts its upload.
      const fin = await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/finish`, { body: { status: 'failed', stage: 'upload_remote', error: 'size mismatch' }, ...k });
      assert.equal(fin.body.state, 'failed');
      assert.deepEqual((await pendingUploads(bucket)).filter((u) => u.key === j.key), []);
      const state = await repos().sites.backupState(j.siteId);
      assert.equal(state?.status, 'failed');
      assert.equal(state?.error, 'size mismatch (during upload_remote)');
    });

    it('fails a job whose agent stopped reporting and aborts its upload', async () => {
      const node = await joinNode();
      const j = await jobFor(node);
      assert.equal((await t.api('POST', `/api/v1/agent/jobs/${j.jobId}/upload/start`, { token: node.key })).status, 200);
      assert.equal((await pendingUploads(bucket)).filter((u) => u.key === j.key).length, 1);
      const { reapExpiredJobs } = await import('../../../src/server/reaper.ts');
      const expired = await t.server.ctx.repos.jobs.expireLeases(Date.now() + 60_000);
      assert.ok(expired.some((x) => x.id === j.jobId));
      // expireLeases alone leaves the upload; the reaper aborts it (here for the job already expired).
      const { abortJobUpload } = await import('../../../src/server/agent-uploads.ts');
      for (const x of expired) assert.equal(await abortJobUpload(t.server.ctx, x), undefined);
      assert.deepEqual((await pendingUploads(bucket)).filter((u) => u.key === j.key), []);
      assert.equal((await repos().sites.backupState(j.siteId))?.status, 'failed');
      assert.deepEqual(await reapExpiredJobs(t.server.ctx), []);
    });
  });
}
