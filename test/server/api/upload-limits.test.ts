import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localUploadIds } from '../../../src/server/agent-uploads.ts';
import { listKeys, makeBucket, pendingUploads, removeBucket } from '../../helpers/s3.ts';
import { DIALECTS, startTestServer, twoNodeFleet, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';
import { services } from '../../helpers/services.ts';

// A job may not upload more than its site's (and node's) remaining quota plus a margin (issue
// 7 §4). Part URLs are signed for one size and only as many as fit are handed out; S3 refuses
// a body of another size, local part uploads stop at it; /upload/complete checks the stored
// object. Past the limit the server answers 413 naming it, the job fails with that reason and
// its multipart upload is aborted: nothing is left in storage. Real MinIO and local storage.

const KiB = 1024;
const MiB = 1024 * KiB;
const MARGIN = 1 * MiB;

for (const dialect of DIALECTS) {
  for (const kind of ['s3', 'local'] as const) {
    describe(`upload limits (${dialect}, ${kind} storage)`, () => {
      let t: TestServer;
      let f: TwoNodeFleet;
      let providerId: string;
      let bucket = '';
      let root = '';
      before(async () => {
        t = await startTestServer(dialect, { uploadMarginBytes: MARGIN, pollWaitMs: 200 });
        f = await twoNodeFleet(t);
        if (kind === 's3') {
          const m = services().minio;
          bucket = await makeBucket();
          providerId = (await t.server.ctx.repos.storageProviders.create({ name: 'minio', type: 's3', endpoint: m.endpoint, bucket, region: m.region, pathStyle: true, credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey } })).id;
        } else {
          root = mkdtempSync(join(tmpdir(), 'wpb-limits-'));
          providerId = (await t.server.ctx.repos.storageProviders.create({ name: 'local', type: 'local', rootPath: root })).id;
        }
      });
      after(async () => {
        t.server.ctx.config.uploadMarginBytes = MARGIN;
        await t.close();
        if (bucket) await removeBucket(bucket);
        if (root) rmSync(root, { recursive: true, force: true });
      });

      const agent = (path: string, body: unknown = {}): ReturnType<TestServer['api']> => t.api('POST', path, { body, token: f.keyA });

      /** A site with that quota, its backup job handed to node A's agent and its upload started. */
      async function startedJob(quotaBytes: number | null): Promise<{ jobId: string; siteId: string; base: string }> {
        const site = await t.server.ctx.repos.sites.create({ nodeId: f.nodeA, name: `q-${randomBytes(3).toString('hex')}.example.com`, wpPath: `/var/www/q-${randomBytes(3).toString('hex')}`, quotaBytes });
        await t.server.ctx.repos.jobs.enqueueBackup(site.id, { storageId: providerId });
        const polled = await agent('/api/v1/agent/poll');
        assert.equal(polled.body.job?.site.id, site.id, JSON.stringify(polled.body));
        const base = `/api/v1/agent/jobs/${polled.body.job.job_id}/upload`;
        assert.equal((await agent(`${base}/start`)).status, 200);
        return { jobId: polled.body.job.job_id, siteId: site.id, base };
      }

      const put = async (url: string, bytes: number): Promise<{ status: number; etag: string | null; text: string }> => {
        const res = await fetch(url, { method: 'PUT', body: randomBytes(bytes), headers: { 'content-type': 'application/octet-stream' } });
        return { status: res.status, etag: res.headers.get('etag'), text: await res.text() };
      };

      async function assertNothingLeft(): Promise<void> {
        if (kind === 's3') {
          assert.deepEqual(await pendingUploads(bucket), [], 'no incomplete multipart upload left');
          assert.deepEqual(await listKeys(bucket), [], 'no object left');
        } else {
          assert.deepEqual(await localUploadIds(t.server.ctx), [], 'no part files left');
        }
      }

      async function assertFailed(jobId: string, siteId: string, pattern: RegExp): Promise<void> {
        const job = await t.server.ctx.repos.jobs.get(jobId);
        assert.equal(job?.state, 'failed');
        assert.match(job?.error ?? '', pattern);
        const status = (await t.api('GET', `/api/v1/sites/${siteId}/backup/status`)).body;
        assert.equal(status.status, 'failed');
        assert.match(status.error, pattern);
      }

      it('hands out only the part URLs that fit, each bound to its size, and fails the job past the limit', async () => {
        const { jobId, siteId, base } = await startedJob(0);
        const noSize = await agent(`${base}/parts`, { part_numbers: [1] });
        assert.equal(noSize.status, 400);
        assert.match(noSize.body.error.message, /part_size is required: job \S+ may upload at most 1048576 bytes/);

        const half = 512 * KiB;
        const urls = await agent(`${base}/parts`, { part_numbers: [1, 2, 3], part_size: half });
        assert.equal(urls.status, 200, JSON.stringify(urls.body));
        assert.deepEqual(Object.keys(urls.body.urls).sort(), ['1', '2'], 'two parts of 512 KiB fit in 1 MiB');
        assert.equal((await put(urls.body.urls['1'], half)).status, 200);
        // A body bigger than the URL was signed for is refused: by S3's signature check, by our part receiver.
        const over = await put(urls.body.urls['2'], half + 1);
        assert.equal(over.status, kind === 's3' ? 403 : 413, over.text.slice(0, 200));
        if (kind === 'local') {
          assert.match(over.text, /Part 2 may hold at most 524288 bytes, the size its URL was signed for/);
          await assertFailed(jobId, siteId, /Part 2 may hold at most 524288 bytes/);
          await assertNothingLeft();
          return;
        }
        const third = await agent(`${base}/parts`, { part_numbers: [3], part_size: half });
        assert.equal(third.status, 413);
        assert.equal(third.body.error.code, 'upload_limit');
        const why = /part 3 of 524288 bytes would take job \S+ past its limit of 1048576 bytes \(site \S+'s remaining quota of 0 bytes plus a margin of 1048576 bytes\)/;
        assert.match(third.body.error.message, why);
        await assertFailed(jobId, siteId, why);
        await assertNothingLeft();
        // The agent hears that the job is no longer its own.
        assert.equal((await agent(`${base}/parts`, { part_numbers: [2], part_size: half })).status, 409);
      });

      it('refuses at completion an archive bigger than the limit: the object is removed and the job fails', async () => {
        const { jobId, siteId, base } = await startedJob(0);
        const size = 4000;
        const urls = await agent(`${base}/parts`, { part_numbers: [1], part_size: size });
        const body = randomBytes(size);
        const res = await fetch(urls.body.urls['1'], { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
        assert.equal(res.status, 200);
        const etag = res.headers.get('etag') ?? '';
        await res.text();
        // The limit shrank meanwhile (here the margin; in life another backup used the quota up).
        t.server.ctx.config.uploadMarginBytes = 1000;
        try {
          const done = await agent(`${base}/complete`, { parts: [{ part_number: 1, etag }], size, sha256: createHash('sha256').update(body).digest('hex') });
          assert.equal(done.status, 413, JSON.stringify(done.body));
          const why = /the archive holds 4000 bytes, more than job \S+'s limit of 1000 bytes \(site \S+'s remaining quota of 0 bytes plus a margin of 1000 bytes\); the object was removed/;
          assert.match(done.body.error.message, why);
          await assertFailed(jobId, siteId, why);
          await assertNothingLeft();
        } finally {
          t.server.ctx.config.uploadMarginBytes = MARGIN;
        }
      });

      it('lets an upload within the limit through (the node quota counts too)', async () => {
        await t.server.ctx.repos.nodes.update(f.nodeA, { quotaBytes: 10 * MiB });
        const { base, jobId } = await startedJob(null);
        const sizes = [5 * MiB, 1234];
        const parts: { part_number: number; etag: string }[] = [];
        const hash = createHash('sha256');
        for (const [i, size] of sizes.entries()) {
          const urls = await agent(`${base}/parts`, { part_numbers: [i + 1], part_size: size });
          assert.equal(urls.status, 200, JSON.stringify(urls.body));
          const body = randomBytes(size);
          hash.update(body);
          const res = await fetch(urls.body.urls[String(i + 1)], { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
          assert.equal(res.status, 200);
          parts.push({ part_number: i + 1, etag: res.headers.get('etag') ?? '' });
          await res.text();
        }
        const done = await agent(`${base}/complete`, { parts, size: sizes[0]! + sizes[1]!, sha256: hash.digest('hex') });
        assert.equal(done.status, 200, JSON.stringify(done.body));
        assert.equal((await agent(`/api/v1/agent/jobs/${jobId}/finish`, { status: 'completed', stage: null, error: null })).status, 200);
        const left = await t.server.ctx.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM job_upload_parts WHERE job_id = ?', [jobId]);
        assert.equal(Number(left?.n), 0, 'the signed part sizes go with the job');
        // 5 MiB + 1234 bytes of a 10 MiB node quota are used: under 5 MiB left plus 1 MiB margin is the next job's limit.
        const next = await startedJob(null);
        const tooMany = await agent(`${next.base}/parts`, { part_numbers: [1], part_size: 6 * MiB });
        assert.equal(tooMany.status, 413);
        assert.match(tooMany.body.error.message, /node a\.example\.com's remaining quota of \d+ bytes plus a margin of 1048576 bytes/);
        await t.server.ctx.repos.nodes.update(f.nodeA, { quotaBytes: null });
      });
    });
  }
}
