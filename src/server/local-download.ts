import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { resolve, sep } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { validateKey } from '../storage/keys.ts';
import { ApiError, forbidden, notFound } from './api-error.ts';
import type { ServerContext } from './context.ts';
import { SecretBox, loadSecretKey } from './db/secrets.ts';
import { defineRoute } from './route.ts';
import { storageRegistry } from './storage-registry.ts';

// Download URLs for objects in local storage: what S3's presigned URLs are for S3. A token
// names the provider, the key and the expiry, signed with HMAC-SHA256 under a key derived
// (HKDF) from the server's secret key, so every server sharing WPBACKUP_SECRET_KEY accepts
// the URLs of the others. GET /api/v1/downloads/<token> streams the object; a token that
// was altered, expired, or names a key outside the provider's directory is refused with 403.
// The token is a wildcard segment: it is longer than a route parameter may be (100 chars).

const VERSION = 'v1';
const INFO = 'wpbackup local download v1';
export const DOWNLOAD_PATH = '/api/v1/downloads/';

const keys = new WeakMap<ServerContext, Buffer>();

/**
 * The HMAC key. Derived from the secret box's key when this process can read it (the same
 * WPBACKUP_SECRET_KEY or <dataDir>/secret.key the box was opened with); otherwise a random
 * per-process key, so URLs then only work on the server that made them.
 */
function signingKey(ctx: ServerContext): Buffer {
  let key = keys.get(ctx);
  if (key) return key;
  let secret: Buffer | undefined;
  try {
    const loaded = loadSecretKey({ dataDir: ctx.config.dataDir, env: process.env });
    if (new SecretBox(loaded).keyId === ctx.secrets.keyId) secret = loaded;
  } catch {
    secret = undefined;
  }
  key = Buffer.from(hkdfSync('sha256', secret ?? randomBytes(32), Buffer.alloc(0), INFO, 32));
  keys.set(ctx, key);
  return key;
}

interface Claims {
  providerId: string;
  key: string;
  /** Epoch seconds. */
  expires: number;
}

function mac(ctx: ServerContext, payload: string): string {
  return createHmac('sha256', signingKey(ctx)).update(`${VERSION}.${payload}`).digest('base64url');
}

/** A token for key in provider's directory, valid until expiresAt (epoch seconds). */
export function downloadToken(ctx: ServerContext, c: Claims): string {
  const payload = Buffer.from(JSON.stringify([c.providerId, c.key, c.expires])).toString('base64url');
  return `${payload}.${mac(ctx, payload)}`;
}

/** The URL LocalStorage.presignGet returns: <publicUrl>/api/v1/downloads/<token>. */
export function signDownload(ctx: ServerContext, providerId: string, key: string, expiresInSeconds: number): string {
  const token = downloadToken(ctx, { providerId, key, expires: Math.floor(Date.now() / 1000) + expiresInSeconds });
  return `${ctx.config.publicUrl.replace(/\/+$/, '')}${DOWNLOAD_PATH}${token}`;
}

/** The claims of a genuine, unexpired token; throws 403 otherwise. */
export function verifyDownloadToken(ctx: ServerContext, token: string, nowMs = Date.now()): Claims {
  const bad = forbidden('This download link is not valid: ask for a new one');
  const dot = token.indexOf('.');
  if (dot <= 0 || dot !== token.lastIndexOf('.')) throw bad;
  const payload = token.slice(0, dot);
  const given = Buffer.from(token.slice(dot + 1), 'base64url');
  const expected = Buffer.from(mac(ctx, payload), 'base64url');
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

function contentDisposition(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

export function registerLocalDownloadRoute(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, { '*': string }>(app, ctx, {
    method: 'GET',
    url: `${DOWNLOAD_PATH}*`,
    auth: 'public',
    summary: 'Download a backup from local storage with a signed link (from the download endpoint; valid one hour)',
    tags: ['backups'],
    schema: {
      params: { type: 'object', additionalProperties: false, properties: { '*': { type: 'string', minLength: 1, maxLength: 8192 } } },
    },
    handler: async ({ params, reply }) => {
      const claims = verifyDownloadToken(ctx, params['*']);
      try {
        validateKey(claims.key);
      } catch {
        throw forbidden('This download link is not valid: ask for a new one');
      }
      const found = await storageRegistry(ctx).get(claims.providerId);
      if (!found || found.provider.type !== 'local' || !found.provider.rootPath) throw notFound('Download', 'link target');
      // validateKey already rules out "..", absolute keys and control characters; this is the belt to those braces.
      const root = resolve(found.provider.rootPath);
      if (!resolve(root, claims.key).startsWith(root + sep)) throw forbidden('This download link is not valid: ask for a new one');
      const info = await found.storage.head(claims.key);
      if (!info) throw new ApiError(404, 'not_found', 'The backup behind this link no longer exists');
      const body = await found.storage.get(claims.key);
      void reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(info.size))
        .header('content-disposition', contentDisposition(claims.key))
        .header('cache-control', 'private, no-store');
      return body;
    },
  });
}
