import { CreateMultipartUploadCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { NodeRow } from '../../../src/server/db/nodes.ts';
import type { StorageProviderRow } from '../../../src/server/db/storage-providers.ts';
import { DOWNLOAD_PATH } from '../../../src/server/local-download.ts';
import { reapExpiredJobs, startReaper } from '../../../src/server/reaper.ts';
import { sseTiming } from '../../../src/server/routes/site-events.ts';
import { makeBucket, pendingUploads, removeBucket, s3 } from '../../helpers/s3.ts';
import { DIALECTS, startTestServer, type TestServer } from '../../helpers/server.ts';
import { services } from '../../helpers/services.ts';
import { waitFor } from '../../helpers/wait.ts';

const UNKNOWN = '00000000-0000-4000-8000-000000000000';

for (const dialect of DIALECTS) {
  describe(`API sites and backups (${dialect})`, () => {
    let t: TestServer;
    let node: NodeRow;
    let bucket: string;
    let s3Provider: StorageProviderRow;
    let n = 0;

    before(async () => {
      t = await startTestServer(dialect);
      node = await t.server.ctx.repos.nodes.create({ hostname: 'web1.example.com', status: 'active' });
      bucket = await makeBucket();
      const m = services().minio;
      s3Provider = await t.server.ctx.repos.storageProviders.create({
        name: 'minio', type: 's3', endpoint: m.endpoint, region: m.region, bucket, pathStyle: true, prefix: 'pre/',
        credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
      });
    });
    after(async () => {
      await t.close();
      await removeBucket(bucket);
    });

    const repos = () => t.server.ctx.repos;
    async function newSite(extra: Record<string, unknown> = {}, token?: string) {
      const res = await t.api('POST', '/api/v1/sites', { body: { node_id: node.id, name: `site${++n}.example.com`, wp_path: `/var/www/site${n}`, ...extra }, token });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body as { id: string; node_id: string; name: string; wp_path: string };
    }
    /** A site on a node of its own, so claimNext() on that node finds this site's jobs only. */
    async function siteOnOwnNode(): Promise<{ site: { id: string; name: string }; node: NodeRow }> {
      const own = await repos().nodes.create({ hostname: `agent${++n}.example.com`, status: 'active' });
      return { site: await newSite({ node_id: own.id }), node: own };
    }
    /** A completed backup row (as the agent's upload would leave it), optionally with a stored object. */
    async function addBackup(siteId: string, o: { size: number; sourceBytes?: number; storageId?: string; body?: Buffer; key?: string }) {
      const storageId = o.storageId ?? (await t.server.ctx.storage.defaultProvider()).id;
      const key = o.key ?? `${node.id}/${siteId}/b${++n}_20250101_000000.tar.zst`;
      if (o.body) {
        const { storage } = await t.server.ctx.storage.require(storageId);
        await storage.put(key, Readable.from([o.body]));
      }
      const row = await repos().backups.create({ siteId, storageId, key, filename: key.split('/').pop() ?? key });
      return (await repos().backups.complete(row.id, { size: o.size, sha256: 'ab'.repeat(32), sourceBytes: o.sourceBytes ?? null }))!;
    }

    it('creates, lists, reads, edits and deletes sites, with audit entries', async () => {
      const site = await newSite({ excludes: ['uploads/big/'], quota_bytes: 1000 });
      assert.equal(site.node_id, node.id);
      const got = await t.api('GET', `/api/v1/sites/${site.id}`);
      assert.equal(got.status, 200);
      assert.deepEqual(got.body.excludes, ['uploads/big/']);
      assert.equal(got.body.quota_bytes, 1000);
      assert.equal(got.body.backup.status, 'idle');
      const list = await t.api('GET', `/api/v1/sites?node_id=${node.id}`);
      assert.ok(list.body.sites.some((s: { id: string }) => s.id === site.id));
      const patched = await t.api('PATCH', `/api/v1/sites/${site.id}`, { body: { name: 'renamed.example.com', quota_bytes: null } });
      assert.equal(patched.status, 200);
      assert.equal(patched.body.name, 'renamed.example.com');
      assert.equal(patched.body.quota_bytes, null);
      const dup = await t.api('POST', '/api/v1/sites', { body: { node_id: node.id, name: 'x', wp_path: site.wp_path } });
      assert.equal(dup.status, 409);
      assert.equal((await t.api('DELETE', `/api/v1/sites/${site.id}`)).status, 204);
      assert.equal((await t.api('GET', `/api/v1/sites/${site.id}`)).status, 404);
      const actions = (await repos().audit.list({ targetId: site.id })).map((e) => e.action).sort();
      assert.deepEqual(actions, ['site.create', 'site.delete', 'site.update']);
    });

    it('refuses bad input with 4xx and changes nothing', async () => {
      const site = await newSite();
      const before = await repos().sites.count();
      const bad: [string, string, unknown, number][] = [
        ['POST', '/api/v1/sites', { node_id: 42, name: 'a', wp_path: '/a' }, 400],
        ['POST', '/api/v1/sites', { node_id: 'not-a-uuid', name: 'a', wp_path: '/a' }, 400],
        ['POST', '/api/v1/sites', { node_id: node.id, name: '', wp_path: '/a' }, 400],
        ['POST', '/api/v1/sites', { node_id: node.id, name: 'a', wp_path: '/a', extra: 1 }, 400],
        ['POST', '/api/v1/sites', { node_id: node.id, name: 'a', wp_path: 'relative/path' }, 400],
        ['POST', '/api/v1/sites', { node_id: node.id, name: 'a', wp_path: '/var/www/../../etc' }, 400],
        ['POST', '/api/v1/sites', { node_id: node.id, name: 'a\u0000b', wp_path: '/a' }, 400],
        ['POST', '/api/v1/sites', { node_id: node.id, name: 'a', wp_path: '/a', quota_bytes: -1 }, 400],
        ['POST', '/api/v1/sites', { node_id: node.id, name: 'a', wp_path: '/a', quota_bytes: '10' }, 400],
        ['POST', '/api/v1/sites', { node_id: node.id, name: 'a', wp_path: '/a', excludes: 'cache/' }, 400],
        ['POST', '/api/v1/sites', { node_id: UNKNOWN, name: 'a', wp_path: '/a' }, 404],
        ['POST', '/api/v1/sites', [1, 2], 400],
        ['PATCH', `/api/v1/sites/${site.id}`, {}, 400],
        ['PATCH', `/api/v1/sites/${site.id}`, { node_id: node.id }, 400],
        ['PATCH', `/api/v1/sites/${site.id}`, { wp_path: '/x/./y' }, 400],
        ['PATCH', `/api/v1/sites/${UNKNOWN}`, { name: 'x' }, 404],
        ['POST', `/api/v1/sites/${site.id}/backup/start`, { force: true }, 400],
      ];
      for (const [method, path, body, status] of bad) {
        const res = await t.api(method, path, { body });
        assert.equal(res.status, status, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
        assert.ok(res.body.error.code);
      }
      const huge = await t.api('POST', '/api/v1/sites', { raw: JSON.stringify({ node_id: node.id, name: 'x'.repeat(2 << 20), wp_path: '/h' }), headers: { 'content-type': 'application/json' } });
      assert.equal(huge.status, 413);
      assert.equal((await t.api('POST', '/api/v1/sites', { raw: '{nope', headers: { 'content-type': 'application/json' } })).status, 400);
      // Every route: a malformed id is 400, an unknown one 404.
      const routes: [string, string][] = [
        ['GET', '/api/v1/sites/ID'], ['DELETE', '/api/v1/sites/ID'], ['POST', '/api/v1/sites/ID/backup/start'],
        ['GET', '/api/v1/sites/ID/backup/status'], ['GET', '/api/v1/sites/ID/backup/events'], ['POST', '/api/v1/sites/ID/backup/stop'],
        ['POST', '/api/v1/daemon/backup/reset/ID'], ['GET', '/api/v1/sites/ID/quota/check'], ['GET', '/api/v1/sites/ID/backups'],
        ['GET', '/api/v1/backups/backups/ID'], ['GET', '/api/v1/backups/backups/ID/download'], ['DELETE', '/api/v1/backups/backups/ID'],
      ];
      for (const [method, path] of routes) {
        for (const [id, status] of [['nope', 400], ["1' OR '1'='1", 400], ['..%2F..%2Fetc', 400], [UNKNOWN, 404]] as const) {
          const res = await t.api(method, path.replace('ID', encodeURIComponent(id).replace(/%25/g, '%')));
          assert.equal(res.status, status, `${method} ${path} with ${id}: ${JSON.stringify(res.body)}`);
        }
      }
      assert.equal((await t.api('GET', `/api/v1/sites?limit=abc`)).status, 400);
      assert.equal((await t.api('GET', `/api/v1/sites?evil=1`)).status, 400);
      assert.equal((await t.api('GET', `/api/v1/sites/${site.id}/backups?before=-1`)).status, 400);
      assert.equal(await repos().sites.count(), before);
      assert.equal((await repos().sites.get(site.id))?.status, 'idle');
      // SQL-looking and path-looking names are data, stored as given.
      const sqlName = "x'); DROP TABLE sites; --";
      const odd = await newSite({ name: sqlName, excludes: ['../../etc/passwd'] });
      assert.equal((await t.api('GET', `/api/v1/sites/${odd.id}`)).body.name, sqlName);
      assert.deepEqual((await repos().sites.get(odd.id))?.excludes, ['../../etc/passwd']);
    });

    it('starts a backup (202), refuses a second (409), reports status', async () => {
      const { site, node } = await siteOnOwnNode();
      const start = await t.api('POST', `/api/v1/sites/${site.id}/backup/start`);
      assert.equal(start.status, 202, JSON.stringify(start.body));
      assert.equal(start.body.site_id, site.id);
      assert.equal(start.body.state, 'queued');
      assert.ok(Date.parse(start.body.created_at));
      const again = await t.api('POST', `/api/v1/sites/${site.id}/backup/start`);
      assert.equal(again.status, 409);
      const status = await t.api('GET', `/api/v1/sites/${site.id}/backup/status`);
      assert.equal(status.status, 200);
      assert.equal(status.body.status, 'running');
      assert.equal(status.body.job_id, start.body.job_id);
      assert.equal(status.body.stage_detail, 'Queued');
      assert.equal(status.body.backup_id, null);
      assert.ok(Date.parse(status.body.started_at));
      // The job went to the default storage provider, made on first need under the data dir.
      const job = await repos().jobs.get(start.body.job_id);
      const provider = await repos().storageProviders.getDefault();
      assert.equal(job?.storageId, provider?.id);
      assert.equal(provider?.type, 'local');
      // The agent finishes it: status completed with the backup id.
      await repos().jobs.claimNext(node.id, 60_000);
      const backup = await addBackup(site.id, { size: 10 });
      await repos().jobs.finish(start.body.job_id, node.id, { state: 'done', backupId: backup.id });
      const done = await t.api('GET', `/api/v1/sites/${site.id}/backup/status`);
      assert.equal(done.body.status, 'completed');
      assert.equal(done.body.progress, 100);
      assert.equal(done.body.backup_id, backup.id);
      assert.ok(Date.parse(done.body.finished_at));
      assert.ok((await repos().audit.list({ targetId: site.id })).some((e) => e.action === 'site.backup.start'));
    });

    it('lets exactly one of ten simultaneous starts through', async () => {
      const site = await newSite();
      const results = await Promise.all(Array.from({ length: 10 }, () => t.api('POST', `/api/v1/sites/${site.id}/backup/start`)));
      const statuses = results.map((r) => r.status).sort();
      assert.deepEqual(statuses, [202, 409, 409, 409, 409, 409, 409, 409, 409, 409], JSON.stringify(results.map((r) => r.body)));
      assert.equal((await repos().jobs.listForSite(site.id)).length, 1);
    });

    it('stops a queued job at once, and asks the agent to stop a running one', async () => {
      const { site, node } = await siteOnOwnNode();
      assert.equal((await t.api('POST', `/api/v1/sites/${site.id}/backup/stop`)).status, 409);
      const start = await t.api('POST', `/api/v1/sites/${site.id}/backup/start`);
      const stop = await t.api('POST', `/api/v1/sites/${site.id}/backup/stop`);
      assert.equal(stop.status, 200);
      assert.equal(stop.body.immediate, true);
      assert.equal(stop.body.status.status, 'stopped');
      assert.equal((await repos().jobs.get(start.body.job_id))?.state, 'cancelled');
      assert.equal((await t.api('GET', `/api/v1/sites/${site.id}/backup/status`)).body.status, 'stopped');
      // A claimed job keeps running until its agent hears of the stop on its next report.
      const second = await t.api('POST', `/api/v1/sites/${site.id}/backup/start`);
      assert.equal(second.status, 202);
      await repos().jobs.claimNext(node.id, 60_000);
      const ask = await t.api('POST', `/api/v1/sites/${site.id}/backup/stop`);
      assert.equal(ask.status, 202);
      assert.equal(ask.body.immediate, false);
      assert.equal(ask.body.status.status, 'running');
      assert.equal((await repos().jobs.get(second.body.job_id))?.cancelRequested, true);
      await repos().jobs.resetSite(site.id);
    });

    it('resets a stuck site to idle, queues a clean-up job and aborts its multipart upload', async () => {
      const { site, node } = await siteOnOwnNode();
      const start = await t.api('POST', `/api/v1/sites/${site.id}/backup/start`);
      const job = (await repos().jobs.claimNext(node.id, 60_000))!;
      assert.equal(job?.id, start.body.job_id);
      const key = `${node.id}/${site.id}/stuck_20250101_000000.tar.zst`;
      const created = await s3().send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `pre/${key}` }));
      assert.ok(await repos().jobs.setUpload(job.id, node.id, { storageId: s3Provider.id, uploadKey: key, uploadId: created.UploadId! }));
      assert.equal((await pendingUploads(bucket)).length, 1);
      const res = await t.api('POST', `/api/v1/daemon/backup/reset/${site.id}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.status.status, 'idle');
      assert.equal(res.body.status.job_id, null);
      assert.deepEqual(res.body.cancelled_job_ids, [job.id]);
      assert.equal(res.body.aborted_uploads, 1);
      assert.deepEqual(await pendingUploads(bucket), []);
      assert.equal((await repos().jobs.get(job.id))?.state, 'cancelled');
      const cleanup = await repos().jobs.get(res.body.reset_job_id);
      assert.equal(cleanup?.type, 'reset');
      assert.equal(cleanup?.state, 'queued');
      // Resetting an idle site is fine too (the clean-up job is reused).
      const again = await t.api('POST', `/api/v1/daemon/backup/reset/${site.id}`);
      assert.equal(again.status, 200);
      assert.equal(again.body.reset_job_id, res.body.reset_job_id);
      assert.ok((await repos().audit.list({ targetId: site.id })).some((e) => e.action === 'daemon.backup.reset'));
    });

    it('checks quotas with the last backup or size x compression ratio, and refuses a start that would exceed them (422)', async () => {
      const quotaNode = await repos().nodes.create({ hostname: 'web2.example.com', status: 'active' });
      const site = (await t.api('POST', '/api/v1/sites', { body: { node_id: quotaNode.id, name: 'q.example.com', wp_path: '/var/www/q', quota_bytes: 5000 } })).body;
      const none = (await t.api('GET', `/api/v1/sites/${site.id}/quota/check`)).body;
      assert.deepEqual(none, {
        can_proceed: true, current_usage_bytes: 0, estimate_bytes: 0, estimate_basis: 'none', projected_usage_bytes: 0,
        site_quota_bytes: 5000, node_quota_bytes: null, exceeded: [], node_usage_bytes: 0, node_projected_usage_bytes: 0,
      });
      // Size known, no backups of this site: the ratio seen across all sites.
      await repos().sites.update(site.id, { sizeBytes: 10_000 });
      const ratioAll = await repos().backups.compressionRatio();
      const est = (await t.api('GET', `/api/v1/sites/${site.id}/quota/check`)).body;
      assert.equal(est.estimate_basis, 'site_size_x_ratio');
      assert.equal(est.estimate_bytes, Math.ceil(10_000 * (ratioAll ?? 1)));
      // Its own backup: 1000 bytes from 4000 source bytes; the estimate is now that backup's size.
      await addBackup(site.id, { size: 1000, sourceBytes: 4000 });
      const q = (await t.api('GET', `/api/v1/sites/${site.id}/quota/check`)).body;
      assert.equal(q.estimate_basis, 'last_backup');
      assert.equal(q.estimate_bytes, 1000);
      assert.equal(q.current_usage_bytes, 1000);
      assert.equal(q.projected_usage_bytes, 2000);
      assert.equal(q.node_usage_bytes, 1000);
      assert.equal(q.can_proceed, true);
      // Node quota 1500: 1000 used + 1000 estimated is over.
      await repos().nodes.update(quotaNode.id, { quotaBytes: 1500 });
      await t.api('PATCH', `/api/v1/sites/${site.id}`, { body: { quota_bytes: 1999 } });
      const over = (await t.api('GET', `/api/v1/sites/${site.id}/quota/check`)).body;
      assert.equal(over.can_proceed, false);
      assert.deepEqual(over.exceeded, ['site', 'node']);
      assert.equal(over.node_quota_bytes, 1500);
      const refused = await t.api('POST', `/api/v1/sites/${site.id}/backup/start`);
      assert.equal(refused.status, 422);
      assert.equal(refused.body.error.code, 'quota_exceeded');
      assert.deepEqual(refused.body.error.details, over);
      assert.equal((await repos().sites.get(site.id))?.status, 'idle');
      assert.equal((await repos().jobs.listForSite(site.id)).length, 0);
      await repos().nodes.update(quotaNode.id, { quotaBytes: null });
      await t.api('PATCH', `/api/v1/sites/${site.id}`, { body: { quota_bytes: null } });
      assert.equal((await t.api('POST', `/api/v1/sites/${site.id}/backup/start`)).status, 202);
      await repos().jobs.resetSite(site.id);
    });

    it('lists, reads, downloads (server-signed local URL) and deletes backups', async () => {
      const site = await newSite();
      const content = Buffer.from('local archive bytes '.repeat(100));
      const b = await addBackup(site.id, { size: content.length, body: content });
      const list = await t.api('GET', `/api/v1/sites/${site.id}/backups`);
      assert.deepEqual(list.body.backups.map((x: { id: string }) => x.id), [b.id]);
      const one = await t.api('GET', `/api/v1/backups/backups/${b.id}`);
      assert.equal(one.body.size, content.length);
      assert.equal(one.body.status, 'completed');
      const dl = await t.api('GET', `/api/v1/backups/backups/${b.id}/download`);
      assert.equal(dl.status, 200);
      assert.equal(dl.body.expires_in_seconds, 3600);
      assert.equal(dl.body.filename, b.filename);
      assert.ok(dl.body.url.startsWith(`${t.url}${DOWNLOAD_PATH}`));
      const fetched = await fetch(dl.body.url);
      assert.equal(fetched.status, 200);
      assert.deepEqual(Buffer.from(await fetched.arrayBuffer()), content);
      assert.match(fetched.headers.get('content-disposition') ?? '', /attachment/);
      // Tampered, truncated, expired, and signed-but-escaping links are all refused.
      const token = dl.body.url.slice(`${t.url}${DOWNLOAD_PATH}`.length) as string;
      const [payload, sig] = token.split('.') as [string, string];
      const flipped = `${payload}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
      const provider = (await repos().storageProviders.getDefault())!;
      const forged = Buffer.from(JSON.stringify([provider.id, '../../secret.key', 9e9])).toString('base64url');
      for (const bad of [flipped, `${forged}.${sig}`, payload, 'x', `${token}.x`]) {
        assert.equal((await fetch(`${t.url}${DOWNLOAD_PATH}${bad}`)).status, 403, bad);
      }
      const expired = t.server.ctx.downloads.token({ providerId: provider.id, key: b.key, expires: Math.floor(Date.now() / 1000) - 1 });
      assert.equal((await fetch(`${t.url}${DOWNLOAD_PATH}${expired}`)).status, 403);
      const escaping = t.server.ctx.downloads.token({ providerId: provider.id, key: '../secret.key', expires: 9e9 });
      assert.equal((await fetch(`${t.url}${DOWNLOAD_PATH}${escaping}`)).status, 403);
      const missing = t.server.ctx.downloads.token({ providerId: provider.id, key: 'no/such.tar.zst', expires: 9e9 });
      assert.equal((await fetch(`${t.url}${DOWNLOAD_PATH}${missing}`)).status, 404);
      // Delete: the object, then the row; usage drops.
      const { storage } = await t.server.ctx.storage.require(provider.id);
      assert.ok(await storage.head(b.key));
      assert.equal(await repos().backups.usageBySite(site.id), content.length);
      assert.equal((await t.api('DELETE', `/api/v1/backups/backups/${b.id}`)).status, 204);
      assert.equal(await storage.head(b.key), undefined);
      assert.equal(await repos().backups.get(b.id), undefined);
      assert.equal(await repos().backups.usageBySite(site.id), 0);
      assert.equal((await t.api('GET', `/api/v1/backups/backups/${b.id}`)).status, 404);
      assert.equal((await fetch(dl.body.url)).status, 404);
      assert.ok((await repos().audit.list({ targetId: b.id })).some((e) => e.action === 'backup.delete'));
      // A site with backups cannot be deleted; without, it can.
      const kept = await addBackup(site.id, { size: 1 });
      assert.equal((await t.api('DELETE', `/api/v1/sites/${site.id}`)).status, 409);
      assert.equal((await t.api('DELETE', `/api/v1/backups/backups/${kept.id}`)).status, 204);
      assert.equal((await t.api('DELETE', `/api/v1/sites/${site.id}`)).status, 204);
    });

    it('downloads from S3 with a presigned MinIO URL valid one hour', async () => {
      const site = await newSite();
      const content = Buffer.from('s3 archive bytes '.repeat(50));
      const b = await addBackup(site.id, { size: content.length, body: content, storageId: s3Provider.id });
      const dl = await t.api('GET', `/api/v1/backups/backups/${b.id}/download`);
      assert.equal(dl.status, 200);
      assert.equal(dl.body.expires_in_seconds, 3600);
      const url = new URL(dl.body.url);
      assert.equal(url.searchParams.get('X-Amz-Expires'), '3600');
      assert.ok(url.pathname.endsWith(`/pre/${b.key}`));
      const fetched = await fetch(dl.body.url);
      assert.equal(fetched.status, 200);
      assert.deepEqual(Buffer.from(await fetched.arrayBuffer()), content);
      url.searchParams.set('X-Amz-Expires', '7200');
      assert.equal((await fetch(url)).status, 403);
      assert.equal((await t.api('DELETE', `/api/v1/backups/backups/${b.id}`)).status, 204);
      assert.equal((await fetch(dl.body.url)).status, 404);
    });

    it('streams status changes as Server-Sent Events', async () => {
      const { site, node } = await siteOnOwnNode();
      const ac = new AbortController();
      const res = await fetch(`${t.url}/api/v1/sites/${site.id}/backup/events`, { headers: { authorization: `Bearer ${t.adminToken}` }, signal: ac.signal });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      const events = readEvents(res.body!);
      const first = await events.next('status');
      assert.equal(first.status, 'idle');
      // A change made here is published at once.
      const start = await t.api('POST', `/api/v1/sites/${site.id}/backup/start`);
      const queued = await events.next('status');
      assert.equal(queued.status, 'running');
      assert.equal(queued.job_id, start.body.job_id);
      // A change written straight to the database (as another server process would) is found by polling.
      await repos().jobs.claimNext(node.id, 60_000);
      await repos().jobs.report(start.body.job_id, node.id, 60_000, { progress: 42, stage: 'backup_files', stageDetail: 'Reading wp-content' });
      const progressed = await events.next('status');
      assert.equal(progressed.progress, 42);
      assert.equal(progressed.stage, 'backup_files');
      assert.equal(progressed.stage_detail, 'Reading wp-content');
      assert.equal(t.server.ctx.events.watchers(site.id), 1);
      ac.abort();
      // Keepalive comments, on a shortened timer.
      const saved = sseTiming.keepaliveMs;
      sseTiming.keepaliveMs = 50;
      const ac2 = new AbortController();
      try {
        const res2 = await fetch(`${t.url}/api/v1/sites/${site.id}/backup/events`, { headers: { authorization: `Bearer ${t.adminToken}` }, signal: ac2.signal });
        const reader = res2.body!.getReader();
        let text = '';
        while (!text.includes(': keepalive\n\n')) text += new TextDecoder().decode((await reader.read()).value);
        assert.match(text, /event: status\n/);
      } finally {
        sseTiming.keepaliveMs = saved;
        ac2.abort();
      }
      await waitFor('the closed stream to stop watching', async () => t.server.ctx.events.watchers(site.id) === 0, { ms: 5000 });
      assert.equal(t.server.ctx.events.watchers(site.id), 0);
      await repos().jobs.resetSite(site.id);
      // Without access: 401 / 403, not a stream.
      assert.equal((await t.api('GET', `/api/v1/sites/${site.id}/backup/events`, { token: null })).status, 401);
    });

    it('ends open event streams when the server closes, and documents every route', async () => {
      const doc = (await t.api('GET', '/api/openapi.json', { token: null })).body;
      for (const path of ['/api/v1/sites', '/api/v1/sites/{id}', '/api/v1/sites/{id}/backup/start', '/api/v1/sites/{id}/backup/status',
        '/api/v1/sites/{id}/backup/events', '/api/v1/sites/{id}/backup/stop', '/api/v1/daemon/backup/reset/{site_id}', '/api/v1/sites/{id}/quota/check',
        '/api/v1/sites/{id}/backups', '/api/v1/backups/backups/{id}', '/api/v1/backups/backups/{id}/download']) assert.ok(doc.paths[path], path);
      const other = await startTestServer(dialect);
      try {
        const own = await other.server.ctx.repos.nodes.create({ hostname: 'x.example.com' });
        const site = (await other.api('POST', '/api/v1/sites', { body: { node_id: own.id, name: 'x', wp_path: '/x' } })).body;
        const res = await fetch(`${other.url}/api/v1/sites/${site.id}/backup/events`, { headers: { authorization: `Bearer ${other.adminToken}` } });
        const events = readEvents(res.body!);
        assert.equal((await events.next('status')).status, 'idle');
        const closed = other.server.close();
        await assert.rejects(events.next('status'), /ended/);
        await closed;
      } finally {
        await other.target.cleanup();
      }
    });

    it('reaps a job whose lease ran out: failed with the agent and stage named, upload aborted', async () => {
      const { site, node } = await siteOnOwnNode();
      const start = await t.api('POST', `/api/v1/sites/${site.id}/backup/start`);
      const job = (await repos().jobs.claimNext(node.id, 60_000))!;
      assert.equal(job.id, start.body.job_id);
      await repos().jobs.report(job.id, node.id, 60_000, { progress: 80, stage: 'upload_remote', stageDetail: 'Uploading' });
      const key = `${node.id}/${site.id}/lost_20250101_000000.tar.zst`;
      const created = await s3().send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `pre/${key}` }));
      await repos().jobs.setUpload(job.id, node.id, { storageId: s3Provider.id, uploadKey: key, uploadId: created.UploadId! });
      assert.equal((await reapExpiredJobs(t.server.ctx)).length, 0);
      // A report that leaves the lease already run out: the agent went quiet long ago.
      await repos().jobs.report(job.id, node.id, -1000, { progress: 80, stage: 'upload_remote', stageDetail: 'Uploading' });
      const reaper = startReaper(t.server.ctx, { intervalMs: 60_000 });
      const reaped = await reaper.runOnce();
      await reaper.stop();
      assert.deepEqual(reaped.map((j) => j.id), [job.id]);
      const message = `agent on ${node.hostname} stopped reporting during upload_remote`;
      assert.equal((await repos().jobs.get(job.id))?.error, message);
      const status = (await t.api('GET', `/api/v1/sites/${site.id}/backup/status`)).body;
      assert.equal(status.status, 'failed');
      assert.equal(status.error, message);
      assert.deepEqual(await pendingUploads(bucket), []);
      assert.equal((await reapExpiredJobs(t.server.ctx)).length, 0);
    });

    it('checks roles: foreign sites are 403, no token is 401', async () => {
      const mine = await newSite();
      const foreign = await newSite();
      const siteAdmin = await t.userWithRole('site_admin');
      await repos().users.assignSite(siteAdmin.id, mine.id);
      const otherNode = await repos().nodes.create({ hostname: 'web3.example.com', status: 'active' });
      const nodeAdmin = await t.userWithRole('node_admin');
      await repos().users.assignNode(nodeAdmin.id, otherNode.id);
      const as = (token: string) => ({ token });

      assert.equal((await t.api('GET', `/api/v1/sites/${mine.id}`, as(siteAdmin.token))).status, 200);
      assert.equal((await t.api('GET', `/api/v1/sites/${mine.id}/backup/status`, as(siteAdmin.token))).status, 200);
      const visible = (await t.api('GET', '/api/v1/sites', as(siteAdmin.token))).body.sites.map((s: { id: string }) => s.id);
      assert.deepEqual(visible, [mine.id]);
      assert.deepEqual((await t.api('GET', '/api/v1/sites', as(nodeAdmin.token))).body.sites, []);
      const forbidden: [string, string, unknown?][] = [
        ['GET', `/api/v1/sites/${foreign.id}`], ['GET', `/api/v1/sites/${foreign.id}/backup/status`],
        ['POST', `/api/v1/sites/${foreign.id}/backup/start`], ['POST', `/api/v1/sites/${foreign.id}/backup/stop`],
        ['GET', `/api/v1/sites/${foreign.id}/backup/events`], ['GET', `/api/v1/sites/${foreign.id}/quota/check`],
        ['GET', `/api/v1/sites/${foreign.id}/backups`], ['DELETE', `/api/v1/sites/${foreign.id}`],
        ['PATCH', `/api/v1/sites/${foreign.id}`, { name: 'mine now' }],
        // site_admin may not reset, delete or edit even their own site.
        ['POST', `/api/v1/daemon/backup/reset/${mine.id}`], ['DELETE', `/api/v1/sites/${mine.id}`],
        ['PATCH', `/api/v1/sites/${mine.id}`, { name: 'x' }],
        ['POST', '/api/v1/sites', { node_id: node.id, name: 'x', wp_path: '/var/www/forbidden' }],
        // Unknown ids look the same as foreign ones to a non-admin.
        ['GET', `/api/v1/sites/${UNKNOWN}`],
      ];
      for (const [method, path, body] of forbidden) {
        const res = await t.api(method, path, { token: siteAdmin.token, body });
        assert.equal(res.status, 403, `${method} ${path}`);
      }
      const b = await addBackup(foreign.id, { size: 5 });
      for (const [method, path] of [['GET', `/api/v1/backups/backups/${b.id}`], ['GET', `/api/v1/backups/backups/${b.id}/download`], ['DELETE', `/api/v1/backups/backups/${b.id}`]] as [string, string][]) {
        assert.equal((await t.api(method, path, as(siteAdmin.token))).status, 403, `${method} ${path}`);
        assert.equal((await t.api(method, path, as(nodeAdmin.token))).status, 403, `${method} ${path}`);
        assert.equal((await t.api(method, path, { token: null })).status, 401, `${method} ${path}`);
      }
      for (const [method, path] of [['GET', '/api/v1/sites'], ['POST', `/api/v1/sites/${mine.id}/backup/start`], ['GET', `/api/v1/sites/${mine.id}/quota/check`]] as [string, string][]) {
        assert.equal((await t.api(method, path, { token: null })).status, 401, `${method} ${path}`);
        assert.equal((await t.api(method, path, { token: 'wpb_s_bogus' })).status, 401, `${method} ${path}`);
      }
      // The site_admin may back up their own site; the node_admin of its node may reset it.
      assert.equal((await t.api('POST', `/api/v1/sites/${mine.id}/backup/start`, as(siteAdmin.token))).status, 202);
      await repos().users.assignNode(nodeAdmin.id, node.id);
      const nodeAdmin2 = await t.api('POST', '/api/v1/auth/login', { body: { email: nodeAdmin.email, password: 'correct horse battery staple 42' }, token: null });
      assert.equal((await t.api('POST', `/api/v1/daemon/backup/reset/${mine.id}`, as(nodeAdmin2.body.token))).status, 200);
      assert.equal((await repos().sites.get(foreign.id))?.name, foreign.name);
    });
  });
}

/** Reads an SSE stream; next(name) resolves with the data of the next event of that name (5 s at most). */
function readEvents(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const parsed: { event: string; data: string }[] = [];
  async function fill(): Promise<void> {
    const { value, done } = await reader.read();
    if (done) throw new Error('event stream ended');
    buffer += decoder.decode(value, { stream: true });
    let at;
    while ((at = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length) parsed.push({ event, data: data.join('\n') });
    }
  }
  return {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- event bodies are read loosely, like API bodies
    async next(name: string): Promise<any> {
      const deadline = Date.now() + 5000;
      for (;;) {
        const i = parsed.findIndex((e) => e.event === name);
        if (i >= 0) return JSON.parse(parsed.splice(i, 1)[0]!.data);
        if (Date.now() > deadline) throw new Error(`no ${name} event within 5 s`);
        await fill();
      }
    },
  };
}
