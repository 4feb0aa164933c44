import type { Static } from '@sinclair/typebox';
import type { BackupStatus, Stage } from '../../api/formats.ts';
import type { Backup, BackupStatusBody, Site } from '../../api/types.ts';
import { notFound } from '../api-error.ts';
import type { Action, Principal } from '../auth/roles.ts';
import { prefetchedSites } from '../auth/prefetched.ts';
import type { ServerContext } from '../context.ts';
import type { BackupRow } from '../db/backups.ts';
import type { BackupState, SiteRow } from '../db/sites.ts';
import { must } from '../route.ts';
import { iso, uuidParams } from './schema.ts';

// What the site and backup routes share: schemas, loading a row and checking the caller may
// act on it (ids from the database), and turning rows into the API's snake_case bodies.

export const idParams = uuidParams('id');

export type IdParams = Static<typeof idParams>;

export function statusBody(siteId: string, s: BackupState): BackupStatusBody {
  return {
    site_id: siteId,
    status: s.status as BackupStatus,
    progress: s.progress,
    stage: s.stage as Stage | null,
    stage_detail: s.stageDetail,
    error: s.error,
    started_at: iso(s.startedAt),
    finished_at: iso(s.finishedAt),
    backup_id: s.status === 'completed' ? s.lastBackupId : null,
    job_id: s.currentJobId,
  };
}

export function siteBody(s: SiteRow): Site {
  return {
    id: s.id,
    node_id: s.nodeId,
    name: s.name,
    wp_path: s.wpPath,
    db_name: s.dbName,
    excludes: s.excludes,
    quota_bytes: s.quotaBytes,
    created_at: new Date(s.createdAt).toISOString(),
    backup: statusBody(s.id, s),
  };
}

export function backupBody(b: BackupRow): Backup {
  return {
    id: b.id,
    site_id: b.siteId,
    storage_id: b.storageId,
    key: b.key,
    filename: b.filename,
    size: b.size ?? 0,
    sha256: b.sha256 ?? '',
    status: 'completed',
    created_at: new Date(b.createdAt).toISOString(),
    pinned: b.pinned,
  };
}

/**
 * The site, after checking the caller may do action on it. An unknown id is 404 only for
 * callers allowed that action on any site; to everyone else it is 403, like a foreign site,
 * so ids cannot be probed.
 */
export async function siteFor(ctx: ServerContext, principal: Principal | undefined, action: Action, id: string): Promise<{ site: SiteRow; principal: Principal }> {
  // Read with the token when the route prefetches it (route.ts), else now.
  const pre = prefetchedSites.get(principal, id);
  const site = pre ? pre.row : await ctx.repos.sites.get(id);
  if (!site) {
    must(principal, action, {});
    throw notFound('Site', id);
  }
  return { site, principal: must(principal, action, { siteId: site.id, nodeId: site.nodeId }) };
}

/** A completed backup and its site, after checking the caller may do action on that site. */
export async function backupFor(
  ctx: ServerContext, principal: Principal | undefined, action: Action, id: string,
): Promise<{ backup: BackupRow; site: SiteRow; principal: Principal }> {
  const backup = await ctx.repos.backups.get(id);
  const site = backup && (await ctx.repos.sites.get(backup.siteId));
  if (!backup || !site) {
    must(principal, action, {});
    throw notFound('Backup', id);
  }
  const p = must(principal, action, { siteId: site.id, nodeId: site.nodeId });
  return { backup, site, principal: p };
}
