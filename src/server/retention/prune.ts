import type { ServerContext } from '../context.ts';
import type { BackupRow } from '../db/backups.ts';
import { CLAIM_MS, finishDeletion, type Actor } from './deletion.ts';
import { applyPolicy } from './policy.ts';
import { describePolicy, effectivePolicy, type PolicySource } from './settings.ts';

// A prune of one site: the policy (settings.ts) applied to its completed backups
// (policy.ts), then the guards no policy overrides: the newest completed backup stays, a
// pinned one stays, and nothing of a site whose backup is queued or running is touched. A
// dry run returns the same plan without deleting. Pinned backups still count in the
// policy's buckets (like restic's tagged snapshots); they are just never removed.

export interface KeptBackup {
  backup: BackupRow;
  /** Why: the policy's rules ("last", "daily", ...), "pinned", "newest", or "policy is empty". */
  keptBy: string[];
}

export interface RemovedBackup {
  backup: BackupRow;
  reason: string;
  /** After a real prune: whether the deletion went through (false: it failed and is retried; unset: dry run, or left alone). */
  deleted?: boolean;
  /** Why the deletion failed, or why the backup was left alone after all. */
  error?: string;
}

export interface SitePrune {
  siteId: string;
  source: PolicySource;
  policy: string;
  timeZone: string;
  /** Why nothing was done (a backup queued or running). */
  skipped?: string;
  keep: KeptBackup[];
  remove: RemovedBackup[];
}

export async function planSite(ctx: ServerContext, siteId: string): Promise<SitePrune> {
  const eff = await effectivePolicy(ctx.repos.retention, siteId);
  const base = { siteId, source: eff.source, policy: describePolicy(eff.policy), timeZone: eff.timeZone };
  const backups = await ctx.repos.retention.completed(siteId);
  const active = await ctx.repos.jobs.activeForSite(siteId);
  if (active) {
    return { ...base, skipped: `a backup of this site is ${active.state} (job ${active.id}); prune it after it ends`, keep: backups.map((backup) => ({ backup, keptBy: ['site busy'] })), remove: [] };
  }
  const result = applyPolicy(backups, eff.policy, eff.timeZone);
  const newest = backups[0]?.id;
  const keep: KeptBackup[] = result.keep.map((k) => ({ backup: k.backup, keptBy: [...k.keptBy] }));
  const remove: RemovedBackup[] = [];
  for (const backup of result.remove) {
    const guards = [...(backup.id === newest ? ['newest'] : []), ...(backup.pinned ? ['pinned'] : [])];
    if (guards.length > 0) keep.push({ backup, keptBy: guards });
    else remove.push({ backup, reason: `kept by no rule of the ${eff.source} policy (${base.policy}, buckets in ${eff.timeZone})` });
  }
  for (const k of keep) if (k.backup.pinned && !k.keptBy.includes('pinned')) k.keptBy.push('pinned');
  keep.sort((a, b) => b.backup.createdAt - a.backup.createdAt || (a.backup.id < b.backup.id ? 1 : -1));
  return { ...base, keep, remove };
}

/** Plans, and unless dryRun deletes what the plan removes (each object, then its row). */
export async function pruneSite(ctx: ServerContext, siteId: string, opts: { dryRun: boolean; actor: Actor }): Promise<SitePrune> {
  const plan = await planSite(ctx, siteId);
  if (opts.dryRun || plan.remove.length === 0) return plan;
  for (const r of plan.remove) {
    // A backup queued since the plan was made stops the prune: nothing of a busy site goes.
    const active = await ctx.repos.jobs.activeForSite(siteId);
    if (active) {
      r.error = `left alone: a backup of this site is ${active.state} (job ${active.id})`;
      continue;
    }
    // Claimed one by one: a pin, or another server's prune, since the plan wins over it.
    const row = await ctx.repos.retention.claimForDeletion(r.backup.id, ctx.now() + CLAIM_MS);
    if (!row) {
      r.error = 'left alone: pinned, deleted or claimed by another prune since the plan was made';
      continue;
    }
    const out = await finishDeletion(ctx, row, opts.actor, r.reason);
    r.deleted = out.deleted;
    if (!out.deleted) r.error = `${out.error}; retried from ${new Date(out.retryAt).toISOString()}`;
  }
  return plan;
}

/** Every site with completed backups, one after the other. */
export async function pruneFleet(ctx: ServerContext, opts: { dryRun: boolean; actor: Actor }): Promise<SitePrune[]> {
  const out: SitePrune[] = [];
  for (const siteId of await ctx.repos.retention.sitesWithBackups()) out.push(await pruneSite(ctx, siteId, opts));
  return out;
}

/** The prune after each completed backup (subscribed to ctx.jobEnded in start.ts). */
export function pruneAfterBackups(ctx: ServerContext): () => void {
  return ctx.jobEnded.subscribe(async (job) => {
    if (job.type !== 'backup' || job.state !== 'done') return;
    await pruneSite(ctx, job.siteId, { dryRun: false, actor: { userId: null, via: 'after_backup' } });
  });
}
