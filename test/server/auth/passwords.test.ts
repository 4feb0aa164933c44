import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it, mock } from 'node:test';
import { WpbError } from '../../../src/errors.ts';
import {
  CURRENT_PARAMS,
  checkPasswordPolicy,
  hashPassword,
  needsRehash,
  parsePasswordHash,
  scryptMaxmem,
  verifyPassword,
} from '../../../src/server/auth/passwords.ts';

// Cheap parameters where the cost itself is not under test.
const FAST = { N: 1024, r: 8, p: 1, saltBytes: 16, keyBytes: 32 };
const PW = 'correct horse battery staple';

function tamper(stored: string, field: number, edit: (s: string) => string): string {
  const parts = stored.split('$');
  parts[field] = edit(parts[field] ?? '');
  return parts.join('$');
}

function flipFirstByte(b64: string): string {
  const buf = Buffer.from(b64, 'base64');
  buf[0] = (buf[0] ?? 0) ^ 1;
  return buf.toString('base64');
}

describe('password hashing', () => {
  it('round-trips with the current parameters, encoded in the string', async () => {
    const stored = await hashPassword(PW);
    assert.match(stored, /^scrypt\$32768\$8\$3\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    assert.equal(await verifyPassword(PW, stored), true);
    assert.equal(needsRehash(stored), false);
  });

  it('salts every hash differently', async () => {
    const [a, b] = await Promise.all([hashPassword(PW, FAST), hashPassword(PW, FAST)]);
    assert.notEqual(a, b);
  });

  it('refuses a wrong password, including near misses', async () => {
    const stored = await hashPassword(PW, FAST);
    for (const wrong of ['', 'correct horse battery stapl', 'Correct horse battery staple', `${PW} `]) {
      assert.equal(await verifyPassword(wrong, stored), false, JSON.stringify(wrong));
    }
  });

  it('matches composed and decomposed forms of the same password (NFKC)', async () => {
    const stored = await hashPassword('caf\u00e9 au lait please', FAST);
    assert.equal(await verifyPassword('cafe\u0301 au lait please', stored), true);
  });

  it('refuses a hash whose salt, key or parameters were tampered with', async () => {
    const stored = await hashPassword(PW, FAST);
    assert.equal(await verifyPassword(PW, tamper(stored, 4, flipFirstByte)), false);
    assert.equal(await verifyPassword(PW, tamper(stored, 5, flipFirstByte)), false);
    assert.equal(await verifyPassword(PW, tamper(stored, 1, () => '2048')), false);
    assert.equal(await verifyPassword(PW, tamper(stored, 3, () => '2')), false);
  });

  it('throws a failed error, without quoting it, on a malformed stored hash', async () => {
    const stored = await hashPassword(PW, FAST);
    const malformed = [
      '',
      'plaintext',
      stored.replace('scrypt$', 'bcrypt$'),
      `${stored}$extra`,
      tamper(stored, 1, () => '1000'), // not a power of two
      tamper(stored, 1, () => '0x400'),
      tamper(stored, 1, () => String(2 ** 22)), // would need 4 GiB: refused before allocating
      tamper(stored, 2, () => '-8'),
      tamper(stored, 3, () => '0'),
      tamper(stored, 4, (s) => `${s}!`), // Buffer.from would silently skip the junk
      tamper(stored, 4, () => 'c2FsdA=='), // 4-byte salt
      tamper(stored, 5, () => ''),
    ];
    for (const bad of malformed) {
      await assert.rejects(verifyPassword(PW, bad), (err: unknown) => {
        assert.ok(err instanceof WpbError && err.kind === 'failed', bad);
        assert.equal(err.message, 'Stored password hash is malformed');
        return true;
      });
      assert.equal(needsRehash(bad), true, bad);
    }
  });

  it('still spends a hash on an unknown user, then says no', async () => {
    const scrypt = mock.method(crypto, 'scrypt');
    try {
      assert.equal(await verifyPassword(PW, undefined), false);
      assert.equal(await verifyPassword(PW, null), false);
      assert.equal(scrypt.mock.callCount(), 2);
      assert.equal(scrypt.mock.calls[0]?.arguments[3].N, CURRENT_PARAMS.N);
    } finally {
      scrypt.mock.restore();
    }
  });

  it('compares with crypto.timingSafeEqual', async () => {
    const stored = await hashPassword(PW, FAST);
    const tse = mock.method(crypto, 'timingSafeEqual');
    try {
      assert.equal(await verifyPassword('wrong password!', stored), false);
      assert.equal(await verifyPassword(PW, stored), true);
      assert.equal(tse.mock.callCount(), 2);
      const [a, b] = tse.mock.calls[1]?.arguments ?? [];
      assert.ok(Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.length === 32 && b.length === 32);
    } finally {
      tse.mock.restore();
    }
  });

  it('flags hashes made with other parameters for rehashing, and they still verify', async () => {
    for (const params of [FAST, { ...CURRENT_PARAMS, p: 1 }, { ...FAST, N: 2 ** 15, p: 3, saltBytes: 32 }]) {
      const stored = await hashPassword(PW, params);
      assert.equal(needsRehash(stored), true, JSON.stringify(params));
      assert.equal(await verifyPassword(PW, stored), true);
    }
  });

  it('sets maxmem to exactly what OpenSSL needs (the default 32 MiB is not enough for N=2^15, r=8)', () => {
    assert.ok(scryptMaxmem(CURRENT_PARAMS) > 32 * 1024 * 1024);
    assert.throws(() => crypto.scryptSync('x', 'salt', 32, { ...CURRENT_PARAMS, maxmem: scryptMaxmem(CURRENT_PARAMS) - 1 }));
    const [salt, key] = [Buffer.alloc(16, 1).toString('base64'), Buffer.alloc(32, 2).toString('base64')];
    assert.deepEqual(parsePasswordHash(`scrypt$32768$8$3$${salt}$${key}`).params, CURRENT_PARAMS);
    assert.throws(() => parsePasswordHash(`scrypt$32768$8$3$${salt}$${'B'.repeat(43)}=`), 'non-canonical base64');
  });
});

describe('password policy', () => {
  const email = 'Alice.Smith@example.com';
  const ok = (pw: string) => assert.deepEqual(checkPasswordPolicy(pw, email), { ok: true }, pw);
  const refused = (pw: string, msg: RegExp) => {
    const r = checkPasswordPolicy(pw, email);
    assert.equal(r.ok, false, pw);
    if (!r.ok) {
      assert.match(r.message, msg);
      if (pw.length > 3) assert.ok(!r.message.includes(pw), 'the message must not repeat the password');
    }
  };

  it('accepts long, uncommon passwords and passphrases', () => {
    for (const pw of ['correct horse battery staple', 'xk2-Pq9!mZ4@', 'тихий-дом-у-реки', 'password is my bad habit']) ok(pw);
  });

  it('asks for at least 12 characters, counted as characters not bytes', () => {
    refused('Sh0rt!pw', /at least 12 characters/);
    refused('', /at least 12 characters/);
    refused('🦊🦊🐻🐻🦉🦉🐸🐸🐙🐙🐝', /at least 12 characters/); // 11 emoji, 44 bytes
    ok('🦊🦊🐻🐻🦉🦉🐸🐸🐙🐙🐝🐞');
    refused('x'.repeat(1025), /at most 1024/);
  });

  it('refuses the email address or its local part, in any case', () => {
    refused('alice.smith@example.com', /email/);
    refused('  ALICE.SMITH@EXAMPLE.COM ', /email/);
    assert.equal(checkPasswordPolicy('alice.smith1', 'alice.smith1@example.com').ok, false);
  });

  it('refuses the most common passwords, with digits and symbols around common words too', () => {
    const weak = ['123456789012', 'Password1234', 'QWERTYUIOP123', '1q2w3e4r5t6y', 'Password2024!', '123Welcome!!'];
    weak.push('WordPress2025', 'aaaaaaaaaaaa', 'abcabcabcabc', '121212121212');
    for (const pw of weak) refused(pw, /too common/);
  });
});
