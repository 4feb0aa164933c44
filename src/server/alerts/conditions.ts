import { longestGapMs } from '../schedule-spec.ts';
import { effectiveSpec } from '../services/schedules.ts';
import type { ServerContext } from '../context.ts';
import type { JobRow } from '../db/jobs.ts';
import type { CronSpec } from '../db/schedules.ts';
import type { SiteRow } from '../db/sites.ts';
import { alertsRepo, deliveriesRepo, dispatch, ping, track } from './dispatch.ts';
import { nodeEvent, siteEvent, type AlertEvent, type AlertKind } from './events.ts';

// Conditions that raise an alert once and clear with one "recovered" (backup failed, backup
// stale, agent offline, storage near quota, prune failed), and the one-off events (a backup
// succeeded). Raising and clearing are conditional UPDATEs on alert_state
// (alert-deliveries.ts), so a site that fails every hour is told once, whichever server ends
// its jobs; the daily reminders are the background pass's (pass.ts). The raised event is
// kept with the condition, so a reminder repeats what was said.


export const siteSubject = (siteId: string): string => `site:${siteId}`;
export const nodeSubject = (nodeId: string): string => `node:${nodeId}`;

/**
 * A site's dead man's switch window when it has none of its own: twice the longest gap of the
 * schedule that applies to it, so one missed run is forgiven and two are not. null (no switch)
 * for a site without a schedule: its backups are taken by hand, whenever.
 */
export async function defaultFreshnessMs(ctx: ServerContext, siteId: string): Promise<number | null> {
  const [row, fleet] = await Promise.all([ctx.repos.schedules.get(siteId), ctx.repos.schedules.fleet()]);
  return defaultWindowMs(effectiveSpec(row, fleet), ctx.now());
}

/** The default window under the schedule that applies (null: none), from `now`. */
export function defaultWindowMs(spec: Pick<CronSpec, 'cron' | 'timezone'> | null, now: number): number | null {
  const gap = spec ? longestGapMs(spec, now) : null;
  return gap === null ? null : 2 * gap;
}

/** Raises the condition and, if this caller raised it, sends the event. */
export async function raiseAndTell(ctx: ServerContext, subject: string, e: AlertEvent): Promise<boolean> {
  if (!(await deliveriesRepo(ctx).raise(subject, e.kind, ctx.now(), e))) return false;
  await dispatch(ctx, e);
  return true;
}

/** The stage named in an agent's error ("... (during upload)"), when the site's row has none. */
function stageIn(error: string): string | null {
  return /\(during ([a-z_]+)\)$/.exec(error)?.[1] ?? null;
}

/** What alerts do when a job ends (ctx.jobEnded): pings, failed / recovered / succeeded, quotas. */
export async function onJobEnded(ctx: ServerContext, job: JobRow): Promise<void> {
  if (job.type !== 'backup') return;
  const site = await ctx.repos.sites.get(job.siteId);
  if (!site) return;
  if (job.state === 'failed') await backupFailed(ctx, job, site);
  else if (job.state === 'done') await backupDone(ctx, job, site);
}

async function backupFailed(ctx: ServerContext, job: JobRow, site: SiteRow): Promise<void> {
  const error = job.error ?? 'The backup failed without a message';
  const stage = site.stage ?? stageIn(error);
  await ping(ctx, site.id, `fail:${job.id}`, '/fail', error);
  const lines = [`The backup of ${site.name} failed${stage ? ` during ${stage}` : ''}.`, `Error: ${error}`];
  await raiseAndTell(ctx, siteSubject(site.id), siteEvent(ctx, 'backup.failed', `backup.failed:${job.id}`, site, lines, { job_id: job.id, stage, error }));
}

