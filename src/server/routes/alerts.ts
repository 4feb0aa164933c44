import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Channel } from '../../api/alert-types.ts';
import {
  AlertSettings, ChannelList, CreateChannelRequest, CreatedChannel, CreateSubscriptionRequest, Delivery, DeliveryList, SiteAlerts, Subscription,
  SubscriptionList, TestAlertRequest, UpdateAlertSettingsRequest, UpdateSiteAlertsRequest,
} from '../../api/alert-types.ts';
import { alertsRepo, deliveriesRepo, dispatch } from '../alerts/dispatch.ts';
import { defaultFreshnessMs, siteSubject } from '../alerts/conditions.ts';
import { testEvent } from '../alerts/events.ts';
import { ApiError, invalid, notFound } from '../api-error.ts';
import { authorize, type Principal } from '../auth/roles.ts';
import type { ServerContext } from '../context.ts';
import type { DeliveryRow } from '../db/alert-deliveries.ts';
import type { ChannelRow, EmailConfig, WebhookConfig } from '../db/alerts.ts';
import { defineRoute, must, replied } from '../route.ts';
import { errorResponses, noContent, ok, success } from './error-responses.ts';
import { iso, userId, uuidParams } from './schema.ts';
import { siteFor } from './site-common.ts';

// Alerts: channels (an SMTP server, a webhook) are the super_admin's (alerts.manage), as are the
// fleet's thresholds and the channels' delivery logs; any user may list channels by name and
// type, and subscribe their own mail to the sites they may read; a site's freshness window goes
// with site.write, its ping URL with alerts.manage too (the server sends requests to it). Secrets (SMTP password, ping URL) go in and never come out; a
// webhook's signing secret is generated here and shown once, in the answer that creates it.

type IdP = { id: string };
type Q = Record<string, string>;
const tags = ['alerts'];
const HOUR = 3_600_000;

function channelBody(c: ChannelRow, full: boolean): Channel {
  const email = c.type === 'email' ? (c.config as EmailConfig) : null;
  return {
    id: c.id, name: c.name, type: c.type, on_success: c.onSuccess, has_secret: c.hasSecret, created_at: iso(c.createdAt),
    site_ids: full ? c.siteIds : null,
    email: full && email ? { host: email.host, port: email.port, tls: email.tls, user: email.user, from: email.from, to: email.to } : null,
    webhook: full && c.type === 'webhook' ? { url: (c.config as WebhookConfig).url } : null,
  };
}

export function deliveryBody(d: DeliveryRow): Delivery {
  return {
    id: d.id, channel_id: d.channelId, site_id: d.siteId, kind: d.kind, event_key: d.eventKey, recipients: d.recipients, state: d.state, attempts: d.attempts,
    next_attempt_at: iso(d.nextAttemptAt), last_error: d.lastError, history: d.history.map((a) => ({ at: iso(a.at), status: a.status, error: a.error })),
    created_at: iso(d.createdAt), updated_at: iso(d.updatedAt),
  };
}

async function loadChannel(ctx: ServerContext, id: string): Promise<ChannelRow> {
  const c = await alertsRepo(ctx).getChannel(id);
  if (!c) throw notFound('Alert channel', id);
  return c;
}

/** Every listed site must exist and be readable by the caller (403 / 404 as siteFor decides). */
async function checkSites(ctx: ServerContext, p: Principal | undefined, ids: string[] | null | undefined): Promise<void> {
  for (const id of ids ?? []) await siteFor(ctx, p, 'site.read', id);
}

function channelInput(body: CreateChannelRequest): { config: EmailConfig | WebhookConfig; secret: string | null; shown: string | null } {
  if (body.type === 'email') {
    if (!body.email || body.webhook) throw invalid('An email channel needs "email" settings (host, port, tls, from, to) and no "webhook"');
    const { password, ...e } = body.email;
    if (password && !e.user) throw invalid('An SMTP password needs email.user too');
    return { config: { host: e.host, port: e.port, tls: e.tls, user: e.user ?? null, from: e.from, to: e.to }, secret: password ?? null, shown: null };
  }
  if (!body.webhook || body.email) throw invalid('A webhook channel needs "webhook": { "url": ... } and no "email"');
  const secret = `whsec_${randomBytes(32).toString('base64url')}`;
  return { config: { url: body.webhook.url }, secret, shown: secret };
}

