import type { ServerContext } from '../context.ts';
import type { SiteFreshness } from '../db/alerts.ts';
import type { CronSpec } from '../db/schedules.ts';
import { effectiveSpec } from '../services/schedules.ts';
import { startPeriodic, yieldToRequests } from '../periodic.ts';
import type { AlertEvent } from './events.ts';
import { nodeEvent, reminderOf, siteEvent } from './events.ts';
import { alertsIdle, alertsRepo, attempt, deliveriesRepo, dispatch } from './dispatch.ts';
import { defaultWindowMs, nodeSubject, notifyPruneFailed, onJobEnded, raiseAndTell, siteSubject } from './conditions.ts';

// The time-based half of alerting, like reaper.ts: a pure pass (alertsOnce, which tests call
// with their own clock) and a timer that runs it. Each pass raises the dead man's switch of
// sites with no completed backup within their freshness window, raises / clears offline
// agents, sends daily reminders of conditions still raised, retries due deliveries and
// forgets those that ended more than 30 days ago. Safe on every server at once: each raise,
// clear, reminder and delivery is claimed by one.

const HOUR = 3_600_000;
/** How long the delivery log keeps a delivery that ended. */
export const DELIVERY_LOG_MS = 30 * 24 * HOUR;
const REMINDED: ReadonlySet<string> = new Set(['backup.failed', 'backup.stale', 'agent.offline', 'storage.quota', 'prune.failed']);

export interface PassReport {
  stale: number;
  offline: number;
  reminders: number;
  attempts: number;
}

export async function alertsOnce(ctx: ServerContext, now: number = ctx.now()): Promise<PassReport> {
  // Each step reads the fleet (on SQLite, on the server's thread): requests get a turn between them.
  const stale = await checkFreshness(ctx, now);
  await yieldToRequests();
  const offline = await checkAgents(ctx, now);
  await yieldToRequests();
  const reminders = await remind(ctx, now);
  await yieldToRequests();
  return { stale, offline, reminders, attempts: await retryDue(ctx, now) };
}

async function checkFreshness(ctx: ServerContext, now: number): Promise<number> {
  const d = deliveriesRepo(ctx);
  const raised = new Set((await d.active('backup.stale')).map((a) => a.subject));
  let n = 0;
  // Sites with their schedules read a page at a time (SQLite runs each page on the server's
  // thread: requests get their turn between pages), each distinct schedule's window computed
  // once: a pass over 10,000 sites is a dozen queries, not two per site.
  const fleet = await ctx.repos.schedules.fleet();
  const windowOf = memoWindows(ctx.now());
  for await (const r of freshnessPages(ctx)) {
    const subject = siteSubject(r.siteId);
    const window = r.freshnessMs ?? windowOf(effectiveSpec(r.schedule, fleet));
    const last = r.lastOk ?? r.createdAt;
    const stale = window !== null && now - last > window;
    if (stale && !raised.has(subject)) {
      const site = await ctx.repos.sites.get(r.siteId);
      if (!site) continue;
      const lines = [`${site.name} has no completed backup since ${r.lastOk === null ? 'it was added' : new Date(r.lastOk).toISOString()}; its window is ${Math.round(window / HOUR)} hours.`];
      const e = siteEvent(ctx, 'backup.stale', `backup.stale:${r.siteId}:${now}`, site, lines, { last_completed_at: r.lastOk === null ? null : new Date(r.lastOk).toISOString(), freshness_hours: window / HOUR });
      if (await raiseAndTell(ctx, subject, e)) n++;
    } else if (!stale && raised.has(subject)) {
      // Fresh again without a job ending here (a window made longer, a backup another server finished).
      const since = await d.clear(subject, 'backup.stale');
      const site = since === undefined ? undefined : await ctx.repos.sites.get(r.siteId);
      if (site && since !== undefined) await dispatch(ctx, siteEvent(ctx, 'site.recovered', `site.recovered:stale:${site.id}:${since}`, site, [`${site.name} is within its freshness window again.`], { after: 'backup.stale', since: new Date(since).toISOString() }));
    }
  }
  return n;
}

const FRESHNESS_PAGE = 1000;

async function* freshnessPages(ctx: ServerContext): AsyncGenerator<SiteFreshness> {
  let after: string | null = null;
  for (;;) {
    const page = await alertsRepo(ctx).freshness(after, FRESHNESS_PAGE);
    yield* page;
    if (page.length < FRESHNESS_PAGE) return;
    after = page[page.length - 1]?.siteId ?? null;
    await yieldToRequests();
  }
}

