import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LoginLimiter, clientKey } from '../../../src/server/auth/rate-limit.ts';

const MIN = 60_000;

function setup(opts: { maxKeys?: number } = {}) {
  const clock = { t: 1_000_000 };
  const limiter = new LoginLimiter({ perEmail: 5, perClient: 20, windowMs: 15 * MIN, now: () => clock.t, ...opts });
  return { clock, limiter };
}

describe('LoginLimiter', () => {
  it('allows 5 failures per email and client, then says how long to wait', () => {
    const { clock, limiter } = setup();
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(limiter.attempt('203.0.113.7', 'a@example.com'), { ok: true });
      clock.t += MIN;
    }
    // The first failure was 5 minutes ago, so it leaves the window in 10.
    assert.deepEqual(limiter.attempt('203.0.113.7', 'a@example.com'), { ok: false, retryAfterSec: 600 });
    assert.deepEqual(limiter.attempt('203.0.113.7', ' A@Example.COM'), { ok: false, retryAfterSec: 600 }, 'email case');
    assert.deepEqual(limiter.attempt('203.0.113.8', 'a@example.com'), { ok: true }, 'another client');
    assert.deepEqual(limiter.attempt('203.0.113.7', 'b@example.com'), { ok: true }, 'another email');
  });

  it('slides: each old failure frees one slot as it leaves the window', () => {
    const { clock, limiter } = setup();
    for (let i = 0; i < 5; i++) {
      limiter.attempt('203.0.113.7', 'a@example.com');
      clock.t += MIN;
    }
    clock.t += 10 * MIN - 1;
    assert.deepEqual(limiter.attempt('203.0.113.7', 'a@example.com'), { ok: false, retryAfterSec: 1 });
    clock.t += 1;
    assert.deepEqual(limiter.attempt('203.0.113.7', 'a@example.com'), { ok: true });
    assert.equal(limiter.attempt('203.0.113.7', 'a@example.com').ok, false, 'only one slot came free');
  });

  it('does not count refused attempts, so an attacker cannot keep the owner locked out forever', () => {
    const { clock, limiter } = setup();
    const start = clock.t;
    for (let i = 0; i < 5; i++) limiter.attempt('203.0.113.7', 'a@example.com');
    while (clock.t + 8_000 < start + 15 * MIN) {
      clock.t += 8_000;
      assert.equal(limiter.attempt('203.0.113.7', 'a@example.com').ok, false);
    }
    clock.t = start + 15 * MIN;
    assert.deepEqual(limiter.attempt('203.0.113.7', 'a@example.com'), { ok: true });
  });

  it('allows 20 failures per client over all emails', () => {
    const { clock, limiter } = setup();
    for (let i = 0; i < 20; i++) assert.equal(limiter.attempt('198.51.100.1', `user${i}@example.com`).ok, true);
    clock.t += 30_000;
    assert.deepEqual(limiter.attempt('198.51.100.1', 'fresh@example.com'), { ok: false, retryAfterSec: 870 });
    assert.equal(limiter.attempt('198.51.100.2', 'fresh@example.com').ok, true);
  });

  it('forgets the pair on success and gives the client its attempt back', () => {
    const { limiter } = setup();
    for (let i = 0; i < 4; i++) limiter.attempt('203.0.113.7', 'a@example.com');
    limiter.attempt('203.0.113.7', 'a@example.com');
    limiter.succeeded('203.0.113.7', 'a@example.com');
    for (let i = 0; i < 5; i++) assert.equal(limiter.attempt('203.0.113.7', 'a@example.com').ok, true, `attempt ${i}`);
    limiter.succeeded('203.0.113.7', 'a@example.com');
    // 10 attempts, 2 successes: 8 count against the client, 12 remain.
    for (let i = 0; i < 12; i++) assert.equal(limiter.attempt('203.0.113.7', `x${i}@example.com`).ok, true);
    assert.equal(limiter.attempt('203.0.113.7', 'y@example.com').ok, false);
  });

  it('counts a burst of parallel attempts before any password check finishes', () => {
    const { limiter } = setup();
    const verdicts = Array.from({ length: 50 }, () => limiter.attempt('203.0.113.7', 'a@example.com'));
    assert.equal(verdicts.filter((v) => v.ok).length, 5);
  });

  it('keeps memory bounded: stale keys go first, then the least recently failed', () => {
    const { clock, limiter } = setup({ maxKeys: 100 });
    for (let i = 0; i < 1000; i++) limiter.attempt(`10.0.${i >> 8}.${i & 255}`, 'a@example.com');
    assert.ok(limiter.size <= 100, `size ${limiter.size}`);
    clock.t += 15 * MIN;
    limiter.attempt('192.0.2.1', 'a@example.com');
    assert.equal(limiter.size, 2, 'everything older than the window was dropped');
  });
});

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

  it('counts every address of one /64 as the same client', () => {
    const { limiter } = setup();
    for (let i = 0; i < 20; i++) assert.equal(limiter.attempt(`2001:db8:1:2::${i.toString(16)}`, `u${i}@example.com`).ok, true);
    assert.equal(limiter.attempt('2001:db8:1:2:ffff::9', 'other@example.com').ok, false);
    assert.equal(limiter.attempt('2001:db8:1:3::1', 'other@example.com').ok, true);
  });
});
