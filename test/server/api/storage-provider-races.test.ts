import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startHeldS3, type HeldS3 } from '../../helpers/held-s3.ts';
import { DIALECTS, startTestServer, type TestServer } from '../../helpers/server.ts';
import { waitFor } from '../../helpers/wait.ts';

// Storage provider writes check the bucket first (a network call), then write. Two admins
// at once: the bucket check of each is held (held-s3.ts) until both are past their own
// checks of the name and settings, so the write has to find what changed meanwhile.

for (const dialect of DIALECTS) {
  describe(`Storage provider races (${dialect})`, () => {
    let t: TestServer;
    let s3: HeldS3;
    let n = 0;

    before(async () => {
      t = await startTestServer(dialect);
      s3 = await startHeldS3();
    });
    after(async () => {
      await s3.close();
      await t.close();
    });

    const s3Body = (name: string) => ({ name, type: 's3', endpoint: s3.endpoint, bucket: 'first-bucket', access_key_id: 'key-one', secret_access_key: 'secret-one' });

    it('two creates with one name: one is stored, the other gets the 409 that names the name', async () => {
      const name = `race-${++n}`;
      const answers = [t.api('POST', '/api/v1/storage-providers', { body: s3Body(name) }), t.api('POST', '/api/v1/storage-providers', { body: s3Body(name) })];
      await waitFor('both bucket checks to arrive', async () => s3.held.length === 2);
      for (const h of [...s3.held]) h.release();
      const [a, b] = await Promise.all(answers);
      assert.deepEqual([a?.status, b?.status].sort(), [201, 409]);
      const refused = a?.status === 409 ? a : b;
      assert.equal(refused?.body.error.code, 'conflict');
      assert.equal(refused?.body.error.message, `A storage provider named "${name}" already exists`);
      const rows = (await t.server.ctx.repos.storageProviders.list()).filter((p) => p.name === name);
      assert.equal(rows.length, 1);
      const audited = (await t.server.ctx.repos.audit.list({ targetId: rows[0]?.id })).filter((e) => e.action === 'storage.create');
      assert.equal(audited.length, 1, 'one audit entry, for the stored one');
    });

    it('a change checked against settings another admin changed meanwhile is refused, not merged', async () => {
      const created = t.api('POST', '/api/v1/storage-providers', { body: s3Body(`race-${++n}`) });
      await waitFor('the bucket check of the create', async () => s3.held.length === 1);
      s3.held[0]?.release();
      const id = (await created).body.id as string;
      // Admin A moves the provider to another bucket (checked with the old keys); admin B
      // replaces the keys (checked against the old bucket). Each check passes on its own.
      const moveBucket = t.api('PATCH', `/api/v1/storage-providers/${id}`, { body: { bucket: 'second-bucket' } });
      await waitFor("A's bucket check", async () => s3.held.length === 1);
      const newKeys = t.api('PATCH', `/api/v1/storage-providers/${id}`, { body: { access_key_id: 'key-two', secret_access_key: 'secret-two' } });
      await waitFor("B's bucket check", async () => s3.held.length === 2);
      const [checkA, checkB] = [...s3.held];
      assert.match(checkA?.path ?? '', /second-bucket/);
      assert.match(checkB?.path ?? '', /first-bucket/);
      checkB?.release();
      assert.equal((await newKeys).status, 200);
      checkA?.release();
      const a = await moveBucket;
      assert.equal(a.status, 409, JSON.stringify(a.body));
      assert.equal(a.body.error.code, 'conflict');
      assert.match(a.body.error.message, /changed by someone else/);
      const row = await t.server.ctx.repos.storageProviders.get(id);
      assert.equal(row?.bucket, 'first-bucket', 'no bucket that was never checked with the stored keys');
      assert.equal((await t.server.ctx.repos.storageProviders.credentials(id))?.accessKeyId, 'key-two');
    });
  });
}
