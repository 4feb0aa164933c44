import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { streamAccessTiming } from '../../../src/server/stream-access.ts';
import { openEvents } from '../../helpers/sse.ts';
import { DIALECTS, startTestServer, twoNodeFleet, TEST_PASSWORD, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';

// Issue 7, "Login and sessions": a password change, a disabled user or a removed assignment ends
// that user's sessions, API tokens and open event streams within seconds.

const NEW_PASSWORD = 'indigo lantern harvest 93';

for (const dialect of DIALECTS) {
  describe(`ending access (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    const saved = streamAccessTiming.recheckMs;
    before(async () => {
      t = await startTestServer(dialect);
      f = await twoNodeFleet(t);
    });
    after(async () => {
      streamAccessTiming.recheckMs = saved;
      await t.close();
    });

    const apiToken = async (token: string): Promise<string> => {
      const res = await t.api('POST', '/api/v1/tokens', { token, body: { name: 'script' } });
      assert.equal(res.status, 201);
      return res.body.token as string;
    };
    const works = async (token: string): Promise<number> => (await t.api('GET', '/api/v1/auth/me', { token })).status;
    const login = (email: string, password: string): ReturnType<TestServer['api']> => t.api('POST', '/api/v1/auth/login', { token: null, body: { email, password } });

    it('an admin setting a password ends all that user’s sessions and API tokens; the admin stays signed in', async () => {
      const u = await t.userWithRole('site_admin');
      const second = (await login(u.email, TEST_PASSWORD)).body.token as string;
      const script = await apiToken(u.token);
      const res = await t.api('PATCH', `/api/v1/users/${u.id}`, { body: { password: NEW_PASSWORD } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      for (const tok of [u.token, second, script]) assert.equal(await works(tok), 401);
      assert.equal(await works(t.adminToken), 200);
      assert.equal((await login(u.email, NEW_PASSWORD)).status, 200);
    });

    it('changing your own password needs the current one and ends your other sessions and API tokens, not this one', async () => {
      const u = await t.userWithRole('node_admin');
      const other = (await login(u.email, TEST_PASSWORD)).body.token as string;
      const script = await apiToken(u.token);
      const wrong = await t.api('POST', '/api/v1/auth/password', { token: u.token, body: { current_password: 'not it', new_password: NEW_PASSWORD } });
      assert.equal(wrong.status, 403);
      assert.match(wrong.body.error.message, /current password is wrong/);
      assert.equal(await works(other), 200, 'a refused change ends nothing');
      const weak = await t.api('POST', '/api/v1/auth/password', { token: u.token, body: { current_password: TEST_PASSWORD, new_password: 'short' } });
      assert.equal(weak.status, 400);
      const ok = await t.api('POST', '/api/v1/auth/password', { token: u.token, body: { current_password: TEST_PASSWORD, new_password: NEW_PASSWORD } });
      assert.equal(ok.status, 204, JSON.stringify(ok.body));
      assert.equal(await works(other), 401);
      assert.equal(await works(script), 401);
      assert.equal(await works(u.token), 200);
      assert.equal((await login(u.email, TEST_PASSWORD)).status, 401);
      assert.equal((await login(u.email, NEW_PASSWORD)).status, 200);
    });

    it('guessing the current password is throttled like sign-in (429 with Retry-After)', async () => {
      const u = await t.userWithRole('site_admin');
      const guess = (): ReturnType<TestServer['api']> => t.api('POST', '/api/v1/auth/password', { token: u.token, body: { current_password: 'a guess', new_password: NEW_PASSWORD } });
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await guess()).status);
      assert.deepEqual(statuses, [403, 403, 403, 403, 403, 429]);
      const limited = await guess();
      assert.equal(limited.status, 429);
      assert.ok(Number(limited.headers.get('retry-after')) > 0);
      assert.equal((await login(u.email, TEST_PASSWORD)).status, 429, 'the same count as sign-in');
    });

    it('documents POST /auth/password with its error statuses', async () => {
      const op = (await t.api('GET', '/api/openapi.json')).body.paths['/api/v1/auth/password'].post;
      assert.deepEqual(Object.keys(op.responses).sort(), ['204', '400', '401', '403', '413', '415', '429']);
    });

    it('a disabled user’s tokens stop working and sign-in is refused with 403 until enabled again', async () => {
      const u = await t.userWithRole('site_admin');
      const script = await apiToken(u.token);
      const res = await t.api('PATCH', `/api/v1/users/${u.id}`, { body: { disabled: true } });
      assert.equal(res.status, 200);
      assert.equal(res.body.disabled, true);
      assert.equal(await works(u.token), 401);
      assert.equal(await works(script), 401);
      assert.deepEqual(await t.server.ctx.repos.tokens.listForUser(u.id), [], 'their tokens are deleted');
      const refused = await login(u.email, TEST_PASSWORD);
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error.code, 'user_disabled');
      assert.match(refused.body.error.message, /disabled; ask a super_admin/);
      // A wrong password still says only "wrong", so a guesser learns nothing about the account.
      assert.equal((await login(u.email, 'wrong password')).status, 401);
      assert.equal((await t.api('PATCH', `/api/v1/users/${u.id}`, { body: { disabled: false } })).body.disabled, false);
      assert.equal((await login(u.email, TEST_PASSWORD)).status, 200);
    });

    it('a token kept in the database works no more once its user is disabled (the check is per request)', async () => {
      const u = await t.userWithRole('site_admin');
      assert.equal(await t.server.ctx.repos.users.setDisabled(u.id, true), true);
      assert.equal(await works(u.token), 401);
      await t.server.ctx.repos.users.setDisabled(u.id, false);
      assert.equal(await works(u.token), 200);
    });

    it('refuses to disable yourself, and only a super_admin may disable anyone', async () => {
      const me = await t.server.ctx.repos.users.getByEmail('admin@example.com');
      assert.equal((await t.api('PATCH', `/api/v1/users/${me?.id}`, { body: { disabled: true } })).status, 409);
      assert.equal((await t.api('PATCH', `/api/v1/users/${f.siteAdmin.id}`, { token: f.nodeAdmin.token, body: { disabled: true } })).status, 403);
      assert.equal(await works(t.adminToken), 200);
    });

    it('a disabled super_admin does not count as the one who must remain', async () => {
      const other = await t.userWithRole('super_admin');
      assert.equal((await t.api('PATCH', `/api/v1/users/${other.id}`, { body: { disabled: true } })).status, 200);
      const me = await t.server.ctx.repos.users.getByEmail('admin@example.com');
      const demote = await t.api('PATCH', `/api/v1/users/${me?.id}`, { body: { role: 'site_admin' } });
      assert.equal(demote.status, 409);
      assert.match(demote.body.error.message, /last super_admin/);
      assert.equal((await t.api('DELETE', `/api/v1/users/${other.id}`)).status, 204, 'a disabled super_admin can go');
    });

    describe('open event streams', () => {
      const events = (siteId: string, token: string): ReturnType<typeof openEvents> => openEvents(`${t.url}/api/v1/sites/${siteId}/backup/events`, token);

      it('end at once when a site assignment is removed, and the stream of a site still assigned stays', async () => {
        const u = await t.userWithRole('site_admin');
        const r = t.server.ctx.repos;
        const other = (await r.sites.create({ nodeId: f.nodeA, name: 'kept.example.com', wpPath: '/var/www/kept' })).id;
        await r.users.assignSite(u.id, f.siteA);
        await r.users.assignSite(u.id, other);
        const lost = await events(f.siteA, u.token);
        const kept = await events(other, u.token);
        assert.equal(lost.status, 200);
        await lost.stream.saw('event: status');
        await kept.stream.saw('event: status');
        assert.equal((await t.api('DELETE', `/api/v1/users/${u.id}/sites/${f.siteA}`)).status, 204);
        const text = await lost.stream.ended(5_000);
        assert.match(text, /event: access_ended\ndata: \{"site_id":"[^"]+"\}/);
        assert.equal((await t.api('GET', `/api/v1/sites/${f.siteA}/backup/events`, { token: u.token })).status, 403);
        // The other stream is still open: a status change still reaches it.
        await r.users.assignSite(u.id, f.siteA);
        assert.equal((await t.api('POST', `/api/v1/sites/${other}/backup/start`)).status, 202);
        await kept.stream.saw('"status":"running"');
        kept.stream.cancel();
        await r.jobs.resetSite(other);
      });

      it('end when the node assignment they came through is removed', async () => {
        const u = await t.userWithRole('node_admin');
        await t.server.ctx.repos.users.assignNode(u.id, f.nodeB);
        const s = await events(f.siteB, u.token);
        await s.stream.saw('event: status');
        assert.equal((await t.api('DELETE', `/api/v1/users/${u.id}/nodes/${f.nodeB}`)).status, 204);
        assert.match(await s.stream.ended(5_000), /event: access_ended/);
      });

      it('end when the user is disabled, their password changed, or their token revoked', async () => {
        for (const how of ['disable', 'password', 'revoke'] as const) {
          const u = await t.userWithRole('site_admin');
          await t.server.ctx.repos.users.assignSite(u.id, f.siteA);
          const s = await events(f.siteA, u.token);
          await s.stream.saw('event: status');
          if (how === 'disable') assert.equal((await t.api('PATCH', `/api/v1/users/${u.id}`, { body: { disabled: true } })).status, 200);
          if (how === 'password') assert.equal((await t.api('PATCH', `/api/v1/users/${u.id}`, { body: { password: NEW_PASSWORD } })).status, 200);
          if (how === 'revoke') {
            const mine = (await t.api('GET', '/api/v1/tokens', { token: u.token })).body.tokens.find((x: { current: boolean }) => x.current);
            assert.equal((await t.api('DELETE', `/api/v1/tokens/${mine.id}`)).status, 204);
          }
          assert.match(await s.stream.ended(5_000), /event: access_ended/, how);
        }
      });

      it('end within the re-check period when access changes behind the server’s back (another server, the database)', async () => {
        streamAccessTiming.recheckMs = 200;
        try {
          const u = await t.userWithRole('site_admin');
          const r = t.server.ctx.repos;
          await r.users.assignSite(u.id, f.siteA);
          const s = await events(f.siteA, u.token);
          await s.stream.saw('event: status');
          // Straight to the database, as another server process would: no in-process notice.
          assert.equal(await r.users.unassignSite(u.id, f.siteA), true);
          assert.match(await s.stream.ended(5_000), /event: access_ended/);
          await r.users.assignSite(u.id, f.siteA);
          const s2 = await events(f.siteA, u.token);
          await s2.stream.saw('event: status');
          assert.equal(await r.tokens.revokeForUser(u.id), 1);
          assert.match(await s2.stream.ended(5_000), /event: access_ended/);
        } finally {
          streamAccessTiming.recheckMs = saved;
        }
      });
    });
  });
}
