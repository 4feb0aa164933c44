// Opaque bearer tokens: a prefix naming the kind (so a leaked token is recognisable, e.g. by secret scanners,
// and a route can tell a session from an API token before any lookup) and 32 random bytes in base64url.
// Only hashToken(token) is ever stored; the token itself is shown once and never logged.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export type TokenKind = 'session' | 'api' | 'node' | 'join';

export const TOKEN_PREFIX = { session: 'wpb_s_', api: 'wpb_a_', node: 'wpb_n_', join: 'wpb_j_' } as const satisfies Record<
  TokenKind,
  string
>;

const KIND_BY_LETTER: Record<string, TokenKind> = { s: 'session', a: 'api', n: 'node', j: 'join' };
const RANDOM_BYTES = 32;
// 32 bytes are 43 base64url characters without padding.
const TOKEN_RE = /^wpb_([sanj])_([A-Za-z0-9_-]{43})$/;
const TOKEN_ANYWHERE = /wpb_[sanj]_[A-Za-z0-9_-]{43}/g;

const HOUR = 60 * 60 * 1000;
/** Default lifetimes; null means until revoked (API tokens may be given an expiry when created). */
export const TOKEN_TTL_MS: Readonly<Record<TokenKind, number | null>> = Object.freeze({
  session: 12 * HOUR,
  api: null,
  node: null,
  join: 1 * HOUR, // an operator pastes it into the agent's installer minutes after making it
});

export function generateToken(kind: TokenKind): string {
  return TOKEN_PREFIX[kind] + randomBytes(RANDOM_BYTES).toString('base64url');
}

/** The kind of a well-formed token, or undefined for anything else. */
export function tokenKind(token: string): TokenKind | undefined {
  const m = TOKEN_RE.exec(token);
  return m ? KIND_BY_LETTER[m[1] ?? ''] : undefined;
}

/**
 * What the database stores and looks tokens up by. SHA-256, not scrypt: a token holds 256 random bits, so no
 * one can guess it back from its hash however fast the hash is, and a slow hash would only cost CPU on every
 * request. The hash is there so a leaked database (or backup of it) holds no working credentials.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** For a token compared in memory rather than found by its hash in the database (e.g. a cached node key). */
export function tokenMatchesHash(token: string, storedHashHex: string): boolean {
  const stored = Buffer.from(storedHashHex, 'hex');
  const actual = createHash('sha256').update(token, 'utf8').digest();
  return stored.length === actual.length && timingSafeEqual(stored, actual);
}

/** When a token of this kind made now expires; null for kinds that live until revoked. */
export function expiryFor(kind: TokenKind, now: Date = new Date(), ttlMs: number | null = TOKEN_TTL_MS[kind]): Date | null {
  return ttlMs === null ? null : new Date(now.getTime() + ttlMs);
}

/** Expired at exactly its expiry instant; null never expires. */
export function isExpired(expiresAt: Date | null, now: Date = new Date()): boolean {
  return expiresAt !== null && now.getTime() >= expiresAt.getTime();
}

export interface BearerCredential {
  kind: Exclude<TokenKind, 'join'>;
  token: string;
}

/**
 * The token of an `Authorization: Bearer <token>` header, or undefined if the header is missing or malformed
 * (another scheme, extra parts, not one of our tokens). Join codes are refused: they are only ever posted to the
 * join endpoint, so one can never authenticate a request.
 */
export function parseBearer(header: string | undefined): BearerCredential | undefined {
  if (header === undefined || header.length > 200) return undefined;
  const m = /^Bearer +(\S+)$/i.exec(header.trim());
  const token = m?.[1];
  if (token === undefined) return undefined;
  const kind = tokenKind(token);
  return kind === undefined || kind === 'join' ? undefined : { kind, token };
}

/** Replaces every token in a text (a log line, an error message) with its kind prefix. */
export function redactTokens(text: string): string {
  return text.replace(TOKEN_ANYWHERE, (t) => `${t.slice(0, 6)}[redacted]`);
}
