import { Type, type Static } from '@sinclair/typebox';
import { resolve, sep } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { validateKey } from '../../storage/keys.ts';
import { ApiError, forbidden, notFound } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import { DOWNLOAD_PATH } from '../local-download.ts';
import { defineRoute } from '../route.ts';
import { errorResponses, successAs } from './error-responses.ts';

// GET /api/v1/downloads/<token>: streams an object of a local storage provider to whoever
// holds a link the server signed (local-download.ts). A token that was altered, expired, or
// names a key outside the provider's directory is refused with 403. The token is a wildcard
// segment: it is longer than a route parameter may be (100 chars).

/** The signed token: longer than a route parameter may be, so the rest of the path. */
const DownloadParams = Type.Object({ '*': Type.String({ minLength: 1, maxLength: 8192 }) }, { additionalProperties: false });

function contentDisposition(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

export function registerDownloadRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, Static<typeof DownloadParams>>(app, ctx, {
    method: 'GET',
    url: `${DOWNLOAD_PATH}*`,
    auth: 'public',
    summary: 'Download a backup from local storage with a signed link (from the download endpoint; valid one hour)',
    tags: ['backups'],
    schema: {
      params: DownloadParams,
      response: { ...successAs(200, 'The archive', 'application/octet-stream', { type: 'string', format: 'binary' }), ...errorResponses({ 403: 'The link is altered, expired or not valid' }, { 404: 'The backup behind the link no longer exists' }) },
    },
    handler: async ({ params, reply }) => {
      const claims = ctx.downloads.verify(params['*']);
      try {
        validateKey(claims.key);
      } catch {
        throw forbidden('This download link is not valid: ask for a new one');
      }
      const found = await ctx.storage.get(claims.providerId);
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
