import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseTrustProxy } from '../../../src/server/auth/trust-proxy.ts';
import { WpbError } from '../../../src/errors.ts';
import { DIALECTS, startTestServer, TEST_PASSWORD, type ApiResponse, type TestServer } from '../../helpers/server.ts';
import { TestClock } from '../db/suite.ts';

// Sign-in limits through HTTP: behind a trusted reverse proxy clients are told apart by
// X-Forwarded-For, a forged header from anyone else changes nothing, one source cannot lock out
// everyone, and an attacker on one account does not lock its owner out. The test client always
// connects from 127.0.0.1, which plays the proxy.

const WRONG = 'not the password at all';

function login(t: TestServer, email: string, password: string, xff?: string): Promise<ApiResponse> {
  return t.api('POST', '/api/v1/auth/login', { body: { email, password }, token: null, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } });
}

for (const dialect of DIALECTS) {
  describe(`sign-in limits behind a trusted proxy (${dialect})`, () => {
    let t: TestServer;
    const clock = new TestClock();
    clock.t = Date.now();
    before(async () => {
      t = await startTestServer(dialect, { trustProxy: ['127.0.0.1', '10.0.0.0/8', '2001:db8:ffff::/48'], loginLimits: { perAccount: 10 }, now: clock.now });
    });
    after(() => t.close());

    it('tells proxied clients apart by X-Forwarded-For', async () => {
      const victim = (await t.userWithRole('site_admin')).email;
      for (let i = 0; i < 5; i++) assert.equal((await login(t, victim, WRONG, '203.0.113.1')).status, 401);
      const locked = await login(t, victim, WRONG, '203.0.113.1');
      assert.equal(locked.status, 429);
      assert.ok(Number(locked.headers.get('retry-after')) > 0);
      assert.equal((await login(t, victim, WRONG, '203.0.113.2')).status, 401, 'another client behind the same proxy');
      assert.equal((await login(t, victim, TEST_PASSWORD, '203.0.113.3')).status, 200);
      assert.equal(await t.server.ctx.repos.loginThrottle.failures('s|127.0.0.1'), 0, 'nothing counted against the proxy');
    });

    it('takes the right-most address that is not a trusted proxy; entries left of it are the client’s to forge', async () => {
      const who = (await t.userWithRole('site_admin')).email;
      // "client-claims, real client, inner proxy": the inner proxy (10/8) is trusted, the real client is not.
      assert.equal((await login(t, who, WRONG, '192.0.2.99, 198.51.100.7, 10.1.2.3')).status, 401);
      assert.equal(await t.server.ctx.repos.loginThrottle.failures('s|198.51.100.7'), 1);
      assert.equal(await t.server.ctx.repos.loginThrottle.failures('s|192.0.2.99'), 0);
      assert.equal(await t.server.ctx.repos.loginThrottle.failures('s|10.1.2.3'), 0);
    });

    it('counts IPv6 clients by their /64', async () => {
      const who = (await t.userWithRole('site_admin')).email;
      for (let i = 1; i <= 5; i++) assert.equal((await login(t, who, WRONG, `2001:db8:1:2::${i}`)).status, 401);
      assert.equal((await login(t, who, WRONG, '2001:db8:1:2:ffff::9')).status, 429, 'same /64');
      assert.equal((await login(t, who, WRONG, '2001:db8:1:3::1')).status, 401, 'another /64');
      // A trusted IPv6 proxy in the chain is skipped.
      assert.equal((await login(t, who, WRONG, '2001:db8:1:4::1, 2001:db8:ffff:1::1')).status, 401);
      assert.equal(await t.server.ctx.repos.loginThrottle.failures('s|2001:db8:1:4::/64'), 1);
    });

    it('one source spraying many accounts locks out only itself', async () => {
      const accounts = await Promise.all(Array.from({ length: 3 }, () => t.userWithRole('site_admin')));
      for (let i = 0; i < 20; i++) assert.equal((await login(t, `nobody${i}@example.com`, WRONG, '203.0.113.66')).status, 401);
      assert.equal((await login(t, accounts[0]?.email ?? '', TEST_PASSWORD, '203.0.113.66')).status, 429, 'the sprayer is stopped, even with a right password');
      for (const a of accounts) assert.equal((await login(t, a.email, TEST_PASSWORD, '198.51.100.20')).status, 200, 'everyone else signs in');
    });

    it('an attacker hammering one account from many addresses does not lock its owner out', async () => {
      const owner = await t.userWithRole('node_admin');
      assert.equal((await login(t, owner.email, TEST_PASSWORD, '198.51.100.50')).status, 200, 'the owner signs in from home');
      // A botnet: each address a few guesses, under the per-source limits.
      let refused: ApiResponse | undefined;
      for (let i = 0; i < 20 && !refused; i++) {
        const res = await login(t, owner.email, WRONG, `192.0.2.${i + 1}`);
        if (res.status === 429) refused = res;
        else assert.equal(res.status, 401);
      }
      assert.ok(refused, 'the account limit stops the botnet');
      assert.match(refused.body.error.message, /this account/);
      assert.equal((await login(t, owner.email, TEST_PASSWORD, '192.0.2.200')).status, 429, 'a new address, even with the password, waits');
      assert.equal((await login(t, owner.email, TEST_PASSWORD, '198.51.100.50')).status, 200, 'the owner from home is not locked out');
    });
  });

  describe(`sign-in limits without a trusted proxy (${dialect})`, () => {
    let t: TestServer;
    before(async () => {
      // The proxy list does not hold the peer (127.0.0.1): its X-Forwarded-For must be ignored.
      t = await startTestServer(dialect, { trustProxy: ['10.0.0.1'] });
    });
    after(() => t.close());

    it('ignores a forged X-Forwarded-For from an untrusted peer', async () => {
      const victim = (await t.userWithRole('site_admin')).email;
      for (let i = 0; i < 5; i++) assert.equal((await login(t, victim, WRONG, `203.0.113.${i + 1}`)).status, 401);
      assert.equal((await login(t, victim, WRONG, '203.0.113.77')).status, 429, 'a fresh forged address does not help');
      assert.equal(await t.server.ctx.repos.loginThrottle.failures('s|127.0.0.1'), 5);
      assert.equal(await t.server.ctx.repos.loginThrottle.failures('s|203.0.113.1'), 0);
    });
  });
}

describe('parseTrustProxy', () => {
  it('takes addresses and CIDRs of both families, and named ranges', () => {
    assert.equal(parseTrustProxy(undefined), undefined);
    assert.equal(parseTrustProxy(' '), undefined);
    assert.deepEqual(parseTrustProxy('10.0.0.5, 192.168.0.0/16,::1,2001:db8::/32,loopback'), ['10.0.0.5', '192.168.0.0/16', '::1', '2001:db8::/32', 'loopback']);
  });

  it('refuses anything else, naming the entry', () => {
    for (const bad of ['10.0.0.0/33', '2001:db8::/129', 'proxy.example.com', '10.0.0.1/8/1', '10.0.0/8', '*']) {
      assert.throws(() => parseTrustProxy(`127.0.0.1,${bad}`), (e) => e instanceof WpbError && e.kind === 'bad_input' && e.message.includes(bad), bad);
    }
  });
});
