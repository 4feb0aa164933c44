import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestServer, TEST_PASSWORD, twoNodeFleet, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';

// What the original system's clients send and read, beside wpbackup's own shapes: sign-in by
// username with access_token back, success/message/cleanup/download_url, a top-level detail on
// the errors of the routes they call, and a JSON content type with no body. Every addition is
// in the OpenAPI document with its statuses; wpbackup's own fields and other routes are as before.
// (test/integration/original-scripts.test.ts runs the scripts' requests end to end.)

const ORIGINAL_ROUTES: [string, string, string[]][] = [
  ['/api/v1/auth/login', 'post', ['200', '400', '401', '403', '413', '415', '429']],
  ['/api/v1/sites/{id}', 'get', ['200', '400', '401', '403', '404']],
  ['/api/v1/sites/{id}/backup/start', 'post', ['202', '400', '401', '403', '404', '409', '413', '415', '422']],
  ['/api/v1/sites/{id}/backup/status', 'get', ['200', '400', '401', '403', '404']],
  ['/api/v1/daemon/backup/reset/{site_id}', 'post', ['200', '400', '401', '403', '404', '413', '415']],
  ['/api/v1/backups/backups/{id}/download', 'get', ['200', '400', '401', '403', '404', '409']],
];

for (const dialect of DIALECTS) {
  describe(`the original system's request and response shapes (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    let root: string;

    before(async () => {
      t = await startTestServer(dialect);
      f = await twoNodeFleet(t);
      root = mkdtempSync(join(tmpdir(), 'wpb-orig-'));
      await t.server.ctx.repos.storageProviders.create({ name: 'local', type: 'local', rootPath: root, isDefault: true });
    });
    after(async () => {
      await t.close();
      rmSync(root, { recursive: true, force: true });
    });

    const login = (body: unknown) => t.api('POST', '/api/v1/auth/login', { body, token: null });

    it('signs in with username and password and returns the token as access_token too; email still works', async () => {
      const res = await login({ username: f.siteAdmin.email, password: TEST_PASSWORD });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.match(res.body.token, /^wpb_s_/);
      assert.equal(res.body.access_token, res.body.token);
      assert.equal(res.body.token_type, 'bearer');
      assert.ok(Date.parse(res.body.expires_at) > Date.now());
      assert.equal((await t.api('GET', '/api/v1/auth/me', { token: res.body.access_token })).body.email, f.siteAdmin.email);
      const byEmail = await login({ email: f.siteAdmin.email, password: TEST_PASSWORD });
      assert.equal(byEmail.status, 200);
      assert.equal(byEmail.body.access_token, byEmail.body.token);

      const wrong = await login({ username: f.siteAdmin.email, password: 'not it' });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.detail, wrong.body.error.message, 'the error also as detail');
      for (const body of [{ password: TEST_PASSWORD }, { email: f.siteAdmin.email, username: f.siteAdmin.email, password: TEST_PASSWORD }, { username: 42, password: 'x' }]) {
        assert.equal((await login(body)).status, 400, JSON.stringify(body));
      }
    });

    it('start answers success: true to a JSON content type with no body, and errors carry detail', async () => {
      const site = (await t.server.ctx.repos.sites.create({ nodeId: f.nodeA, name: 'orig.example.com', wpPath: '/var/www/orig' })).id;
      const started = await t.api('POST', `/api/v1/sites/${site}/backup/start`, { raw: '', headers: { 'content-type': 'application/json' } });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      assert.equal(started.body.success, true);
      assert.equal(started.body.site_id, site);
      assert.equal(started.body.state, 'queued');
      const again = await t.api('POST', `/api/v1/sites/${site}/backup/start`, { raw: '', headers: { 'content-type': 'application/json' } });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'conflict');
      assert.equal(again.body.detail, again.body.error.message);
      assert.equal(again.body.success, undefined);
      const foreign = await t.api('POST', `/api/v1/sites/${f.siteB}/backup/start`, { token: f.nodeAdmin.token });
      assert.equal(foreign.status, 403);
      assert.equal(foreign.body.detail, foreign.body.error.message);

      // The status's message is its stage_detail; reset answers success and the clean-up report.
      const repos = t.server.ctx.repos;
      const job = await repos.jobs.claimNext(f.nodeA, 600_000);
      assert.ok(job);
      assert.equal((await t.api('POST', `/api/v1/agent/jobs/${job.id}/progress`, { token: f.keyA, body: { status: 'running', progress: 7, stage: 'backup_db', stage_detail: 'Dumping database wp (1.0 MB)', error: null } })).status, 200);
      const status = await t.api('GET', `/api/v1/sites/${site}/backup/status`);
      assert.equal(status.status, 200);
      assert.deepEqual([status.body.status, status.body.progress, status.body.stage, status.body.stage_detail, status.body.message, status.body.error], ['running', 7, 'backup_db', 'Dumping database wp (1.0 MB)', 'Dumping database wp (1.0 MB)', null]);
      assert.equal((await t.api('GET', `/api/v1/sites/${site}`)).body.backup.message, undefined, "the site body's backup status is wpbackup's own shape");

      const reset = await t.api('POST', `/api/v1/daemon/backup/reset/${site}`);
      assert.equal(reset.status, 200, JSON.stringify(reset.body));
      assert.equal(reset.body.success, true);
      assert.deepEqual(reset.body.cleanup, { dirs_removed: 0, space_freed_mb: 0, pending: true });
      assert.equal(reset.body.status.status, 'idle');
      assert.deepEqual(reset.body.cancelled_job_ids, [job.id]);
      assert.match(reset.body.reset_job_id, /^[0-9a-f-]{36}$/);
      const unknown = await t.api('POST', '/api/v1/daemon/backup/reset/00000000-0000-4000-8000-000000000000');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.detail, unknown.body.error.message);
    });

    it('the download link comes as download_url too', async () => {
      const repos = t.server.ctx.repos;
      const providerId = (await repos.storageProviders.list()).find((p) => p.name === 'local')?.id ?? '';
      const b = await repos.backups.create({ siteId: f.siteA, storageId: providerId, key: 'orig/a.tar.zst', filename: 'a.tar.zst' });
      await repos.backups.complete(b.id, { size: 1, sha256: 'c'.repeat(64) });
      const dl = await t.api('GET', `/api/v1/backups/backups/${b.id}/download`);
      assert.equal(dl.status, 200, JSON.stringify(dl.body));
      assert.equal(dl.body.download_url, dl.body.url);
      assert.equal(dl.body.expires_in_seconds, 3600);
      assert.equal(dl.body.sha256, 'c'.repeat(64));
    });

    it('other routes keep their shapes: no detail on their errors, and an empty JSON body where one is needed is still 400', async () => {
      const bad = await t.api('POST', '/api/v1/sites', { body: { name: 'x' } });
      assert.equal(bad.status, 400);
      assert.deepEqual(Object.keys(bad.body), ['error']);
      const empty = await t.api('POST', '/api/v1/sites', { raw: '', headers: { 'content-type': 'application/json' } });
      assert.equal(empty.status, 400, JSON.stringify(empty.body));
      const notJson = await t.api('POST', `/api/v1/sites/${f.siteA}/backup/start`, { raw: '{', headers: { 'content-type': 'application/json' } });
      assert.equal(notJson.status, 400);
      const poisoned = await t.api('POST', '/api/v1/auth/login', { raw: '{"__proto__":{"x":1},"email":"a@b.c","password":"p"}', headers: { 'content-type': 'application/json' }, token: null });
      assert.equal(poisoned.status, 400);
    });

    it('documents each addition with its statuses', async () => {
      const doc = (await t.api('GET', '/api/openapi.json', { token: null })).body;
      for (const [path, method, statuses] of ORIGINAL_ROUTES) {
        const op = doc.paths[path]?.[method];
        assert.ok(op, `${method} ${path} is documented`);
        assert.deepEqual(Object.keys(op.responses).sort(), statuses, `${method} ${path}`);
        for (const s of statuses.filter((x) => x.startsWith('4'))) assert.ok(op.responses[s].content['application/json'].schema.properties.detail, `${method} ${path} ${s} documents detail`);
      }
      const login = doc.paths['/api/v1/auth/login'].post;
      assert.ok(login.requestBody.content['application/json'].schema.properties.username);
      assert.ok(login.responses['200'].content['application/json'].schema.properties.access_token);
      const fields = (path: string, method: string, status: string): string[] => Object.keys(doc.paths[path][method].responses[status].content['application/json'].schema.properties);
      assert.ok(fields('/api/v1/sites/{id}/backup/start', 'post', '202').includes('success'));
      assert.ok(fields('/api/v1/sites/{id}/backup/status', 'get', '200').includes('message'));
      assert.ok(fields('/api/v1/daemon/backup/reset/{site_id}', 'post', '200').includes('cleanup'));
      assert.ok(fields('/api/v1/backups/backups/{id}/download', 'get', '200').includes('download_url'));
    });
  });
}