export function registerAlertRoutes(app: FastifyInstance, ctx: ServerContext): void {
  registerChannelRoutes(app, ctx);
  registerSubscriptionRoutes(app, ctx);
  registerSettingRoutes(app, ctx);
}

function registerChannelRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, Q, Q, ChannelList>(app, ctx, {
    method: 'GET', url: '/api/v1/alerts/channels', auth: 'user', tags,
    summary: 'Alert channels (any user, to subscribe; settings only for those who may manage them)',
    schema: { response: { ...ok(ChannelList, 'The channels (settings only for those who may manage them)'), ...errorResponses(401, 403) } },
    handler: async ({ principal }) => {
      userId(principal);
      const full = authorize(principal as Principal, 'alerts.manage', {}) === 'allow';
      return { channels: (await alertsRepo(ctx).listChannels()).map((c) => channelBody(c, full)) };
    },
  });

  defineRoute<CreateChannelRequest, Q, Q, CreatedChannel>(app, ctx, {
    method: 'POST', url: '/api/v1/alerts/channels', auth: 'user', tags,
    summary: "Add an alert channel (super_admin); a webhook's signing secret is in this answer only",
    schema: { body: CreateChannelRequest, response: { ...success(201, 'The new channel (a webhook\'s secret shown this once)', CreatedChannel), ...errorResponses(400, 401, 403, 404, 409) } },
    handler: async ({ body, principal }) => {
      const me = must(principal, 'alerts.manage');
      await checkSites(ctx, me, body.site_ids);
      const input = channelInput(body);
      const row = await alertsRepo(ctx).createChannel({ name: body.name, type: body.type, config: input.config, secret: input.secret, siteIds: body.site_ids ?? null, onSuccess: body.on_success ?? false });
      await ctx.repos.audit.record({ userId: userId(me), action: 'alert.channel.create', targetType: 'alert_channel', targetId: row.id, detail: { name: row.name, type: row.type } });
      return replied(201, { ...channelBody(row, true), secret: input.shown });
    },
  });

  defineRoute<unknown, IdP>(app, ctx, {
    method: 'DELETE', url: '/api/v1/alerts/channels/:id', auth: 'user', tags,
    summary: 'Remove an alert channel, its subscriptions and its delivery log (super_admin)',
    schema: { params: uuidParams('id'), response: { ...noContent('Removed'), ...errorResponses(401, 403, 404) } },
    handler: async ({ params, principal }) => {
      const me = must(principal, 'alerts.manage');
      if (!(await alertsRepo(ctx).removeChannel(params.id))) throw notFound('Alert channel', params.id);
      await ctx.repos.audit.record({ userId: userId(me), action: 'alert.channel.remove', targetType: 'alert_channel', targetId: params.id });
      return replied(204, undefined);
    },
  });

  defineRoute<TestAlertRequest, IdP, Q, Delivery>(app, ctx, {
    method: 'POST', url: '/api/v1/alerts/channels/:id/test', auth: 'user', tags,
    summary: "Send a test alert through the channel now (super_admin); answers with the delivery after its first attempt",
    schema: { params: uuidParams('id'), body: TestAlertRequest, response: { ...ok(Delivery, 'The test message\'s delivery'), ...errorResponses(400, 401, 403, 404, 409) } },
    handler: async ({ body, params, principal }) => {
      const me = must(principal, 'alerts.manage');
      const channel = await loadChannel(ctx, params.id);
      const to = channel.type === 'email' ? (body?.to ?? (channel.config as EmailConfig).to) : [];
      if (channel.type === 'email' && to.length === 0) throw new ApiError(409, 'no_recipients', `The channel ${channel.name} has no recipients of its own; give "to": ["you@example.com"]`);
      const [made] = await dispatch(ctx, testEvent(ctx, `test:${randomUUID()}`, channel.name), { channel, to });
      if (!made) throw new ApiError(409, 'conflict', 'The test alert was not recorded');
      await ctx.repos.audit.record({ userId: userId(me), action: 'alert.channel.test', targetType: 'alert_channel', targetId: channel.id, detail: { delivery_id: made.id } });
      return deliveryBody((await deliveriesRepo(ctx).get(made.id)) ?? made);
    },
  });

  defineRoute<unknown, IdP, { limit?: string }, DeliveryList>(app, ctx, {
    method: 'GET', url: '/api/v1/alerts/channels/:id/deliveries', auth: 'user', tags,
    summary: "A channel's delivery log, newest first, with each attempt (super_admin)",
    schema: {
      params: uuidParams('id'),
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'string', pattern: '^[0-9]{1,3}$' } } },
      response: { ...ok(DeliveryList, 'The channel\'s deliveries, newest first'), ...errorResponses(400, 401, 403, 404) },
    },
    handler: async ({ params, query, principal }) => {
      must(principal, 'alerts.manage');
      const channel = await loadChannel(ctx, params.id);
      const limit = Math.min(Math.max(Number(query.limit ?? 100), 1), 500);
      return { deliveries: (await deliveriesRepo(ctx).forChannel(channel.id, limit)).map(deliveryBody) };
    },
  });
}

