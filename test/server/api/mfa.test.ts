import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { base32Decode, totp } from '../../../src/server/auth/totp.ts';
import { startServer } from '../../../src/server/start.ts';
import { DIALECTS, startTestServer, TEST_PASSWORD, type ApiResponse, type TestServer } from '../../helpers/server.ts';
import { TestClock } from '../db/suite.ts';

// TOTP second factor through HTTP on both databases, with a test clock: enrollment, sign-in in two
// steps, codes and recovery codes used once, challenges used once, wrong codes rate-limited,
// disabling and a super_admin's reset, roles that must enroll; and no route hands a token for a
// password alone.

const STEP = 30_000;
const TOKEN_RE = /wpb_[sa]_[A-Za-z0-9_-]{43}/;

interface Enrolled {
  id: string;
  email: string;
  token: string;
  secret: string;
  recovery: string[];
}

for (const dialect of DIALECTS) {
  describe(`MFA (${dialect})`, () => {
    let t: TestServer;
    const clock = new TestClock();
    clock.t = Math.floor(Date.now() / STEP) * STEP + 1000;
    const code = (secret: string): string => totp(base32Decode(secret), clock.t);
    const login = (email: string, password = TEST_PASSWORD): Promise<ApiResponse> => t.api('POST', '/api/v1/auth/login', { body: { email, password }, token: null });
    const second = (challenge: string, c: string): Promise<ApiResponse> => t.api('POST', '/api/v1/auth/login/mfa', { body: { challenge, code: c }, token: null });

    /** A user who enrolled and confirmed; the clock moves past the confirming code's step. */
    async function enrolled(role: 'site_admin' | 'node_admin' | 'super_admin' = 'site_admin'): Promise<Enrolled> {
      const u = await t.userWithRole(role);
      const e = await t.api('POST', '/api/v1/auth/mfa/enroll', { token: u.token });
      assert.equal(e.status, 200, JSON.stringify(e.body));
      const c = await t.api('POST', '/api/v1/auth/mfa/confirm', { token: u.token, body: { code: code(e.body.secret) } });
      assert.equal(c.status, 200, JSON.stringify(c.body));
      clock.advance(STEP);
      return { ...u, secret: e.body.secret, recovery: c.body.recovery_codes };
    }

    before(async () => {
      t = await startTestServer(dialect, { requireMfa: ['node_admin'], now: clock.now });
    });
    after(() => t.close());
    // Every test signs in from 127.0.0.1: each starts with that source's 15-minute window behind it.
    beforeEach(() => {
      clock.advance(16 * 60_000);
    });

    it('enrolls with a secret and otpauth URI, confirms with a code, and hands out 10 recovery codes once', async () => {
      const u = await t.userWithRole('site_admin');
      assert.deepEqual((await t.api('GET', '/api/v1/auth/mfa', { token: u.token })).body, { enabled: false, pending: false, required: false, recovery_codes_left: 0 });
      const e = await t.api('POST', '/api/v1/auth/mfa/enroll', { token: u.token });
      assert.equal(e.status, 200);
      assert.match(e.body.secret, /^[A-Z2-7]{32}$/);
      const uri = new URL(e.body.otpauth_uri);
      assert.equal(uri.protocol + uri.host, 'otpauth:totp');
      assert.equal(uri.searchParams.get('secret'), e.body.secret);
      assert.equal(decodeURIComponent(uri.pathname), `/wpbackup:${u.email}`);
      assert.equal((await t.api('GET', '/api/v1/auth/mfa', { token: u.token })).body.pending, true);
      const wrong = await t.api('POST', '/api/v1/auth/mfa/confirm', { token: u.token, body: { code: code(e.body.secret) === '000000' ? '111111' : '000000' } });
      assert.equal(wrong.status, 422);
      const ok = await t.api('POST', '/api/v1/auth/mfa/confirm', { token: u.token, body: { code: code(e.body.secret) } });
      assert.equal(ok.status, 200);
      const codes = ok.body.recovery_codes as string[];
      assert.equal(codes.length, 10);
      assert.equal(new Set(codes).size, 10);
      for (const c of codes) assert.match(c, /^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/);
      assert.deepEqual((await t.api('GET', '/api/v1/auth/mfa', { token: u.token })).body, { enabled: true, pending: false, required: false, recovery_codes_left: 10 });
      assert.equal((await t.api('POST', '/api/v1/auth/mfa/enroll', { token: u.token })).status, 409, 'no second enrollment over an active one');
      assert.equal((await t.api('POST', '/api/v1/auth/mfa/confirm', { token: u.token, body: { code: code(e.body.secret) } })).status, 409);
      // The database holds neither the secret nor a recovery code in plain.
      const db = t.server.ctx.db;
      const rows = JSON.stringify([
        ...(await db.query('SELECT * FROM user_mfa WHERE user_id = ?', [u.id])),
        ...(await db.query('SELECT * FROM mfa_recovery_codes WHERE user_id = ?', [u.id])),
      ]);
      assert.ok(!rows.includes(e.body.secret), 'the TOTP secret is encrypted');
      for (const c of codes) assert.ok(!rows.includes(c) && !rows.includes(c.replaceAll('-', '')), 'recovery codes are hashed');
      const audit = await t.api('GET', '/api/v1/audit?limit=50');
      assert.ok((audit.body.entries as { action: string; target_id: string }[]).some((a: { action: string; target_id: string }) => a.action === 'user.mfa_enable' && a.target_id === u.id), JSON.stringify(audit.body).slice(0, 300));
    });

    it('a password alone gives a challenge, never a token; the challenge and a code give the session', async () => {
      const u = await enrolled();
      const first = await login(u.email);
      assert.equal(first.status, 200);
      assert.equal(first.body.mfa_required, true);
      assert.equal(first.body.token, undefined);
      assert.doesNotMatch(JSON.stringify(first.body), TOKEN_RE);
      const { challenge } = first.body;
      // The challenge is no bearer token anywhere.
      for (const [m, p] of [['GET', '/api/v1/auth/me'], ['POST', '/api/v1/tokens'], ['GET', '/api/v1/sites']] as const) {
        assert.equal((await t.api(m, p, { token: challenge, body: m === 'POST' ? { name: 'x' } : undefined })).status, 401, `${m} ${p}`);
      }
      assert.equal((await t.api('POST', '/api/v1/auth/login/mfa/enroll', { body: { challenge }, token: null })).status, 401, 'a sign-in challenge cannot start a new enrollment');
      const bad = await second(challenge, code(u.secret) === '123456' ? '654321' : '123456');
      assert.equal(bad.status, 401);
      assert.equal(bad.body.token, undefined);
      const ok = await second(challenge, code(u.secret));
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.match(ok.body.token, /^wpb_s_/);
      assert.equal(ok.body.recovery_codes, undefined);
      assert.equal((await t.api('GET', '/api/v1/auth/me', { token: ok.body.token })).body.email, u.email);
      assert.equal((await second(challenge, code(u.secret))).status, 401, 'a challenge is used once');
    });

    it('a code works once, even on a fresh challenge; the next step’s code works', async () => {
      const u = await enrolled();
      const c = code(u.secret);
      assert.equal((await second((await login(u.email)).body.challenge, c)).status, 200);
      assert.equal((await second((await login(u.email)).body.challenge, c)).status, 401, 'replayed code');
      clock.advance(STEP);
      assert.equal((await second((await login(u.email)).body.challenge, code(u.secret))).status, 200);
    });

    it('a recovery code works once', async () => {
      const u = await enrolled();
      const rc = u.recovery[3] ?? '';
      const ok = await second((await login(u.email)).body.challenge, rc.toUpperCase());
      assert.equal(ok.status, 200);
      assert.equal((await second((await login(u.email)).body.challenge, rc)).status, 401);
      assert.equal((await t.api('GET', '/api/v1/auth/mfa', { token: ok.body.token })).body.recovery_codes_left, 9);
    });

    it('a challenge expires, and dies after 5 wrong codes', async () => {
      const u = await enrolled();
      const old = (await login(u.email)).body.challenge;
      clock.advance(5 * 60_000);
      assert.equal((await second(old, code(u.secret))).status, 401, 'expired');
      const ch = (await login(u.email)).body.challenge;
      for (let i = 0; i < 5; i++) assert.equal((await second(ch, 'aaaa-bbbb-cccc-dddd')).status, 401);
      assert.equal((await second(ch, code(u.secret))).status, 401, 'gone after 5 wrong codes');
    });

    it('wrong codes count toward the limits: 429 with Retry-After, even for the right code after', async () => {
      const u = await enrolled();
      let last: ApiResponse | undefined;
      for (let i = 0; i < 12 && last?.status !== 429; i++) {
        const ch = (await login(u.email)).body.challenge;
        last = await second(ch, '000000' === code(u.secret) ? '111111' : '000000');
      }
      assert.equal(last?.status, 429);
      assert.ok(Number(last?.headers.get('retry-after')) > 0);
      const ch = (await login(u.email)).body.challenge;
      assert.equal((await second(ch, code(u.secret))).status, 429);
    });

    it('disables with a code, after which the password alone signs in', async () => {
      const u = await enrolled();
      assert.equal((await t.api('POST', '/api/v1/auth/mfa/disable', { token: u.token, body: { code: '000000' === code(u.secret) ? '111111' : '000000' } })).status, 422);
      assert.equal((await t.api('POST', '/api/v1/auth/mfa/disable', { token: u.token, body: { code: code(u.secret) } })).status, 204);
      assert.equal((await t.api('POST', '/api/v1/auth/mfa/disable', { token: u.token, body: { code: code(u.secret) } })).status, 409);
      assert.match((await login(u.email)).body.token, /^wpb_s_/);
    });

    it("a super_admin resets a user's MFA (audited); others may not", async () => {
      const u = await enrolled();
      const other = await t.userWithRole('site_admin');
      assert.equal((await t.api('DELETE', `/api/v1/users/${u.id}/mfa`, { token: other.token })).status, 403);
      assert.equal((await t.api('DELETE', `/api/v1/users/${u.id}/mfa`)).status, 204);
      assert.match((await login(u.email)).body.token, /^wpb_s_/);
      const entries = (await t.api('GET', '/api/v1/audit?limit=50')).body.entries as { action: string; target_id: string; user_id: string }[];
      assert.ok(entries.some((a) => a.action === 'user.mfa_reset' && a.target_id === u.id && a.user_id !== u.id), 'the reset is audited with who did it');
      assert.equal((await t.api('DELETE', '/api/v1/users/00000000-0000-4000-8000-000000000000/mfa')).status, 404);
    });

    it('a role that must have MFA gets only an enrollment challenge, and the session after confirming', async () => {
      const email = `must-enroll-${Date.now()}@example.com`;
      await t.userWithRole('site_admin'); // keeps the helper's numbering apart
      const { hashPassword } = await import('../../../src/server/auth/passwords.ts');
      await t.server.ctx.repos.users.create({ email, passwordHash: await hashPassword(TEST_PASSWORD), role: 'node_admin' });
      const first = await login(email);
      assert.equal(first.status, 200);
      assert.equal(first.body.mfa_enrollment_required, true);
      assert.doesNotMatch(JSON.stringify(first.body), TOKEN_RE);
      const { challenge } = first.body;
      assert.equal((await t.api('GET', '/api/v1/auth/me', { token: challenge })).status, 401);
      assert.equal((await second(challenge, '123456')).status, 409, 'enroll first');
      const e = await t.api('POST', '/api/v1/auth/login/mfa/enroll', { body: { challenge }, token: null });
      assert.equal(e.status, 200);
      assert.ok(e.body.otpauth_uri.startsWith('otpauth://totp/'));
      const done = await second(challenge, code(e.body.secret));
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.match(done.body.token, /^wpb_s_/);
      assert.equal(done.body.recovery_codes.length, 10);
      const status = await t.api('GET', '/api/v1/auth/mfa', { token: done.body.token });
      assert.deepEqual(status.body, { enabled: true, pending: false, required: true, recovery_codes_left: 10 });
      clock.advance(STEP);
      assert.equal((await t.api('POST', '/api/v1/auth/mfa/disable', { token: done.body.token, body: { code: code(e.body.secret) } })).status, 409, 'required for the role');
      assert.equal((await login(email)).body.mfa_required, true, 'from now on a normal second step');
    });

    it('a user moved into a role that must have MFA loses the sessions opened without it', async () => {
      const plain = await t.userWithRole('site_admin');
      const withMfa = await enrolled('site_admin');
      const promote = (id: string): Promise<ApiResponse> => t.api('PATCH', `/api/v1/users/${id}`, { body: { role: 'node_admin' } });
      assert.equal((await promote(plain.id)).status, 200);
      assert.equal((await t.api('GET', '/api/v1/auth/me', { token: plain.token })).status, 401, 'signed in without a second factor');
      assert.equal((await login(plain.email)).body.mfa_enrollment_required, true, 'signs in again and enrolls');
      assert.equal((await promote(withMfa.id)).status, 200);
      assert.equal((await t.api('GET', '/api/v1/auth/me', { token: withMfa.token })).status, 200, 'has a second factor');
      const entries = (await t.api('GET', '/api/v1/audit?limit=50')).body.entries as { action: string; target_id: string; detail: { sessions_ended?: number } | null }[];
      assert.equal(entries.find((a) => a.action === 'user.update' && a.target_id === plain.id)?.detail?.sessions_ended, 1);
      assert.equal(entries.find((a) => a.action === 'user.update' && a.target_id === withMfa.id)?.detail?.sessions_ended, undefined);
    });

    it('no route hands out a token for the password alone', async () => {
      const u = await enrolled();
      const { challenge } = (await login(u.email)).body;
      const basic = `Basic ${Buffer.from(`${u.email}:${TEST_PASSWORD}`).toString('base64')}`;
      const doc = await t.api('GET', '/api/openapi.json');
      const routes = Object.entries(doc.body.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => [m.toUpperCase(), p] as const));
      assert.ok(routes.length > 30);
      const leaks: string[] = [];
      const seen: string[] = [];
      for (const [method, path] of routes) {
        const url = path.replace(/\{[^}]+\}/g, '00000000-0000-4000-8000-000000000000');
        const bodies = method === 'GET' || method === 'DELETE' ? [undefined] : [{ email: u.email, password: TEST_PASSWORD }, { email: u.email, password: TEST_PASSWORD, challenge, code: '000000', name: 'x' }];
        for (const body of bodies) {
          for (const headers of [{ authorization: basic }, { authorization: `Bearer ${challenge}` }, {}] as Record<string, string>[]) {
            const res = await t.api(method, url, { body, token: null, headers });
            if (res.body?.mfa_required === true) seen.push(`${method} ${path}`);
            if (TOKEN_RE.test(JSON.stringify(res.body ?? ''))) leaks.push(`${method} ${path} ${JSON.stringify(headers).slice(0, 20)}: ${res.status}`);
          }
        }
      }
      assert.deepEqual(leaks, []);
      assert.ok(seen.includes('POST /api/v1/auth/login'), 'the sweep reached the sign-in and got a challenge, not a refusal');
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`MFA required from a restart on (${dialect})`, () => {
    it('ends the sessions those roles opened without a second factor; API tokens, enrolled users and other roles keep theirs', async () => {
      const clock = new TestClock();
      clock.t = Math.floor(Date.now() / STEP) * STEP + 1000;
      const t = await startTestServer(dialect, { now: clock.now });
      const plain = await t.userWithRole('node_admin');
      const apiToken = (await t.api('POST', '/api/v1/tokens', { token: plain.token, body: { name: 'script' } })).body.token as string;
      assert.match(apiToken, /^wpb_a_/);
      const withMfa = await t.userWithRole('node_admin');
      const e = await t.api('POST', '/api/v1/auth/mfa/enroll', { token: withMfa.token });
      assert.equal((await t.api('POST', '/api/v1/auth/mfa/confirm', { token: withMfa.token, body: { code: totp(base32Decode(e.body.secret), clock.t) } })).status, 200);
      const other = await t.userWithRole('site_admin');
      await t.server.close();
      const again = await startServer({ requireMfa: ['node_admin'], now: clock.now, port: 0, host: '127.0.0.1', dataDir: t.target.options.dataDir, databaseUrl: t.target.options.databaseUrl, env: {} });
      try {
        const me = async (token: string): Promise<number> => (await fetch(`${again.url}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } })).status;
        assert.equal(await me(plain.token), 401, 'a node_admin session without a second factor ended');
        assert.equal(await me(apiToken), 200, 'an API token stays');
        assert.equal(await me(withMfa.token), 200, 'a node_admin with a second factor keeps the session');
        assert.equal(await me(other.token), 200, 'a role without the requirement keeps the session');
        const audit = await again.ctx.repos.audit.list({ limit: 20 });
        const ended = audit.filter((a) => a.action === 'auth.sessions_ended');
        assert.deepEqual(ended.map((a) => a.detail), [{ reason: 'second factor required', roles: ['node_admin'], sessions: 1 }]);
      } finally {
        await again.close();
        await t.target.cleanup();
      }
    });
  });
}
