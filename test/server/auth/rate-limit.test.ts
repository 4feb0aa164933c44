import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_LIMITS, LoginLimiter, clientKey, type LimitVerdict, type LoginLimits } from '../../../src/server/auth/rate-limit.ts';
import type { Db } from '../../../src/server/db/db.ts';
import { createRepos, type Repos } from '../../../src/server/db/repos.ts';
import { SecretBox } from '../../../src/server/db/secrets.ts';
import { DIALECTS } from '../../helpers/server.ts';
import { TestClock } from '../db/suite.ts';
import { postgresTarget, sqliteTarget, type Target } from '../db/targets.ts';

// The sign-in limits, counted in the database: each dialect, a test clock, fresh addresses and
// emails per test (the database is shared by the file's tests).

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
let n = 0;
const email = (): string => `user${++n}-${randomBytes(3).toString('hex')}@example.com`;
const ip = (): string => `198.51.${(++n >> 8) & 255}.${n & 255}`;
const ok = (v: LimitVerdict): boolean => v.ok;

for (const dialect of DIALECTS) {
  describe(`LoginLimiter (${dialect})`, () => {
    let target: Target;
    let db: Db;
    let other: Db;
    let repos: Repos;
    const clock = new TestClock();
    const limiter = (limits?: Partial<LoginLimits>, r: Repos = repos): LoginLimiter => new LoginLimiter(r.loginThrottle, { now: clock.now, limits });

    before(async () => {
      target = dialect === 'sqlite' ? await sqliteTarget() : await postgresTarget();
      db = await target.open();
      other = await target.open();
      repos = createRepos(db, { secrets: new SecretBox(randomBytes(32)), now: clock.now });
    });
    after(async () => {
      await db?.close();
      await other?.close();
      await target?.cleanup();
    });

    it('allows 5 failures per source and account, then says how long to wait', async () => {
      const l = limiter();
      const [a, who] = [ip(), email()];
      for (let i = 0; i < 5; i++) {
        assert.equal(ok(await l.attempt(a, who)), true);
        clock.advance(MIN);
      }
      // The window opened at the first failure, 5 minutes ago: it closes in 10.
      assert.deepEqual(await l.attempt(a, who), { ok: false, retryAfterSec: 600, scope: 'source' });
      assert.equal(ok(await l.attempt(a, ` ${who.toUpperCase()} `)), false, 'email case and spaces');
      assert.equal(ok(await l.attempt(ip(), who)), true, 'another source');
      assert.equal(ok(await l.attempt(a, email())), true, 'another account');
    });

    it('does not count refused attempts: hammering never extends the lock', async () => {
      const l = limiter();
      const [a, who] = [ip(), email()];
      const start = clock.t;
      for (let i = 0; i < 5; i++) await l.attempt(a, who);
      while (clock.t + 8_000 < start + 15 * MIN) {
        clock.advance(8_000);
        assert.equal(ok(await l.attempt(a, who)), false);
      }
      clock.t = start + 15 * MIN;
      assert.equal(ok(await l.attempt(a, who)), true);
    });

    it('allows 20 failures per source over all accounts, and only that source is refused', async () => {
      const l = limiter();
      const a = ip();
      for (let i = 0; i < 20; i++) assert.equal(ok(await l.attempt(a, email())), true);
      clock.advance(30_000);
      assert.deepEqual(await l.attempt(a, email()), { ok: false, retryAfterSec: 870, scope: 'source' });
      const owner = email();
      const v = await l.attempt(ip(), owner);
      assert.ok(v.ok, 'everyone else still signs in');
      await l.succeeded(v.ticket, { complete: true });
    });

    it('forgets the pair on success and gives the source its attempt back', async () => {
      const l = limiter();
      const [a, who] = [ip(), email()];
      for (let i = 0; i < 4; i++) await l.attempt(a, who);
      const v = await l.attempt(a, who);
      assert.ok(v.ok);
      await l.succeeded(v.ticket, { complete: false });
      assert.equal(await repos.loginThrottle.failures(`s|${a}`), 4);
      assert.equal(await repos.loginThrottle.failures(`p|${a}|${who}`), 0);
      for (let i = 0; i < 5; i++) assert.equal(ok(await l.attempt(a, who)), true, `attempt ${i}`);
    });

    it('counts a burst of parallel attempts before any password check finishes (PostgreSQL: over two handles, two servers)', async () => {
      const l1 = limiter();
      // SQLite is one server's database: a second handle in the same process would only block the event loop.
      const l2 = limiter({}, createRepos(dialect === 'postgres' ? other : db, { secrets: new SecretBox(randomBytes(32)), now: clock.now }));
      const [a, who] = [ip(), email()];
      const verdicts = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? l1 : l2).attempt(a, who)));
      assert.equal(verdicts.filter(ok).length, 5);
    });

    it('bounds guesses on one account from many unknown sources, but never locks out the owner from a known one', async () => {
      const l = limiter();
      const victim = email();
      const home = ip();
      const v = await l.attempt(home, victim);
      assert.ok(v.ok);
      await l.succeeded(v.ticket, { complete: true });
      // A botnet: each address guesses once.
      for (let i = 0; i < DEFAULT_LIMITS.perAccount; i++) assert.equal(ok(await l.attempt(ip(), victim)), true, `guess ${i}`);
      clock.advance(MIN);
      const refused = await l.attempt(ip(), victim);
      assert.deepEqual(refused, { ok: false, retryAfterSec: DAY / 1000 - 60, scope: 'account' });
      assert.equal(ok(await l.attempt(ip(), victim)), false, 'a fresh address too');
      // The owner, from where they signed in before: not counted against the account.
      const owner = await l.attempt(home, victim);
      assert.ok(owner.ok, 'the owner signs in from a known source');
      await l.succeeded(owner.ticket, { complete: true });
      // Other accounts are untouched.
      assert.equal(ok(await l.attempt(ip(), email())), true);
      clock.advance(DAY);
      assert.equal(ok(await l.attempt(ip(), victim)), true, 'a day later the account window is new');
    });

    it('a known source is known per account and for 30 days', async () => {
      const l = limiter({ perAccount: 1 });
      const [home, who] = [ip(), email()];
      const v = await l.attempt(home, who);
      assert.ok(v.ok);
      await l.succeeded(v.ticket, { complete: true });
      assert.equal(ok(await l.attempt(ip(), who)), true);
      assert.equal(ok(await l.attempt(ip(), who)), false, 'the account is over its limit for unknown sources');
      assert.equal(ok(await l.attempt(home, who)), true, 'known');
      clock.advance(30 * DAY + 1);
      assert.equal(ok(await l.attempt(ip(), who)), true, 'the account window is new');
      assert.equal(ok(await l.attempt(home, who)), false, 'no longer known after 30 days');
    });

    it('only a finished sign-in makes a source known (a right password before a second factor does not)', async () => {
      const l = limiter({ perAccount: 1 });
      const [a, who] = [ip(), email()];
      const v = await l.attempt(a, who);
      assert.ok(v.ok);
      await l.succeeded(v.ticket, { complete: false });
      assert.equal(ok(await l.attempt(ip(), who)), true);
      assert.equal(ok(await l.attempt(a, who)), false, 'still unknown, so the account limit applies');
    });

    it('allows 10 wrong second-factor codes per account per day from anywhere, known sources included', async () => {
      const l = limiter();
      const [home, who] = [ip(), email()];
      const v = await l.attempt(home, who);
      assert.ok(v.ok);
      await l.succeeded(v.ticket, { complete: true });
      for (let i = 0; i < 10; i++) assert.equal(ok(await l.attempt(i < 4 ? home : ip(), who, 'mfa')), true, `code ${i}`);
      assert.deepEqual(await l.attempt(home, who, 'mfa'), { ok: false, retryAfterSec: DAY / 1000, scope: 'account' });
      assert.equal(ok(await l.attempt(home, who, 'password')), true, 'passwords from the known source still go through');
    });

    it('deletes dead windows now and then', async () => {
      const l = limiter();
      const [a, who] = [ip(), email()];
      await l.attempt(a, who);
      clock.advance(2 * DAY);
      assert.ok((await repos.loginThrottle.deleteExpired()) >= 3);
      assert.equal(await repos.loginThrottle.failures(`s|${a}`), 0);
      const count = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM login_throttle WHERE window_end <= ?', [clock.t]);
      assert.equal(Number(count?.n), 0);
    });
  });
}

describe('clientKey', () => {
  it('treats IPv4-mapped addresses as IPv4 and IPv6 by /64', () => {
    assert.equal(clientKey('203.0.113.7'), '203.0.113.7');
    assert.equal(clientKey('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(clientKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:0DB8:0001:0002:ffff::1'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(clientKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
    assert.equal(clientKey('unix-socket'), 'unix-socket');
  });
});
