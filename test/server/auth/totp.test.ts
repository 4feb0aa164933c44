import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { base32Decode, base32Encode, hotp, matchTotp, otpauthUri, stepAt, totp } from '../../../src/server/auth/totp.ts';

// RFC 6238 appendix B (SHA-1 rows: the secret is the ASCII "12345678901234567890", 8 digits) and
// RFC 4226 appendix D (HOTP, 6 digits, same secret).
const SECRET = Buffer.from('12345678901234567890', 'ascii');
const RFC6238: [number, string][] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];
const RFC4226 = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];

describe('TOTP', () => {
  it('matches the RFC 6238 test vectors (SHA-1), and their 6-digit forms', () => {
    for (const [seconds, code] of RFC6238) {
      assert.equal(totp(SECRET, seconds * 1000, 8), code, `T=${seconds}`);
      assert.equal(totp(SECRET, seconds * 1000), code.slice(2), `T=${seconds}, 6 digits`);
    }
  });

  it('matches the RFC 4226 HOTP test vectors', () => {
    RFC4226.forEach((code, counter) => assert.equal(hotp(SECRET, counter), code, `counter ${counter}`));
  });

  it('accepts a code one step either side of now, and only after the last used step', () => {
    const now = 1111111111 * 1000;
    const step = stepAt(now);
    const at = (s: number): string => hotp(SECRET, s);
    assert.equal(matchTotp(SECRET, at(step), now, null), step);
    assert.equal(matchTotp(SECRET, at(step - 1), now, null), step - 1);
    assert.equal(matchTotp(SECRET, at(step + 1), now, null), step + 1);
    assert.equal(matchTotp(SECRET, at(step - 2), now, null), undefined);
    assert.equal(matchTotp(SECRET, at(step + 2), now, null), undefined);
    assert.equal(matchTotp(SECRET, at(step), now, step), undefined, 'used');
    assert.equal(matchTotp(SECRET, at(step - 1), now, step), undefined, 'older than the last used');
    assert.equal(matchTotp(SECRET, at(step + 1), now, step), step + 1);
    assert.equal(matchTotp(SECRET, '12345', now, null), undefined);
    assert.equal(matchTotp(SECRET, ' 050471', now, null), undefined);
  });

  it('base32 round-trips and gives the URI authenticator apps read', () => {
    assert.equal(base32Encode(SECRET), 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    assert.deepEqual(base32Decode('gezd gnbv-gy3t qojq gezd gnbv gy3t qojq'), SECRET);
    assert.throws(() => base32Decode('GEZD1'));
    const uri = new URL(otpauthUri('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 'ann@example.com'));
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(uri.host, 'totp');
    assert.equal(decodeURIComponent(uri.pathname), '/wpbackup:ann@example.com');
    assert.deepEqual(Object.fromEntries(uri.searchParams), { secret: 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', issuer: 'wpbackup', algorithm: 'SHA1', digits: '6', period: '30' });
  });
});
