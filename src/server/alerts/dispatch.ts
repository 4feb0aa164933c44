import { authorize, type Principal } from '../auth/roles.ts';
import type { ServerContext } from '../context.ts';
import { AlertDeliveriesRepo, type Attempt, type DeliveryRow } from '../db/alert-deliveries.ts';
import { AlertsRepo, type ChannelRow, type EmailConfig, type WebhookConfig } from '../db/alerts.ts';
import type { SiteRow } from '../db/sites.ts';
import type { Role } from '../db/users.ts';
import { payloadOf, type AlertEvent, type AlertPayload } from './events.ts';
import { sendEmail, sendPing, sendWebhook } from './senders.ts';

// From an event to deliveries: each channel whose own audience covers the event (its sites,
// and backup.succeeded only when it opted in) and each email channel with subscribers who may
// read one of the event's sites (and opted in to successes, for those) gets one delivery,
// recorded once per (target, event key) whoever records it. A delivery is then tried at once,
// and again by the background pass (pass.ts) with backoff until it is sent or gives up.

/** Waits before the 2nd, 3rd... attempt; after the last, the delivery has failed for good. */
export const RETRY_DELAYS_MS = [30_000, 2 * 60_000, 10 * 60_000, 30 * 60_000, 2 * 3_600_000];

export function alertsRepo(ctx: ServerContext): AlertsRepo {
  return new AlertsRepo({ db: ctx.db, now: ctx.now }, ctx.secrets);
}

export function deliveriesRepo(ctx: ServerContext): AlertDeliveriesRepo {
  return new AlertDeliveriesRepo({ db: ctx.db, now: ctx.now });
}

// Sends started outside a caller that awaits them (an agent's poll), per context, so tests
// and shutdown can wait for them (alertsIdle).
const inflight = new WeakMap<ServerContext, Set<Promise<unknown>>>();

export function track(ctx: ServerContext, p: Promise<unknown>): void {
  let set = inflight.get(ctx);
  if (!set) inflight.set(ctx, (set = new Set()));
  const run = p.catch((err: unknown) => ctx.log.error({ err }, 'An alert could not be sent')).finally(() => set.delete(run));
  set.add(run);
}

export async function alertsIdle(ctx: ServerContext): Promise<void> {
  const set = inflight.get(ctx);
  while (set && set.size > 0) await Promise.all([...set]);
}

async function principalOfUser(ctx: ServerContext, userId: string, role: Role): Promise<Principal> {
  const [nodeIds, siteIds] = await Promise.all([ctx.repos.users.assignedNodeIds(userId), ctx.repos.users.assignedSiteIds(userId)]);
  return { kind: 'user', userId, role, nodeIds: new Set(nodeIds), siteIds: new Set(siteIds) };
}

/** Whether the user may hear of the event: they may read one of its sites, or its node. */
function mayHear(p: Principal, e: AlertEvent, sites: SiteRow[], subscribed: string[] | null): boolean {
  const inScope = sites.filter((s) => subscribed === null || subscribed.includes(s.id));
  if (inScope.some((s) => authorize(p, 'site.read', { siteId: s.id, nodeId: s.nodeId }) === 'allow')) return true;
  return subscribed === null && e.node !== null && authorize(p, 'node.read', { nodeId: e.node.id }) === 'allow';
}

function channelCovers(c: ChannelRow, e: AlertEvent): boolean {
  if (e.kind === 'backup.succeeded' && !c.onSuccess) return false;
  return c.siteIds === null || e.siteIds.some((id) => c.siteIds?.includes(id));
}

async function recipientsFor(ctx: ServerContext, c: ChannelRow, e: AlertEvent, sites: SiteRow[]): Promise<string[]> {
  const own = channelCovers(c, e) ? (c.config as EmailConfig).to : [];
  const subs = await alertsRepo(ctx).subscribersOf(c.id);
  const users: string[] = [];
  for (const s of subs) {
    if (e.kind === 'backup.succeeded' && !s.onSuccess) continue;
    if (mayHear(await principalOfUser(ctx, s.userId, s.role), e, sites, s.siteIds)) users.push(s.email);
  }
  return [...new Set([...own, ...users])];
}