/** defaultWindowMs by schedule, each computed once. */
function memoWindows(now: number): (spec: CronSpec | null) => number | null {
  const windows = new Map<string, number | null>();
  return (spec) => {
    if (spec === null) return null;
    const key = `${spec.cron}\n${spec.timezone}`;
    let w = windows.get(key);
    if (w === undefined) windows.set(key, (w = defaultWindowMs(spec, now)));
    return w;
  };
}

async function checkAgents(ctx: ServerContext, now: number): Promise<number> {
  const { agentOfflineMinutes } = await alertsRepo(ctx).settings();
  const d = deliveriesRepo(ctx);
  const raised = new Set((await d.active('agent.offline')).map((a) => a.subject));
  let n = 0;
  for (const node of await ctx.repos.nodes.list()) {
    const subject = nodeSubject(node.id);
    const seen = node.lastSeen ?? node.createdAt;
    const offline = node.status === 'active' && now - seen > agentOfflineMinutes * 60_000;
    if (offline === raised.has(subject)) continue;
    const siteIds = (await ctx.repos.sites.list({ nodeId: node.id })).map((s) => s.id);
    if (offline) {
      const lines = [`The agent on ${node.hostname} has not been heard from since ${new Date(seen).toISOString()} (more than ${agentOfflineMinutes} minutes).`];
      if (await raiseAndTell(ctx, subject, nodeEvent(ctx, 'agent.offline', `agent.offline:${node.id}:${now}`, node, siteIds, lines, { last_seen: new Date(seen).toISOString() }))) n++;
      continue;
    }
    const since = await d.clear(subject, 'agent.offline');
    // A node disabled meanwhile is cleared silently: nobody expects its agent.
    if (since !== undefined && node.status === 'active') {
      await dispatch(ctx, nodeEvent(ctx, 'agent.online', `agent.online:${node.id}:${since}`, node, siteIds, [`The agent on ${node.hostname} is reporting again.`], { offline_since: new Date(since).toISOString() }));
    }
  }
  return n;
}

async function remind(ctx: ServerContext, now: number): Promise<number> {
  const { reminderHours } = await alertsRepo(ctx).settings();
  const d = deliveriesRepo(ctx);
  let n = 0;
  for (const c of await d.remindable(now - reminderHours * HOUR)) {
    if (!REMINDED.has(c.kind) || typeof c.detail !== 'object' || c.detail === null) continue;
    if (!(await d.claimReminder(c.subject, c.kind, c.notifiedAt, now))) continue;
    await dispatch(ctx, reminderOf(c.detail as AlertEvent, `${c.kind}:${c.subject}:reminder:${now}`, now, c.since));
    n++;
  }
  return n;
}

async function retryDue(ctx: ServerContext, now: number): Promise<number> {
  await deliveriesRepo(ctx).forgetEnded(now - DELIVERY_LOG_MS);
  const ids = await deliveriesRepo(ctx).due(now);
  for (const id of ids) await attempt(ctx, id, now);
  return ids.length;
}

export interface AlertsOptions {
  /** How often the pass runs; 30 s by default. */
  intervalMs?: number;
  log?: (message: string, err?: unknown) => void;
}

export interface AlertsLoop {
  runOnce(): Promise<PassReport>;
  stop(): Promise<void>;
}

/** Reacts to ended jobs and starts the pass's timer (unref'd). Call stop() before closing the database. */
export function startAlerts(ctx: ServerContext, opts: AlertsOptions = {}): AlertsLoop {
  const log = opts.log ?? ((m, err) => ctx.log.error({ err }, `alerts: ${m}`));
  const unsubscribeJobs = ctx.jobEnded.subscribe((job) => onJobEnded(ctx, job));
  const unsubscribePrunes = ctx.pruneFailed.subscribe((f) => notifyPruneFailed(ctx, { siteId: f.siteId, error: f.error, backupIds: [f.backupId] }));
  const unsubscribe = (): void => {
    unsubscribeJobs();
    unsubscribePrunes();
  };
  const loop = startPeriodic(() => alertsOnce(ctx, ctx.now()), { intervalMs: opts.intervalMs ?? 30_000, onError: (err) => log('Alerts pass failed', err), onStop: unsubscribe, onPass: (ms) => ctx.metrics.passRan('alerts', ms) });
  return {
    runOnce: loop.runOnce,
    stop: async () => {
      await loop.stop();
      await ctx.jobEnded.idle();
      await alertsIdle(ctx);
    },
  };
}
