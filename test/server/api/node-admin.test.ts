import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestServer, twoNodeFleet, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';

// What a node_admin may change on its own node and read of storage settings (issue 7 §4;
// roles.ts nodeChangeRefusal and seesStorageSettings): rename, disable, lower the quota; not
// re-enable a node a super_admin disabled, not raise or remove the quota; storage names and
// types, not paths, endpoints, buckets or access key ids.

for (const dialect of DIALECTS) {
  describe(`node_admin limits (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    before(async () => {
      t = await startTestServer(dialect);
      f = await twoNodeFleet(t);
    });
    after(() => t.close());

    const patchAs = (token: string, body: unknown): ReturnType<TestServer['api']> => t.api('PATCH', `/api/v1/nodes/${f.nodeA}`, { body, token });

    it('may not re-enable a node a super_admin disabled; may re-enable one it disabled itself', async () => {
      assert.equal((await patchAs(t.adminToken, { status: 'disabled' })).status, 200);
      const refused = await patchAs(f.nodeAdmin.token, { status: 'active' });
      assert.equal(refused.status, 403);
      assert.match(refused.body.error.message, /A super_admin disabled this node; only a super_admin may enable it again/);
      assert.equal((await t.server.ctx.repos.nodes.get(f.nodeA))?.status, 'disabled');
      // Disabling again as node_admin does not launder the super_admin's decision.
      assert.equal((await patchAs(f.nodeAdmin.token, { status: 'disabled' })).status, 200);
      assert.equal((await patchAs(f.nodeAdmin.token, { status: 'active' })).status, 403);
      assert.equal((await patchAs(t.adminToken, { status: 'active' })).status, 200);

      assert.equal((await patchAs(f.nodeAdmin.token, { status: 'disabled' })).status, 200);
      const back = await patchAs(f.nodeAdmin.token, { status: 'active' });
      assert.equal(back.status, 200, JSON.stringify(back.body));
      assert.equal(back.body.status, 'active');
    });

    it('may set and lower its quota and rename its node, never raise or remove the quota', async () => {
      assert.equal((await patchAs(f.nodeAdmin.token, { quota_bytes: 5000 })).status, 200, 'setting a quota where there was none only lowers it');
      assert.equal((await patchAs(t.adminToken, { quota_bytes: 1000 })).status, 200);
      const raise = await patchAs(f.nodeAdmin.token, { quota_bytes: 2000 });
      assert.equal(raise.status, 403);
      assert.match(raise.body.error.message, /Only a super_admin may raise a node's quota \(now 1000 bytes\)/);
      const lift = await patchAs(f.nodeAdmin.token, { quota_bytes: null });
      assert.equal(lift.status, 403);
      assert.match(lift.body.error.message, /Only a super_admin may remove a node's quota/);
      const lower = await patchAs(f.nodeAdmin.token, { quota_bytes: 500, hostname: 'a2.example.com' });
      assert.equal(lower.status, 200);
      assert.deepEqual([lower.body.quota_bytes, lower.body.hostname], [500, 'a2.example.com']);
      assert.equal((await patchAs(t.adminToken, { quota_bytes: null })).status, 200, 'a super_admin may');
      // Someone else's node stays out of reach altogether.
      assert.equal((await t.api('PATCH', `/api/v1/nodes/${f.nodeB}`, { body: { hostname: 'x.example.com' }, token: f.nodeAdmin.token })).status, 403);
    });

    it('sees storage providers by name and type only', async () => {
      const secret = 'SECRETsecretSECRET0123456789';
      const created = await t.server.ctx.repos.storageProviders.create({
        name: 'offsite', type: 's3', endpoint: 'https://s3.internal.example.com:9000', bucket: 'fleet-backups', region: 'eu-west-1', prefix: 'wp/',
        credentials: { accessKeyId: 'AKIAEXAMPLEKEY', secretAccessKey: secret },
      });
      for (const path of ['/api/v1/storage-providers', `/api/v1/storage-providers/${created.id}`]) {
        const asNodeAdmin = await t.api('GET', path, { token: f.nodeAdmin.token });
        assert.equal(asNodeAdmin.status, 200);
        const text = JSON.stringify(asNodeAdmin.body);
        for (const hidden of ['s3.internal.example.com', 'fleet-backups', 'eu-west-1', 'AKIAEXAMPLEKEY', secret, 'wp/']) assert.ok(!text.includes(hidden), `${path} shows a node_admin ${hidden}`);
        assert.ok(text.includes('"name":"offsite"') && text.includes('"type":"s3"'), `${path} names the provider and its type`);
        const asSuper = JSON.stringify((await t.api('GET', path)).body);
        assert.ok(asSuper.includes('fleet-backups') && asSuper.includes('AKIAEXAMPLEKEY') && !asSuper.includes(secret), `${path} shows a super_admin the settings, never the secret`);
      }
    });
  });
}
