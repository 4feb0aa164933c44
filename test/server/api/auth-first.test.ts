import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import { DIALECTS, startTestServer, type TestServer } from '../../helpers/server.ts';

// Who calls is checked before what they send: a signed-in route answers 401 to a request without
// a valid token whatever its path parameters, query or body (even one that is not JSON, or too
// large), and 403 to an agent on a users' route. A known path asked with a method it does not
// take is 405 with Allow; a path no route has stays 404. Both keep the { error: { code, message } } body.

const JSON_HEADERS = { 'content-type': 'application/json' };

for (const dialect of DIALECTS) {
  describe(`authentication before validation, 405 with Allow (${dialect})`, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer(dialect);
    });
    after(() => t.close());

    it('answers 401 to a request without a valid token, whatever its parameters, query or body', async () => {
      const cases: [string, string, { body?: unknown; raw?: string; headers?: Record<string, string> }][] = [
        ['GET', '/api/v1/sites/not-a-uuid', {}],
        ['GET', '/api/v1/sites?limit=lots&unknown=1', {}],
        ['POST', '/api/v1/sites', { body: { node_id: 5, extra: true } }],
        ['POST', '/api/v1/sites', { raw: '{not json', headers: JSON_HEADERS }],
        ['POST', '/api/v1/sites', { raw: 'x'.repeat(2 << 20), headers: JSON_HEADERS }],
        ['PATCH', '/api/v1/users/nope', { body: {} }],
        ['POST', '/api/v1/storage-providers', { body: { name: 'x', type: 'ftp' } }],
        ['POST', '/api/v1/agent/jobs/x/progress', { body: { progress: 'lots' } }],
      ];
      for (const token of [null, 'not a token !!', 'wpb_s_' + 'A'.repeat(43), 'wpb_n_' + 'A'.repeat(43)]) {
        for (const [method, path, o] of cases) {
          const res = await t.api(method, path, { ...o, token });
          assert.equal(res.status, 401, `${method} ${path} with token ${String(token).slice(0, 8)}: ${JSON.stringify(res.body)}`);
          assert.equal(res.body.error.code, 'unauthorized');
        }
      }
    });

    it('answers 403 to an agent on a users\' route before looking at its body', async () => {
      const r = t.server.ctx.repos;
      const key = generateToken('node');
      await r.nodes.create({ hostname: 'auth-first.example.com', status: 'active', nodeKeyHash: hashToken(key) });
      const res = await t.api('POST', '/api/v1/sites', { body: { wrong: true }, token: key });
      assert.equal(res.status, 403);
      const agentRoute = await t.api('POST', '/api/v1/agent/jobs/x/progress', { raw: '{', headers: JSON_HEADERS });
      assert.equal(agentRoute.status, 403, JSON.stringify(agentRoute.body));
    });

    it('still validates the requests of a signed-in caller (400)', async () => {
      assert.equal((await t.api('GET', '/api/v1/sites/not-a-uuid')).status, 400);
      assert.equal((await t.api('POST', '/api/v1/sites', { raw: '{not json', headers: JSON_HEADERS })).status, 400);
    });

    it('answers 405 with Allow to a method a known path does not take, and 404 to an unknown path', async () => {
      const put = await t.api('PUT', '/api/v1/sites', { body: { x: 1 }, token: null });
      assert.equal(put.status, 405);
      assert.equal(put.headers.get('allow'), 'GET, HEAD, POST');
      assert.equal(put.body.error.code, 'method_not_allowed');
      assert.match(put.body.error.message, /PUT is not supported on \/api\/v1\/sites; it takes GET, HEAD, POST/);
      // A path with parameters, and a body that is not even JSON: still 405, the body is never read.
      const site = await t.api('POST', '/api/v1/sites/3f1b2c3d-1111-4222-8333-444455556666', { raw: '{', headers: JSON_HEADERS });
      assert.equal(site.status, 405);
      assert.equal(site.headers.get('allow'), 'DELETE, GET, HEAD, PATCH');
      const unknown = await t.api('PUT', '/api/v1/nothing-here');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error.code, 'not_found');
      assert.equal(unknown.headers.get('allow'), null);
    });
  });
}
