import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestServer, type TestServer } from '../../helpers/server.ts';

for (const dialect of DIALECTS) {
  describe(`API core (${dialect})`, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer(dialect);
    });
    after(() => t.close());

    it('answers health, the OpenAPI document and the docs page without a token', async () => {
      assert.deepEqual((await t.api('GET', '/healthz', { token: null })).body.database, dialect);
      const doc = await t.api('GET', '/api/openapi.json', { token: null });
      assert.equal(doc.body.openapi, '3.0.3');
      assert.ok(doc.body.paths['/api/v1/auth/login']);
      assert.equal((await t.api('GET', '/api/docs/', { token: null })).status, 200);
    });

    it('signs in, and refuses wrong passwords and malformed bodies with 4xx', async () => {
      const ok = await t.api('POST', '/api/v1/auth/login', { body: { email: 'admin@example.com', password: 'correct horse battery staple 42' }, token: null });
      assert.equal(ok.status, 200);
      assert.match(ok.body.token, /^wpb_s_/);
      assert.ok(Date.parse(ok.body.expires_at) > Date.now());
      assert.equal((await t.api('POST', '/api/v1/auth/login', { body: { email: 'admin@example.com', password: 'nope' }, token: null })).status, 401);
      assert.equal((await t.api('POST', '/api/v1/auth/login', { body: { email: 42 }, token: null })).status, 400);
      assert.equal((await t.api('POST', '/api/v1/auth/login', { raw: '{not json', headers: { 'content-type': 'application/json' }, token: null })).status, 400);
      assert.equal((await t.api('POST', '/api/v1/auth/login', { raw: 'x'.repeat(2 << 20), headers: { 'content-type': 'application/json' }, token: null })).status, 413);
      const notFound = await t.api('GET', '/api/v1/nope');
      assert.equal(notFound.status, 404);
      assert.equal(notFound.body.error.code, 'not_found');
    });

    it('rate-limits failed sign-ins', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await t.api('POST', '/api/v1/auth/login', { body: { email: 'victim@example.com', password: 'wrong' }, token: null })).status);
      assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
      assert.equal(statuses[6], 429);
    });
  });
}
