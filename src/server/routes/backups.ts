import type { FastifyInstance } from 'fastify';
import { Backup, BackupList, BackupListQuery, DownloadResponse } from '../../api/types.ts';
import { describe } from '../../errors.ts';
import { ApiError, conflict, notFound } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import { defineRoute, replied } from '../route.ts';
import { errorResponses, errorResponsesWithDetail, noContent, ok } from './error-responses.ts';
import { registerDownloadRoutes } from './downloads.ts';
import { backupBody, backupFor, idParams, siteFor, type IdParams } from './site-common.ts';
import { noQuery, userId } from './schema.ts';

// Stored backups: list a site's, read one, get a download URL (presigned S3 URL, or a
// server-signed one for local storage), delete one (object first, then the row).

export const DOWNLOAD_EXPIRES_SECONDS = 3600;

export function registerBackupRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, IdParams, BackupListQuery, BackupList>(app, ctx, {
    method: 'GET',
    url: '/api/v1/sites/:id/backups',
    auth: 'user',
    summary: "A site's completed backups, newest first (before: created_at in epoch ms, to page back)",
    tags: ['backups'],
    schema: { params: idParams, querystring: BackupListQuery, response: { ...ok(BackupList, 'The backups'), ...errorResponses({ 404: 'No such site' }) } },
    handler: async ({ params, query, principal }) => {
      const { site } = await siteFor(ctx, principal, 'backup.read', params.id);
      const limit = Math.min(Number(query.limit ?? 100), 1000);
      const rows = await ctx.repos.backups.listBySite(site.id, { limit, before: query.before === undefined ? undefined : Number(query.before) });
      return { backups: rows.filter((b) => b.status === 'completed').map(backupBody) };
    },
  });

  defineRoute<unknown, IdParams, Record<string, string>, Backup>(app, ctx, {
    method: 'GET',
    url: '/api/v1/backups/backups/:id',
    auth: 'user',
    summary: 'One backup',
    tags: ['backups'],
    schema: { params: idParams, querystring: noQuery, response: { ...ok(Backup, 'The backup'), ...errorResponses({ 404: 'No such backup' }) } },
    handler: async ({ params, principal }) => {
      const { backup } = await backupFor(ctx, principal, 'backup.read', params.id);
      if (backup.status !== 'completed') throw notFound('Backup', params.id);
      return backupBody(backup);
    },
  });

  defineRoute<unknown, IdParams, Record<string, string>, DownloadResponse>(app, ctx, {
    method: 'GET',
    url: '/api/v1/backups/backups/:id/download',
    auth: 'user',
    summary: 'A URL anyone can download the backup with for one hour (presigned S3 URL, or a server-signed link for local storage), as url and download_url',
    tags: ['backups'],
    schema: {
      params: idParams, querystring: noQuery,
      response: {
        ...ok(DownloadResponse, 'The download link'),
        ...errorResponsesWithDetail(400, 401, 403, 404, { 409: 'The backup\'s storage provider is gone' }),
      },
    },
    errorDetail: true,
    handler: async ({ params, principal }) => {
      const { backup, principal: p } = await backupFor(ctx, principal, 'backup.download', params.id);
      if (backup.status !== 'completed') throw notFound('Backup', params.id);
      const found = await ctx.storage.get(backup.storageId);
      if (!found) throw new ApiError(409, 'storage_missing', `The storage provider of backup ${backup.id} no longer exists`);
      const url = await found.storage.presignGet(backup.key, DOWNLOAD_EXPIRES_SECONDS);
      await ctx.repos.audit.record({ userId: userId(p), action: 'backup.download', targetType: 'backup', targetId: backup.id, detail: { site_id: backup.siteId } });
      return { url, download_url: url, expires_in_seconds: DOWNLOAD_EXPIRES_SECONDS, filename: backup.filename, size: backup.size ?? 0, sha256: backup.sha256 ?? '' };
    },
  });

  defineRoute<unknown, IdParams, Record<string, string>, unknown>(app, ctx, {
    method: 'DELETE',
    url: '/api/v1/backups/backups/:id',
    auth: 'user',
    summary: 'Delete a backup: its stored object, then its row (usage drops with it)',
    tags: ['backups'],
    schema: { params: idParams, querystring: noQuery, response: { ...noContent('Deleted'), ...errorResponses({ 404: 'No such backup' }, { 409: 'The backup is still being uploaded' }, { 502: 'Its storage refused the delete; it is marked for deletion, try again' }) } },
    handler: async ({ params, principal }) => {
      const { backup, principal: p } = await backupFor(ctx, principal, 'backup.delete', params.id);
      if (backup.status === 'uploading') throw conflict(`Backup ${backup.id} is still being uploaded: stop or reset the site's backup first`);
      if (backup.pinned) throw conflict(`Backup ${backup.id} is pinned: unpin it first (wpbackup backups unpin ${backup.id})`);
      // Marked first: a crash between the object and the row leaves a row to retry.
      const marked = await ctx.repos.backups.markDeleting(backup.id);
      if (!marked) throw notFound('Backup', backup.id);
      const found = await ctx.storage.get(backup.storageId);
      if (found) {
        try {
          await found.storage.delete(backup.key);
        } catch (err) {
          throw new ApiError(502, 'storage_error', `Could not delete backup ${backup.id} from its storage (${describe(err)}); it is marked for deletion, try again`);
        }
      }
      await ctx.repos.backups.remove(backup.id);
      await ctx.repos.audit.record({
        userId: userId(p), action: 'backup.delete', targetType: 'backup', targetId: backup.id,
        detail: { site_id: backup.siteId, key: backup.key, size: backup.size, storage_found: found !== undefined },
      });
      return replied(204, undefined);
    },
  });

  registerDownloadRoutes(app, ctx);
}
