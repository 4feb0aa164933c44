// Password hashing (scrypt) and the password policy. Stored form: `scrypt$N$r$p$salt$hash` (salt and hash in
// base64), so the cost can be raised later: old hashes still verify, and needsRehash says when to re-hash them.

// The default import, not named ones: verify calls crypto.timingSafeEqual through it so a test can observe it.
import crypto from 'node:crypto';
import { failure } from '../../errors.ts';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
  saltBytes: number;
  keyBytes: number;
}

/** OWASP's N=2^15, r=8, p=3: 32 MiB per hash, ~0.2 s of CPU. */
export const CURRENT_PARAMS: Readonly<ScryptParams> = Object.freeze({ N: 2 ** 15, r: 8, p: 3, saltBytes: 16, keyBytes: 32 });

// A tampered or corrupt stored string must not make us allocate gigabytes.
const MAX_MEMORY = 256 * 1024 * 1024;

/** What OpenSSL allocates for these parameters (Node's default maxmem, 32 MiB, is just short of N=2^15, r=8). */
export function scryptMaxmem(params: Pick<ScryptParams, 'N' | 'r' | 'p'>): number {
  return 128 * params.r * (params.N + 2 + params.p);
}

// NFKC so the same password typed on different keyboards / OSes (composed vs decomposed accents) still matches.
function derive(password: string, salt: Buffer, keyBytes: number, params: ScryptParams): Promise<Buffer> {
  const { N, r, p } = params;
  return new Promise((resolve, reject) => {
    crypto.scrypt(password.normalize('NFKC'), salt, keyBytes, { N, r, p, maxmem: scryptMaxmem(params) }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export async function hashPassword(password: string, params: ScryptParams = CURRENT_PARAMS): Promise<string> {
  const salt = crypto.randomBytes(params.saltBytes);
  const key = await derive(password, salt, params.keyBytes, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64'), key.toString('base64')].join('$');
}

interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  key: Buffer;
}

function strictInt(s: string): number {
  return /^[1-9][0-9]{0,9}$/.test(s) ? Number(s) : NaN;
}

// Buffer.from(…, 'base64') silently skips junk, so insist the text re-encodes to itself.
function strictBase64(s: string): Buffer | undefined {
  const buf = Buffer.from(s, 'base64');
  return buf.length > 0 && buf.toString('base64') === s ? buf : undefined;
}

/** Parses a stored hash; throws a `failed` error (a server-side data fault) that never quotes the string. */
export function parsePasswordHash(stored: string): ParsedHash {
  const parts = stored.split('$');
  const [tag, n, r, p, saltText, keyText] = parts;
  const N = strictInt(n ?? '');
  const params = { N, r: strictInt(r ?? ''), p: strictInt(p ?? '') };
  const salt = strictBase64(saltText ?? '');
  const key = strictBase64(keyText ?? '');
  const ok =
    parts.length === 6 && tag === 'scrypt' && salt && key && salt.length >= 16 && key.length >= 16 && key.length <= 64 &&
    N > 1 && (N & (N - 1)) === 0 && params.r > 0 && params.p > 0 && params.p <= 16 && scryptMaxmem(params) <= MAX_MEMORY;
  if (!ok) throw failure('Stored password hash is malformed');
  return { params: { ...params, saltBytes: salt.length, keyBytes: key.length }, salt, key };
}

/**
 * True when the password matches. With no stored hash (unknown user) it still spends one hash's time and
 * returns false, so response time does not tell which emails have accounts.
 */
export async function verifyPassword(password: string, stored: string | null | undefined): Promise<boolean> {
  if (stored == null) {
    await derive(password, crypto.randomBytes(CURRENT_PARAMS.saltBytes), CURRENT_PARAMS.keyBytes, CURRENT_PARAMS);
    return false;
  }
  const { params, salt, key } = parsePasswordHash(stored);
  const derived = await derive(password, salt, key.length, params);
  return crypto.timingSafeEqual(derived, key);
}

/** True when the stored hash uses other parameters than CURRENT_PARAMS (or is unreadable): re-hash at next login. */
export function needsRehash(stored: string): boolean {
  try {
    const { params } = parsePasswordHash(stored);
    return (Object.keys(CURRENT_PARAMS) as (keyof ScryptParams)[]).some((k) => params[k] !== CURRENT_PARAMS[k]);
  } catch {
    return true;
  }
}

export { checkPasswordPolicy, MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH } from './password-policy.ts';
export type { PolicyResult } from './password-policy.ts';