function subscriptionBody(s: { id: string; channelId: string; siteIds: string[] | null; onSuccess: boolean; createdAt: number }): Subscription {
  return { id: s.id, channel_id: s.channelId, site_ids: s.siteIds, on_success: s.onSuccess, created_at: iso(s.createdAt) };
}

function registerSubscriptionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, Q, Q, SubscriptionList>(app, ctx, {
    method: 'GET', url: '/api/v1/alerts/subscriptions', auth: 'user', tags,
    summary: "The caller's own alert subscriptions",
    schema: { response: { ...ok(SubscriptionList, 'Your subscriptions'), ...errorResponses(401, 403) } },
    handler: async ({ principal }) => ({ subscriptions: (await alertsRepo(ctx).subscriptionsOf(userId(principal))).map(subscriptionBody) }),
  });

  defineRoute<CreateSubscriptionRequest, Q, Q, Subscription>(app, ctx, {
    method: 'POST', url: '/api/v1/alerts/subscriptions', auth: 'user', tags,
    summary: "Mail me alerts through an email channel: for all the sites I may read (site_ids null) or some of them",
    schema: { body: CreateSubscriptionRequest, response: { ...success(201, 'The new subscription', Subscription), ...errorResponses(400, 401, 403, 404, 409) } },
    handler: async ({ body, principal }) => {
      const me = userId(principal);
      const channel = await loadChannel(ctx, body.channel_id);
      if (channel.type !== 'email') throw new ApiError(409, 'conflict', `The channel ${channel.name} is a webhook; subscribe to an email channel`);
      await checkSites(ctx, principal, body.site_ids);
      const sub = await alertsRepo(ctx).subscribe({ userId: me, channelId: channel.id, siteIds: body.site_ids ?? null, onSuccess: body.on_success ?? false });
      await ctx.repos.audit.record({ userId: me, action: 'alert.subscription.create', targetType: 'alert_subscription', targetId: sub.id, detail: { channel_id: channel.id, site_ids: sub.siteIds } });
      return replied(201, subscriptionBody(sub));
    },
  });

  defineRoute<unknown, IdP>(app, ctx, {
    method: 'DELETE', url: '/api/v1/alerts/subscriptions/:id', auth: 'user', tags,
    summary: 'Remove one of my alert subscriptions (anyone else\'s is 404)',
    schema: { params: uuidParams('id'), response: { ...noContent('Removed'), ...errorResponses(401, 403, 404) } },
    handler: async ({ params, principal }) => {
      const me = userId(principal);
      if (!(await alertsRepo(ctx).unsubscribe(me, params.id))) throw notFound('Alert subscription', params.id);
      await ctx.repos.audit.record({ userId: me, action: 'alert.subscription.remove', targetType: 'alert_subscription', targetId: params.id });
      return replied(204, undefined);
    },
  });
}

function settingsBody(s: { agentOfflineMinutes: number; quotaPercent: number; reminderHours: number }): AlertSettings {
  return { agent_offline_minutes: s.agentOfflineMinutes, quota_percent: s.quotaPercent, reminder_hours: s.reminderHours };
}

function registerSettingRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, Q, Q, AlertSettings>(app, ctx, {
    method: 'GET', url: '/api/v1/alerts/settings', auth: 'user', tags,
    summary: "The fleet's alert thresholds: agent offline after, storage near quota at, reminders every (super_admin)",
    schema: { response: { ...ok(AlertSettings, 'The fleet\'s alert settings'), ...errorResponses(401, 403) } },
    handler: async ({ principal }) => {
      must(principal, 'alerts.manage');
      return settingsBody(await alertsRepo(ctx).settings());
    },
  });

  defineRoute<UpdateAlertSettingsRequest, Q, Q, AlertSettings>(app, ctx, {
    method: 'PATCH', url: '/api/v1/alerts/settings', auth: 'user', tags,
    summary: "Change the fleet's alert thresholds (super_admin)",
    schema: { body: UpdateAlertSettingsRequest, response: { ...ok(AlertSettings, 'The settings as stored'), ...errorResponses(400, 401, 403) } },
    handler: async ({ body, principal }) => {
      const me = must(principal, 'alerts.manage');
      const s = await alertsRepo(ctx).updateSettings({ agentOfflineMinutes: body.agent_offline_minutes, quotaPercent: body.quota_percent, reminderHours: body.reminder_hours });
      await ctx.repos.audit.record({ userId: userId(me), action: 'alert.settings.update', targetType: 'alert_settings', targetId: null, detail: body });
      return settingsBody(s);
    },
  });

  const siteAlerts = async (siteId: string): Promise<SiteAlerts> => {
    const [s, def, active, pings] = await Promise.all([
      alertsRepo(ctx).siteSettings(siteId), defaultFreshnessMs(ctx, siteId), deliveriesRepo(ctx).activeFor([siteSubject(siteId)]), deliveriesRepo(ctx).forTarget(`ping:${siteId}`, 20),
    ]);
    return {
      site_id: siteId, freshness_hours: s.freshnessMs === null ? null : s.freshnessMs / HOUR, default_freshness_hours: def === null ? null : def / HOUR,
      has_ping_url: s.hasPingUrl, active: active.map((a) => ({ kind: a.kind, since: iso(a.since) })), pings: pings.map(deliveryBody),
    };
  };

  defineRoute<unknown, IdP, Q, SiteAlerts>(app, ctx, {
    method: 'GET', url: '/api/v1/sites/:id/alerts', auth: 'user', tags,
    summary: "A site's alert settings (freshness window, whether a ping URL is set), its raised alerts and its last pings",
    schema: { params: uuidParams('id'), response: { ...ok(SiteAlerts, 'The site\'s alert settings and state'), ...errorResponses(401, 403, 404) } },
    handler: async ({ params, principal }) => {
      const { site } = await siteFor(ctx, principal, 'site.read', params.id);
      return siteAlerts(site.id);
    },
  });

  defineRoute<UpdateSiteAlertsRequest, IdP, Q, SiteAlerts>(app, ctx, {
    method: 'PUT', url: '/api/v1/sites/:id/alerts', auth: 'user', tags,
    summary: "Set a site's freshness window (the dead man's switch; null: the default; site.write) and ping URL (write-only, null removes it; super_admin)",
    schema: { params: uuidParams('id'), body: UpdateSiteAlertsRequest, response: { ...ok(SiteAlerts, 'The site\'s alert settings as stored'), ...errorResponses(400, 401, 403, 404) } },
    handler: async ({ body, params, principal }) => {
      const { site, principal: me } = await siteFor(ctx, principal, 'site.write', params.id);
      // The server will POST to a ping URL: like a webhook, that is the super_admin's call (no requests to internal addresses by a node_admin).
      if (body.ping_url !== undefined) must(me, 'alerts.manage');
      const freshnessMs = body.freshness_hours === undefined ? undefined : body.freshness_hours === null ? null : body.freshness_hours * HOUR;
      await alertsRepo(ctx).updateSiteSettings(site.id, { freshnessMs, pingUrl: body.ping_url });
      const detail = { freshness_hours: body.freshness_hours, ping_url: body.ping_url === undefined ? undefined : body.ping_url === null ? 'removed' : 'set' };
      await ctx.repos.audit.record({ userId: userId(me), action: 'site.alerts.update', targetType: 'site', targetId: site.id, detail });
      return siteAlerts(site.id);
    },
  });
}
