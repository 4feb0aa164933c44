import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  TOKEN_PREFIX,
  TOKEN_TTL_MS,
  expiryFor,
  generateToken,
  hashToken,
  isExpired,
  parseBearer,
  redactTokens,
  tokenKind,
  tokenMatchesHash,
  type TokenKind,
} from '../../../src/server/auth/tokens.ts';

const KINDS: TokenKind[] = ['session', 'api', 'node', 'join'];

describe('tokens', () => {
  it('carry a prefix per kind and 32 random bytes in base64url', () => {
    assert.deepEqual(TOKEN_PREFIX, { session: 'wpb_s_', api: 'wpb_a_', node: 'wpb_n_', join: 'wpb_j_' });
    for (const kind of KINDS) {
      const token = generateToken(kind);
      assert.ok(token.startsWith(TOKEN_PREFIX[kind]));
      const body = token.slice(6);
      assert.match(body, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(body, 'base64url').length, 32);
      assert.equal(tokenKind(token), kind);
    }
  });

  it('are never repeated', () => {
    const seen = new Set(Array.from({ length: 1000 }, () => generateToken('session')));
    assert.equal(seen.size, 1000);
  });

  it('recognise only well-formed tokens', () => {
    const good = generateToken('api');
    const body = good.slice(6);
    for (const bad of ['', 'wpb_a_', `wpb_x_${body}`, good.slice(0, -1), `${good}A`, ` ${good}`, `WPB_a_${body}`, `${good.slice(0, -1)}=`]) {
      assert.equal(tokenKind(bad), undefined, bad);
    }
  });

  it('are stored as their sha256 in hex, compared in constant time', () => {
    const token = generateToken('node');
    const hash = hashToken(token);
    assert.equal(hash, createHash('sha256').update(token).digest('hex'));
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.equal(tokenMatchesHash(token, hash), true);
    assert.equal(tokenMatchesHash(generateToken('node'), hash), false);
    assert.equal(tokenMatchesHash(token, hash.slice(0, 62)), false);
    assert.equal(tokenMatchesHash(token, 'not hex'), false);
  });
});

describe('token expiry', () => {
  const now = new Date('2026-01-01T00:00:00Z');

  it('gives sessions and join codes a lifetime, node keys and API tokens none by default', () => {
    assert.equal(expiryFor('session', now)?.toISOString(), '2026-01-01T12:00:00.000Z');
    assert.equal(expiryFor('join', now)?.toISOString(), '2026-01-01T01:00:00.000Z');
    assert.equal(expiryFor('node', now), null);
    assert.equal(expiryFor('api', now), null);
    assert.equal(expiryFor('api', now, 30 * 86_400_000)?.toISOString(), '2026-01-31T00:00:00.000Z');
    assert.equal(TOKEN_TTL_MS.session, 12 * 3_600_000);
  });

  it('counts a token as expired from its expiry instant on', () => {
    const exp = new Date('2026-01-01T12:00:00Z');
    assert.equal(isExpired(exp, new Date(exp.getTime() - 1)), false);
    assert.equal(isExpired(exp, exp), true);
    assert.equal(isExpired(null, new Date(8.64e15)), false);
  });
});

describe('parseBearer', () => {
  const session = generateToken('session');

  it('returns the token and its kind', () => {
    for (const kind of ['session', 'api', 'node'] as const) {
      const token = generateToken(kind);
      assert.deepEqual(parseBearer(`Bearer ${token}`), { kind, token });
    }
    assert.deepEqual(parseBearer(`bearer  ${session}`), { kind: 'session', token: session }, 'the scheme is case-insensitive');
    assert.deepEqual(parseBearer(` Bearer ${session} `), { kind: 'session', token: session });
  });

  it('rejects missing and malformed headers', () => {
    for (const bad of [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      session,
      `Basic ${session}`,
      `Token ${session}`,
      `Bearer${session}`,
      `Bearer ${session} extra`,
      `Bearer ${session},Bearer ${session}`,
      `Bearer\t${session}`,
      `Bearer ${session.slice(0, -2)}`,
      'Bearer abc.def.ghi',
      `Bearer ${'A'.repeat(10_000)}`,
    ]) {
      assert.equal(parseBearer(bad), undefined, String(bad));
    }
  });

  it('never takes a join code as a credential', () => {
    assert.equal(parseBearer(`Bearer ${generateToken('join')}`), undefined);
  });
});

describe('redactTokens', () => {
  it('removes every token from a text, keeping only the kind prefix', () => {
    const [a, n] = [generateToken('api'), generateToken('node')];
    const line = redactTokens(`auth failed for ${a}; node key=${n}.`);
    assert.equal(line, 'auth failed for wpb_a_[redacted]; node key=wpb_n_[redacted].');
    assert.equal(redactTokens('nothing secret here'), 'nothing secret here');
  });
});
