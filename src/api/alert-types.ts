import { Type, type Static } from '@sinclair/typebox';
import { NO_CONTROL_PATTERN } from './formats.ts';
import { Label, Nullable, Uuid } from './schema-kit.ts';

// Request and response bodies of /api/v1/alerts/* and /api/v1/sites/{id}/alerts, as TypeBox
// schemas (the server validates and documents with them) and the types derived from them.

const Email = Type.String({ minLength: 3, maxLength: 254, pattern: '^[^@\\s<>,;"]+@[^@\\s<>,;"]+$' });
const HttpUrl = Type.String({ minLength: 8, maxLength: 2048, pattern: '^https?://[^\\s]+$' });
const SiteIds = Nullable(Type.Array(Uuid, { maxItems: 1000, uniqueItems: true }));
const Iso = Type.String({ description: 'ISO-8601 time' });

export const SMTP_TLS = ['none', 'starttls', 'tls'] as const;

export const EmailSettings = Type.Object({
  host: Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:\\[\\]-]+$' }),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  tls: Type.Union(SMTP_TLS.map((t) => Type.Literal(t)), { description: 'none: plain SMTP; starttls: upgrade, required; tls: TLS from the start (port 465)' }),
  user: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 256, pattern: NO_CONTROL_PATTERN }))),
  from: Email,
  to: Type.Array(Email, { maxItems: 100, uniqueItems: true, description: "The channel's own recipients; subscribed users come on top" }),
}, { additionalProperties: false });

export const CreateChannelRequest = Type.Object({
  name: Label(100),
  type: Type.Union([Type.Literal('email'), Type.Literal('webhook')]),
  site_ids: Type.Optional(SiteIds),
  on_success: Type.Optional(Type.Boolean({ description: 'Also tell the channel of completed backups' })),
  email: Type.Optional(Type.Object({
    ...EmailSettings.properties,
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'The SMTP password: stored encrypted, never shown again' })),
  }, { additionalProperties: false })),
  webhook: Type.Optional(Type.Object({ url: HttpUrl }, { additionalProperties: false })),
}, { additionalProperties: false });
export type CreateChannelRequest = Static<typeof CreateChannelRequest>;

export const Channel = Type.Object({
  id: Type.String(),
  name: Type.String(),
  type: Type.String(),
  /** Settings are null for callers who may not manage channels: they see names and types only. */
  site_ids: Nullable(Type.Array(Type.String())),
  on_success: Type.Boolean(),
  has_secret: Type.Boolean(),
  email: Type.Union([EmailSettings, Type.Null()]),
  webhook: Type.Union([Type.Object({ url: Type.String() }), Type.Null()]),
  created_at: Iso,
});
export type Channel = Static<typeof Channel>;

export const CreatedChannel = Type.Composite([Channel, Type.Object({
  secret: Nullable(Type.String({ description: "A webhook's signing secret, shown this once: X-Wpbackup-Signature is sha256=HMAC-SHA256(secret, body) in hex" })),
})]);
export type CreatedChannel = Static<typeof CreatedChannel>;

export const ChannelList = Type.Object({ channels: Type.Array(Channel) });
export type ChannelList = Static<typeof ChannelList>;

export const Delivery = Type.Object({
  id: Type.String(),
  channel_id: Nullable(Type.String()),
  site_id: Nullable(Type.String()),
  kind: Type.String(),
  event_key: Type.String(),
  recipients: Type.Array(Type.String()),
  state: Type.String({ description: 'pending (a retry is due at next_attempt_at), sending, sent, or failed (gave up)' }),
  attempts: Type.Integer(),
  next_attempt_at: Iso,
  last_error: Nullable(Type.String()),
  history: Type.Array(Type.Object({ at: Iso, status: Nullable(Type.Integer()), error: Nullable(Type.String()) })),
  created_at: Iso,
  updated_at: Iso,
});
export type Delivery = Static<typeof Delivery>;

export const DeliveryList = Type.Object({ deliveries: Type.Array(Delivery) });
export type DeliveryList = Static<typeof DeliveryList>;

export const TestAlertRequest = Type.Object({
  to: Type.Optional(Type.Array(Email, { minItems: 1, maxItems: 10, uniqueItems: true, description: "Email channels: send here instead of the channel's recipients" })),
}, { additionalProperties: false, nullable: true });
export type TestAlertRequest = Static<typeof TestAlertRequest> | null | undefined;

export const CreateSubscriptionRequest = Type.Object({
  channel_id: Uuid,
  site_ids: Type.Optional(SiteIds),
  on_success: Type.Optional(Type.Boolean({ description: 'Also mail me of completed backups' })),
}, { additionalProperties: false });
export type CreateSubscriptionRequest = Static<typeof CreateSubscriptionRequest>;

export const Subscription = Type.Object({
  id: Type.String(),
  channel_id: Type.String(),
  site_ids: Nullable(Type.Array(Type.String())),
  on_success: Type.Boolean(),
  created_at: Iso,
});
export type Subscription = Static<typeof Subscription>;

export const SubscriptionList = Type.Object({ subscriptions: Type.Array(Subscription) });
export type SubscriptionList = Static<typeof SubscriptionList>;

export const AlertSettings = Type.Object({
  agent_offline_minutes: Type.Integer({ minimum: 1, maximum: 10080 }),
  quota_percent: Type.Integer({ minimum: 1, maximum: 100 }),
  reminder_hours: Type.Integer({ minimum: 1, maximum: 720 }),
}, { additionalProperties: false });
export type AlertSettings = Static<typeof AlertSettings>;

export const UpdateAlertSettingsRequest = Type.Partial(AlertSettings, { additionalProperties: false, minProperties: 1 });
export type UpdateAlertSettingsRequest = Static<typeof UpdateAlertSettingsRequest>;

export const SiteAlerts = Type.Object({
  site_id: Type.String(),
  freshness_hours: Nullable(Type.Number({ description: "The site's own dead man's switch window; null: the default" })),
  default_freshness_hours: Nullable(Type.Number()),
  has_ping_url: Type.Boolean(),
  active: Type.Array(Type.Object({ kind: Type.String(), since: Iso })),
  pings: Type.Array(Delivery),
});
export type SiteAlerts = Static<typeof SiteAlerts>;

export const UpdateSiteAlertsRequest = Type.Object({
  freshness_hours: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 8760 }))),
  ping_url: Type.Optional(Nullable(HttpUrl)),
}, { additionalProperties: false, minProperties: 1 });
export type UpdateSiteAlertsRequest = Static<typeof UpdateSiteAlertsRequest>;
