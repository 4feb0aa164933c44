import { createHmac, timingSafeEqual } from 'node:crypto';
import { forbidden } from './api-error.ts';
import type { SecretBox } from './db/secrets.ts';

// Download URLs for objects in local storage: what S3's presigned URLs are for S3. A token
// names the provider, the key and the expiry, signed with HMAC-SHA256 under a key the secret
// box derives (HKDF) from the server's secret key, so every server sharing that key (the same
// WPBACKUP_SECRET_KEY, or the same <data dir>/secret.key) accepts the URLs of the others, also
// after a restart. routes/downloads.ts serves them; a token that was altered or expired is
// refused with 403.

const VERSION = 'v1';
const INFO = 'wpbackup local download v1';
export const DOWNLOAD_PATH = '/api/v1/downloads/';

export interface DownloadClaims {
  providerId: string;
  key: string;
  /** Epoch seconds. */
  expires: number;
}

export class DownloadLinks {
  readonly #key: Buffer;
  readonly #config: { readonly publicUrl: string };

  /** config is read at each signing: the public URL is known only once the server listens. */
  constructor(secrets: SecretBox, config: { readonly publicUrl: string }) {
    this.#key = secrets.deriveKey(INFO);
    this.#config = config;
  }

  /** A token for key in provider's directory, valid until c.expires (epoch seconds). */
  token(c: DownloadClaims): string {
    const payload = Buffer.from(JSON.stringify([c.providerId, c.key, c.expires])).toString('base64url');
    return `${payload}.${this.#mac(payload)}`;
  }

  /** The URL LocalStorage.presignGet returns: <publicUrl>/api/v1/downloads/<token>. */
  sign(providerId: string, key: string, expiresInSeconds: number): string {
    const token = this.token({ providerId, key, expires: Math.floor(Date.now() / 1000) + expiresInSeconds });
    return `${this.#config.publicUrl.replace(/\/+$/, '')}${DOWNLOAD_PATH}${token}`;
  }

  /** The claims of a genuine, unexpired token; throws 403 otherwise. */
  verify(token: string, nowMs = Date.now()): DownloadClaims {
    const bad = forbidden('This download link is not valid: ask for a new one');
    const dot = token.indexOf('.');
    if (dot <= 0 || dot !== token.lastIndexOf('.')) throw bad;
    const payload = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), 'base64url');
    const expected = Buffer.from(this.#mac(payload), 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw bad;
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      throw bad;
    }
    if (!Array.isArray(claims) || claims.length !== 3) throw bad;
    const [providerId, key, expires] = claims as unknown[];
    if (typeof providerId !== 'string' || typeof key !== 'string' || typeof expires !== 'number') throw bad;
    if (expires * 1000 <= nowMs) throw forbidden('This download link has expired: ask for a new one');
    return { providerId, key, expires };
  }

  #mac(payload: string): string {
    return createHmac('sha256', this.#key).update(`${VERSION}.${payload}`).digest('base64url');
  }
}