/**
 * Records the event's deliveries and tries each at once; returns those this call recorded.
 * only: one channel (a test alert), to its own recipients or to.
 */
export async function dispatch(ctx: ServerContext, e: AlertEvent, only?: { channel: ChannelRow; to: string[] }): Promise<DeliveryRow[]> {
  const channels = only ? [only.channel] : await alertsRepo(ctx).listChannels();
  const sites = (await Promise.all(e.siteIds.slice(0, 1000).map((id) => ctx.repos.sites.get(id)))).filter((s): s is SiteRow => s !== undefined);
  const made: DeliveryRow[] = [];
  for (const c of channels) {
    const recipients = c.type === 'email' ? (only ? only.to : await recipientsFor(ctx, c, e, sites)) : [];
    if (c.type === 'email' ? recipients.length === 0 : !only && !channelCovers(c, e)) continue;
    const d = await deliveriesRepo(ctx).create({ target: c.id, channelId: c.id, siteId: e.site?.id ?? null, eventKey: e.key, kind: e.kind, recipients, payload: payloadOf(e) });
    if (d) made.push(d);
  }
  for (const d of made) await attempt(ctx, d.id, ctx.now());
  return made;
}

/** Records a ping of the site's ping URL (if it has one) and tries it at once. */
export async function ping(ctx: ServerContext, siteId: string, key: string, suffix: '' | '/start' | '/fail', body: string): Promise<void> {
  if (!(await alertsRepo(ctx).siteSettings(siteId)).hasPingUrl) return;
  const d = await deliveriesRepo(ctx).create({ target: `ping:${siteId}`, channelId: null, siteId, eventKey: key, kind: `ping${suffix || '/success'}`, recipients: [], payload: { suffix, body: body.slice(0, 10_000) } });
  if (d) await attempt(ctx, d.id, ctx.now());
}

/** One attempt, if this server wins the claim; then sent, retried later, or failed for good. */
export async function attempt(ctx: ServerContext, id: string, now: number): Promise<DeliveryRow | undefined> {
  const repo = deliveriesRepo(ctx);
  const d = await repo.claim(id, now);
  if (!d) return undefined;
  let result: Attempt;
  try {
    result = await send(ctx, d);
  } catch (err) {
    result = { at: ctx.now(), status: null, error: err instanceof Error ? err.message : String(err) };
  }
  const delay = RETRY_DELAYS_MS[d.attempts - 1];
  await repo.settle(d, result, result.error === null ? 'sent' : delay === undefined ? null : now + delay);
  if (result.error === null) ctx.metrics.alertSent(d.channelId ?? 'ping', d.kind);
  return repo.get(id);
}

async function send(ctx: ServerContext, d: DeliveryRow): Promise<Attempt> {
  const at = (error: string): Attempt => ({ at: ctx.now(), status: null, error });
  if (d.channelId === null) {
    const url = d.siteId ? await alertsRepo(ctx).pingUrl(d.siteId) : null;
    if (!url) return at('The site has no ping URL any more');
    const p = d.payload as { suffix: '' | '/start' | '/fail'; body: string };
    return sendPing(url, p.suffix, p.body, ctx.now);
  }
  const repo = alertsRepo(ctx);
  const channel = await repo.getChannel(d.channelId);
  if (!channel) return at('The channel was removed');
  const secret = await repo.channelSecret(channel.id);
  const payload = d.payload as AlertPayload;
  if (channel.type === 'email') return sendEmail(channel.config as EmailConfig, secret, { to: d.recipients, subject: `[wpbackup] ${payload.title}`, text: payload.text }, ctx.now);
  if (!secret) return at('The channel has no signing secret');
  const body = JSON.stringify({ id: d.id, ...payload });
  return sendWebhook((channel.config as WebhookConfig).url, secret, body, { 'x-wpbackup-event': payload.event, 'x-wpbackup-delivery': d.id }, ctx.now);
}
