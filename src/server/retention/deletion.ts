import { describe } from '../../errors.ts';
import { notifyPruneSucceeded } from '../alerts/conditions.ts';
import type { ServerContext } from '../context.ts';
import { startPeriodic } from '../periodic.ts';
import type { BackupRow } from '../db/backups.ts';
import type { PruneFailure } from './prune-failed.ts';

// Deleting a backup a prune chose: the row is claimed first (completed -> deleting, see
// RetentionRepo.claimForDeletion), then the object goes, then the row, so no row ever points
// at nothing it claims to hold. When the object cannot be deleted the row stays 'deleting'
// (hidden from lists and downloads) with the error and a retry time, backing off from one
// minute to six hours; an audit entry and ctx.pruneFailed report it. retryDeletionsOnce() is
// the background pass that tries again (started by startDeletionRetrier, like the reaper).

/** How long a claimed deletion may take before the retry pass may take it over. */
export const CLAIM_MS = 15 * 60_000;
const FIRST_RETRY_MS = 60_000;
const MAX_RETRY_MS = 6 * 3600_000;

export function retryDelayMs(attempts: number): number {
  return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, attempts - 1));
}

export type DeleteOutcome = { deleted: true } | { deleted: false; error: string; retryAt: number };

export interface Actor {
  userId: string | null;
  via: 'api' | 'cli' | 'after_backup' | 'retry';
}

/** Deletes the object of a row already marked 'deleting', then the row. Never throws for a storage failure. */
export async function finishDeletion(ctx: ServerContext, row: BackupRow, actor: Actor, reason: string): Promise<DeleteOutcome> {
  try {
    const { storage } = await ctx.storage.require(row.storageId);
    await storage.delete(row.key);
  } catch (err) {
    return failed(ctx, row, actor, describe(err));
  }
  await ctx.repos.backups.remove(row.id);
  await ctx.repos.audit.record({
    userId: actor.userId, action: 'backup.prune', targetType: 'backup', targetId: row.id,
    detail: { site_id: row.siteId, key: row.key, size: row.size, reason, via: actor.via, attempts: row.deleteAttempts + 1 },
  });
  ctx.events.publish(row.siteId);
  // A retry that succeeded may end the site's "prune failed" alert: when nothing else of it waits.
  if (row.deleteAttempts > 0 && !(await ctx.repos.retention.pendingDeletions(row.siteId)).some((b) => b.deleteError !== null)) await notifyPruneSucceeded(ctx, row.siteId);
  return { deleted: true };
}

async function failed(ctx: ServerContext, row: BackupRow, actor: Actor, error: string): Promise<DeleteOutcome> {
  const attempts = row.deleteAttempts + 1;
  const retryAt = ctx.now() + retryDelayMs(attempts);
  await ctx.repos.retention.deletionFailed(row.id, error, retryAt);
  await ctx.repos.audit.record({
    userId: actor.userId, action: 'backup.delete_failed', targetType: 'backup', targetId: row.id,
    detail: { site_id: row.siteId, storage_id: row.storageId, key: row.key, error, attempts, retry_at: new Date(retryAt).toISOString(), via: actor.via },
  });
  const failure: PruneFailure = { backupId: row.id, siteId: row.siteId, storageId: row.storageId, key: row.key, error, attempts, retryAt };
  ctx.pruneFailed.emit(failure);
  return { deleted: false, error, retryAt };
}

export interface RetryResult {
  deleted: string[];
  failed: string[];
}

/** One pass: every deletion whose retry time has come, each taken by exactly one server. */
export async function retryDeletionsOnce(ctx: ServerContext, now: number = ctx.now()): Promise<RetryResult> {
  const result: RetryResult = { deleted: [], failed: [] };
  for (const row of await ctx.repos.retention.dueDeletions(now)) {
    if (!(await ctx.repos.retention.claimRetry(row, now + CLAIM_MS))) continue;
    const out = await finishDeletion(ctx, row, { userId: null, via: 'retry' }, row.deleteError ? `retry after: ${row.deleteError}` : 'retry');
    (out.deleted ? result.deleted : result.failed).push(row.id);
  }
  return result;
}

export interface DeletionRetrier {
  runOnce(): Promise<RetryResult>;
  stop(): Promise<void>;
}

/** Starts the retry timer (unref'd). Call stop() before closing the database. */
export function startDeletionRetrier(ctx: ServerContext, opts: { intervalMs?: number; log?: (message: string, err?: unknown) => void } = {}): DeletionRetrier {
  const log = opts.log ?? ((m: string, e?: unknown) => ctx.log.error({ err: e }, `retention: ${m}`));
  return startPeriodic(() => retryDeletionsOnce(ctx, ctx.now()), { intervalMs: opts.intervalMs ?? 30_000, onError: (err) => log('Deletion retry pass failed', err), onPass: (ms) => ctx.metrics.passRan('deletion_retry', ms) });
}
