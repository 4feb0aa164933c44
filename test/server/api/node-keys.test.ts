import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import { DIALECTS, startTestServer, twoNodeFleet, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';

// Node keys after joining: rotation (the agent fetches its next key once with its current one; the
// old key works until the new one is used) and revocation (at once; jobs fail; back with a re-join
// code bound to the node, which keeps its id).

for (const dialect of DIALECTS) {
  describe(`node key rotation and revocation (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    let root: string;
    before(async () => {
      t = await startTestServer(dialect, { pollWaitMs: 50, leaseMs: 600_000 });
      f = await twoNodeFleet(t);
      root = mkdtempSync(join(tmpdir(), 'wpb-keys-'));
      await t.server.ctx.repos.storageProviders.create({ name: 'local', type: 'local', rootPath: root, isDefault: true });
    });
    after(async () => {
      await t.close();
      rmSync(root, { recursive: true, force: true });
    });

    const r = (): TestServer['server']['ctx']['repos'] => t.server.ctx.repos;
    const keyedNode = async (): Promise<{ id: string; key: string }> => {
      const key = generateToken('node');
      const id = (await r().nodes.create({ hostname: `k-${Math.random().toString(16).slice(2)}.example.com`, status: 'active', nodeKeyHash: hashToken(key) })).id;
      return { id, key };
    };
    const poll = (key: string): ReturnType<TestServer['api']> => t.api('POST', '/api/v1/agent/poll', { token: key, body: {} });

    it('rotates: the poll says so, the agent fetches a key once, the old key works until the new one is used', async () => {
      const n = await keyedNode();
      assert.equal((await poll(n.key)).headers.get('x-wpbackup-rotate-key'), null);
      assert.equal((await t.api('POST', '/api/v1/agent/rotate-key', { token: n.key, body: {} })).status, 409, 'no rotation asked for');
      const asked = await t.api('POST', `/api/v1/nodes/${n.id}/rotate-key`);
      assert.equal(asked.status, 202, JSON.stringify(asked.body));
      assert.ok(asked.body.key_rotation_requested_at);
      assert.equal(JSON.stringify(asked.body).includes('wpb_n_'), false, 'the admin never sees a key');
      assert.equal((await poll(n.key)).headers.get('x-wpbackup-rotate-key'), '1');
      // A handover whose reply was lost: the agent asks again and the first key handed out is void.
      const lost = (await t.api('POST', '/api/v1/agent/rotate-key', { token: n.key, body: {} })).body.node_key as string;
      const fetched = await t.api('POST', '/api/v1/agent/rotate-key', { token: n.key, body: {} });
      assert.equal(fetched.status, 200);
      const next = fetched.body.node_key as string;
      assert.match(next, /^wpb_n_[A-Za-z0-9_-]{43}$/);
      assert.notEqual(next, lost);
      assert.equal((await poll(n.key)).status, 200, 'the old key works until the new one is used');
      assert.equal((await poll(lost)).status, 401);
      const first = await poll(next);
      assert.equal(first.status, 200);
      assert.equal(first.headers.get('x-wpbackup-rotate-key'), null);
      const refused = await poll(n.key);
      assert.equal(refused.status, 401);
      assert.match(refused.body.error.message, /re-join code/);
      const node = await t.api('GET', `/api/v1/nodes/${n.id}`);
      assert.equal(node.body.key_rotation_requested_at, null);
      assert.equal(node.body.has_key, true);
      const actions = (await r().audit.list({ limit: 50 })).filter((e) => e.targetId === n.id).map((e) => e.action);
      assert.ok(actions.includes('node.key.rotate') && actions.includes('node.key.handover'), actions.join());
    });

    it('revokes at once: 401 saying to re-join, the held job fails; a re-join code keeps the node id', async () => {
      const n = await keyedNode();
      const site = await r().sites.create({ nodeId: n.id, name: 'revoked.example.com', wpPath: '/var/www/revoked' });
      assert.equal((await t.api('POST', `/api/v1/sites/${site.id}/backup/start`)).status, 202);
      const job = (await poll(n.key)).body.job;
      assert.ok(job, 'the node holds a job');
      const progress = { status: 'running', progress: 10, stage: 'backup_db', stage_detail: 'dumping', error: null };
      assert.equal((await t.api('POST', `/api/v1/agent/jobs/${job.job_id}/progress`, { token: n.key, body: progress })).status, 200);
      assert.equal((await t.api('POST', `/api/v1/agent/jobs/${job.job_id}/upload/start`, { token: n.key, body: {} })).status, 200);
      const revoked = await t.api('POST', `/api/v1/nodes/${n.id}/revoke-key`);
      assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
      assert.equal(revoked.body.node.has_key, false);
      assert.equal(revoked.body.jobs_failed, 1);
      const refused = await t.api('POST', `/api/v1/agent/jobs/${job.job_id}/progress`, { token: n.key, body: progress });
      assert.equal(refused.status, 401);
      assert.match(refused.body.error.message, /revoked.*re-join code/);
      assert.equal((await r().jobs.get(job.job_id))?.state, 'failed');
      const expiry = (await r().audit.list({ limit: 50 })).find((e) => e.action === 'job.expired' && e.targetId === job.job_id);
      assert.equal((expiry?.detail as { upload_aborted?: boolean } | undefined)?.upload_aborted, true, 'the upload it had started is aborted');
      assert.equal((await t.api('GET', `/api/v1/sites/${site.id}/backup/status`)).body.status, 'failed');
      assert.equal((await t.api('POST', `/api/v1/nodes/${n.id}/rotate-key`)).status, 409, 'nothing left to rotate');
      assert.equal((await t.api('POST', `/api/v1/nodes/${n.id}/revoke-key`)).status, 409);
      // Back with a code bound to the node: same id, a new key; the old key stays refused.
      const code = await t.api('POST', '/api/v1/nodes/join-codes', { body: { node_id: n.id } });
      assert.equal(code.status, 201);
      const joined = await t.api('POST', '/api/v1/agent/join', { token: null, body: { code: code.body.code, hostname: 'whatever.example.com' } });
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      assert.equal(joined.body.node_id, n.id);
      assert.equal((await poll(joined.body.node_key)).status, 200);
      assert.equal((await poll(n.key)).status, 401);
      assert.equal((await t.api('POST', '/api/v1/agent/join', { token: null, body: { code: code.body.code, hostname: 'again.example.com' } })).status, 403, 'a re-join code works once');
      assert.equal((await r().nodes.get(n.id))?.hostname.startsWith('k-'), true, 'the node keeps its name');
      await r().jobs.resetSite(site.id);
    });

    it('a re-join code for an unknown node is 404, and only a super_admin mints one', async () => {
      assert.equal((await t.api('POST', '/api/v1/nodes/join-codes', { body: { node_id: '00000000-0000-4000-8000-000000000000' } })).status, 404);
      assert.equal((await t.api('POST', '/api/v1/nodes/join-codes', { token: f.nodeAdmin.token, body: { node_id: f.nodeA } })).status, 403);
    });

    it("lets the node's node_admin rotate and revoke its key, and no one else's", async () => {
      const n = await keyedNode();
      await r().users.assignNode(f.nodeAdmin.id, n.id);
      assert.equal((await t.api('POST', `/api/v1/nodes/${n.id}/rotate-key`, { token: f.nodeAdmin.token })).status, 202);
      assert.equal((await t.api('POST', `/api/v1/nodes/${f.nodeB}/rotate-key`, { token: f.nodeAdmin.token })).status, 403);
      assert.equal((await t.api('POST', `/api/v1/nodes/${f.nodeB}/revoke-key`, { token: f.nodeAdmin.token })).status, 403);
      assert.equal((await t.api('POST', `/api/v1/nodes/${n.id}/revoke-key`, { token: f.siteAdmin.token })).status, 403);
      assert.equal((await t.api('POST', `/api/v1/nodes/${n.id}/revoke-key`, { token: f.nodeAdmin.token })).status, 200);
      assert.equal((await poll(n.key)).status, 401);
    });
    it('documents the new routes with their error statuses in the OpenAPI document', async () => {
      const paths = (await t.api('GET', '/api/openapi.json')).body.paths;
      const statuses = (p: string): string[] => Object.keys(paths[p].post.responses ?? {}).sort();
      assert.deepEqual(statuses('/api/v1/nodes/{id}/rotate-key'), ['202', '400', '401', '403', '404', '409', '413', '415']);
      assert.deepEqual(statuses('/api/v1/nodes/{id}/revoke-key'), ['200', '400', '401', '403', '404', '409', '413', '415']);
      assert.deepEqual(statuses('/api/v1/agent/rotate-key'), ['200', '400', '401', '403', '409', '413', '415']);
    });
  });
}
