import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { storageForJob } from '../../../src/server/agent-uploads.ts';
import type { StorageProviderRow } from '../../../src/server/db/storage-providers.ts';
import { makeBucket, removeBucket } from '../../helpers/s3.ts';
import { DIALECTS, startTestServer, type TestServer } from '../../helpers/server.ts';
import { services } from '../../helpers/services.ts';

// An agent's upload and a user's download of the same object reach the bucket through the
// same provider row: both must address it alike (host, path style, prefix), or a backup is
// stored where its download link does not look. The URLs are signed locally, so a provider
// whose endpoint does not exist shows the addressing without a network call; MinIO then
// carries a real object up through the part URLs and down through the download link.

const KEY = 'node-1/site-1/site_20260101_000000.tar.zst';

/** Host and path of a signed URL: where it sends the request, without the signature. */
function target(url: string): string {
  const u = new URL(url);
  return `${u.host}${u.pathname}`;
}

for (const dialect of DIALECTS) {
  describe(`Storage addressing from one provider row (${dialect})`, () => {
    let t: TestServer;
    let bucket: string;

    before(async () => {
      t = await startTestServer(dialect);
      bucket = await makeBucket();
    });
    after(async () => {
      await t.close();
      await removeBucket(bucket);
    });

    async function provider(o: { endpoint: string; bucket: string; pathStyle: boolean; prefix: string; region?: string }): Promise<StorageProviderRow> {
      const m = services().minio;
      return t.server.ctx.repos.storageProviders.create({
        name: `p-${Math.random().toString(36).slice(2)}`, type: 's3', endpoint: o.endpoint, bucket: o.bucket, region: o.region ?? m.region, pathStyle: o.pathStyle, prefix: o.prefix,
        credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
      });
    }

    async function uploadAndDownloadUrls(p: StorageProviderRow): Promise<{ part: string; download: string }> {
      const up = await storageForJob(t.server.ctx, { storageId: p.id });
      try {
        const urls = await up.multipart.presignParts(KEY, 'an-upload-id', [1], 600, 1024);
        const { storage } = await t.server.ctx.storage.require(p.id);
        return { part: urls['1'] ?? '', download: await storage.presignGet(KEY, 600) };
      } finally {
        up.close();
      }
    }

    for (const pathStyle of [false, true]) {
      it(`a part URL and a download URL address the bucket alike (path_style ${pathStyle}, custom endpoint)`, async () => {
        const p = await provider({ endpoint: 'http://s3.storage.test:9000', bucket: 'fleet-backups', pathStyle, prefix: 'wp' });
        const { part, download } = await uploadAndDownloadUrls(p);
        assert.equal(target(part), target(download));
        const expected = pathStyle ? `s3.storage.test:9000/fleet-backups/wp/${KEY}` : `fleet-backups.s3.storage.test:9000/wp/${KEY}`;
        assert.equal(target(download), expected, 'the row says how to address the bucket');
      });
    }

    it('an object uploaded through part URLs is what its download link returns (MinIO)', async () => {
      const p = await provider({ endpoint: services().minio.endpoint, bucket, pathStyle: true, prefix: 'pre' });
      const body = Buffer.from(`archive bytes of ${dialect}\n`.repeat(1000));
      const up = await storageForJob(t.server.ctx, { storageId: p.id });
      try {
        const uploadId = await up.multipart.create(KEY);
        const urls = await up.multipart.presignParts(KEY, uploadId, [1], 600, body.length);
        const put = await fetch(urls['1'] ?? '', { method: 'PUT', body });
        assert.equal(put.status, 200, await put.text());
        const sha256 = createHash('sha256').update(body).digest('hex');
        await up.multipart.complete(KEY, uploadId, [{ partNumber: 1, etag: put.headers.get('etag') ?? '' }], { size: body.length, sha256 });
      } finally {
        up.close();
      }
      const { storage } = await t.server.ctx.storage.require(p.id);
      const got = await fetch(await storage.presignGet(KEY, 600));
      assert.equal(got.status, 200);
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), body);
    });
  });
}
