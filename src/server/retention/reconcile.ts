import { isUuid } from '../../api/formats.ts';
import { describe } from '../../errors.ts';
import type { ServerContext } from '../context.ts';
import type { StoredKey } from '../db/retention.ts';

// Orphans under one storage provider, both kinds: rows that point at no object, and objects
// at a backup's place (<node uuid>/<site uuid>/<file>, the spec's storage paths, under the
// provider's prefix) that no row knows. Rows are read before the objects are listed, so a
// backup completing meanwhile is never taken for a row without an object; objects of uploads
// in progress (active jobs' keys, rows still uploading) and objects younger than the grace
// period are never orphans. With remove, each is checked again just before it goes.

export const DEFAULT_GRACE_MS = 6 * 3600_000;

export interface OrphanObject {
  key: string;
  size: number;
  modified: number;
}

export interface ReconcileReport {
  providerId: string;
  location: string;
  objectsScanned: number;
  orphanObjects: OrphanObject[];
  orphanRows: StoredKey[];
  /** Objects without a row left alone: an upload in progress, or younger than the grace period. */
  skipped: { inProgress: number; recent: number };
  removed?: { objects: number; rows: number; errors: string[] };
}

/** Keys shaped like a backup's: node uuid / site uuid / file name. */
export function isBackupKey(key: string): boolean {
  const parts = key.split('/');
  return parts.length === 3 && isUuid(parts[0] ?? '') && isUuid(parts[1] ?? '') && (parts[2] ?? '') !== '';
}

export async function reconcile(ctx: ServerContext, providerId: string, opts: { remove: boolean; graceMs?: number; userId: string | null }): Promise<ReconcileReport | undefined> {
  const found = await ctx.storage.get(providerId);
  if (!found) return undefined;
  const rows = (await ctx.repos.retention.keysOf(providerId)).filter((r) => r.status !== 'uploading');
  const inProgress = await ctx.repos.retention.keysInProgress(providerId);
  const objects = await found.storage.list('');
  const cutoff = ctx.now() - (opts.graceMs ?? DEFAULT_GRACE_MS);
  const rowKeys = new Set(rows.map((r) => r.key));
  const objectKeys = new Set(objects.map((o) => o.key));
  const report: ReconcileReport = {
    providerId, location: found.storage.location, objectsScanned: objects.length, orphanObjects: [], orphanRows: rows.filter((r) => !objectKeys.has(r.key)),
    skipped: { inProgress: 0, recent: 0 },
  };
  for (const o of objects) {
    if (!isBackupKey(o.key) || rowKeys.has(o.key)) continue;
    if (inProgress.has(o.key)) report.skipped.inProgress++;
    else if (o.modified.getTime() > cutoff) report.skipped.recent++;
    else report.orphanObjects.push({ key: o.key, size: o.size, modified: o.modified.getTime() });
  }
  if (opts.remove) report.removed = await removeOrphans(ctx, providerId, report);
  await ctx.repos.audit.record({
    userId: opts.userId, action: opts.remove ? 'storage.reconcile_delete' : 'storage.reconcile', targetType: 'storage_provider', targetId: providerId,
    detail: { orphan_objects: report.orphanObjects.length, orphan_rows: report.orphanRows.length, removed: report.removed },
  });
  return report;
}

async function removeOrphans(ctx: ServerContext, providerId: string, report: ReconcileReport): Promise<NonNullable<ReconcileReport['removed']>> {
  const { storage } = await ctx.storage.require(providerId);
  const out = { objects: 0, rows: 0, errors: [] as string[] };
  // Checked again: a row or an upload may have appeared for a key since the scan.
  const rowKeys = new Set((await ctx.repos.retention.keysOf(providerId)).map((r) => r.key));
  const inProgress = await ctx.repos.retention.keysInProgress(providerId);
  for (const o of report.orphanObjects) {
    if (rowKeys.has(o.key) || inProgress.has(o.key)) continue;
    try {
      await storage.delete(o.key);
      out.objects++;
    } catch (err) {
      out.errors.push(`object ${o.key}: ${describe(err)}`);
    }
  }
  for (const r of report.orphanRows) {
    try {
      if (await storage.head(r.key)) continue;
      if (await ctx.repos.backups.remove(r.id)) out.rows++;
      ctx.events.publish(r.siteId);
    } catch (err) {
      out.errors.push(`row ${r.id}: ${describe(err)}`);
    }
  }
  return out;
}