async function backupDone(ctx: ServerContext, job: JobRow, site: SiteRow): Promise<void> {
  await ping(ctx, site.id, `ok:${job.id}`, '', '');
  const d = deliveriesRepo(ctx);
  const failedSince = await d.clear(siteSubject(site.id), 'backup.failed');
  const staleSince = await d.clear(siteSubject(site.id), 'backup.stale');
  const since = failedSince ?? staleSince;
  if (since !== undefined) {
    const after: AlertKind = failedSince !== undefined ? 'backup.failed' : 'backup.stale';
    const what = after === 'backup.failed' ? 'failing' : 'without a completed backup';
    await dispatch(ctx, siteEvent(ctx, 'site.recovered', `site.recovered:${job.id}`, site, [`A backup of ${site.name} completed; it had been ${what} since ${new Date(since).toISOString()}.`], { job_id: job.id, after, since: new Date(since).toISOString() }));
  }
  await dispatch(ctx, siteEvent(ctx, 'backup.succeeded', `backup.succeeded:${job.id}`, site, [`The backup of ${site.name} completed.`], { job_id: job.id }));
  await checkQuotas(ctx, site);
}

/** Storage near its quota: the site's and its node's usage against the quota_percent threshold. */
export async function checkQuotas(ctx: ServerContext, site: SiteRow): Promise<void> {
  const { quotaPercent } = await alertsRepo(ctx).settings();
  const d = deliveriesRepo(ctx);
  const near = (used: number, quota: number): boolean => quota === 0 || (used / quota) * 100 >= quotaPercent;
  if (site.quotaBytes !== null) {
    const used = await ctx.repos.backups.usageBySite(site.id);
    const lines = [`Backups of ${site.name} use ${used} of its ${site.quotaBytes} bytes (threshold ${quotaPercent}%).`];
    if (near(used, site.quotaBytes)) await raiseAndTell(ctx, siteSubject(site.id), siteEvent(ctx, 'storage.quota', `storage.quota:${site.id}:${ctx.now()}`, site, lines, { used_bytes: used, quota_bytes: site.quotaBytes }));
    else await d.clear(siteSubject(site.id), 'storage.quota');
  }
  const node = await ctx.repos.nodes.get(site.nodeId);
  if (node?.quotaBytes == null) return;
  const used = await ctx.repos.backups.usageByNode(node.id);
  if (!near(used, node.quotaBytes)) {
    await d.clear(nodeSubject(node.id), 'storage.quota');
    return;
  }
  const siteIds = (await ctx.repos.sites.list({ nodeId: node.id })).map((s) => s.id);
  const lines = [`Backups of the sites on ${node.hostname} use ${used} of its ${node.quotaBytes} bytes (threshold ${quotaPercent}%).`];
  await raiseAndTell(ctx, nodeSubject(node.id), nodeEvent(ctx, 'storage.quota', `storage.quota:${node.id}:${ctx.now()}`, node, siteIds, lines, { used_bytes: used, quota_bytes: node.quotaBytes }));
}

/**
 * For retention: a prune of the site's backups failed (deleting objects or rows). Told once,
 * reminded daily while it lasts; notifyPruneSucceeded clears it (silently).
 */
export async function notifyPruneFailed(ctx: ServerContext, p: { siteId: string; error: string; backupIds?: string[] }): Promise<void> {
  const site = await ctx.repos.sites.get(p.siteId);
  if (!site) return;
  const lines = [`Pruning old backups of ${site.name} failed: ${p.error}`, ...(p.backupIds?.length ? [`Backups not deleted: ${p.backupIds.join(', ')}`] : [])];
  await raiseAndTell(ctx, siteSubject(site.id), siteEvent(ctx, 'prune.failed', `prune.failed:${site.id}:${ctx.now()}`, site, lines, { error: p.error, backup_ids: p.backupIds ?? [] }));
}

export async function notifyPruneSucceeded(ctx: ServerContext, siteId: string): Promise<void> {
  await deliveriesRepo(ctx).clear(siteSubject(siteId), 'prune.failed');
}

/** An agent took a backup job: the site's ping URL hears /start (in the background; the poll answers at once). */
export function pingJobStarted(ctx: ServerContext, job: JobRow): void {
  if (job.type === 'backup') track(ctx, ping(ctx, job.siteId, `start:${job.id}`, '/start', ''));
}
