import { bool, json, newId, num, numOrNull, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';
import type { SecretBox } from './secrets.ts';
import type { Role } from './users.ts';
import { cronSpecOf, type ScheduleMode, type SiteScheduleRow } from './schedules.ts';

// Alert channels, users' subscriptions, per-site alert settings and the fleet's thresholds
// (migration 8). Secrets (an SMTP password, a webhook's signing secret, a site's ping URL) are
// sealed with the server's SecretBox, bound to their row; rows only say whether one is set.
// Deliveries and raised conditions are in alert-deliveries.ts.

export type ChannelType = 'email' | 'webhook';
export type SmtpTls = 'none' | 'starttls' | 'tls';

export interface EmailConfig {
  host: string;
  port: number;
  tls: SmtpTls;
  user: string | null;
  from: string;
  /** The channel's own recipients (besides subscribed users). */
  to: string[];
}

export interface WebhookConfig {
  url: string;
}

export interface ChannelRow {
  id: string;
  name: string;
  type: ChannelType;
  config: EmailConfig | WebhookConfig;
  hasSecret: boolean;
  /** Sites the channel's own recipients hear about; null: all. */
  siteIds: string[] | null;
  onSuccess: boolean;
  createdAt: number;
}

export interface NewChannel {
  name: string;
  type: ChannelType;
  config: EmailConfig | WebhookConfig;
  secret: string | null;
  siteIds: string[] | null;
  onSuccess: boolean;
}

export interface SubscriptionRow {
  id: string;
  userId: string;
  channelId: string;
  siteIds: string[] | null;
  onSuccess: boolean;
  createdAt: number;
}

export interface AlertSettings {
  agentOfflineMinutes: number;
  quotaPercent: number;
  reminderHours: number;
}

export interface SiteAlertSettings {
  freshnessMs: number | null;
  hasPingUrl: boolean;
}

/** A site as the dead man's switch sees it (AlertsRepo.freshness). */
export interface SiteFreshness {
  siteId: string;
  name: string;
  createdAt: number;
  /** The site's own window; null: the default (from its schedule). */
  freshnessMs: number | null;
  /** undefined: no schedule row yet (it inherits). */
  schedule: Pick<SiteScheduleRow, 'mode' | 'spec'> | undefined;
  lastOk: number | null;
}

const CHANNEL_COLUMNS = 'id, name, type, config, secret_enc IS NOT NULL AS has_secret, site_ids, on_success, created_at';
const SUB_COLUMNS = 'id, user_id, channel_id, site_ids, on_success, created_at';

const ids = (v: unknown): string[] | null => (v === null || v === undefined ? null : json<string[]>(v, []));
const channelContext = (id: string): string => `alert_channels:${id}`;
const pingContext = (siteId: string): string => `alert_site_settings:${siteId}`;

function toChannel(r: Raw): ChannelRow {
  return {
    id: str(r.id), name: str(r.name), type: r.type as ChannelType, config: json(r.config, {} as EmailConfig),
    hasSecret: Boolean(r.has_secret), siteIds: ids(r.site_ids), onSuccess: bool(r.on_success), createdAt: num(r.created_at),
  };
}

function toSubscription(r: Raw): SubscriptionRow {
  return { id: str(r.id), userId: str(r.user_id), channelId: str(r.channel_id), siteIds: ids(r.site_ids), onSuccess: bool(r.on_success), createdAt: num(r.created_at) };
}

export class AlertsRepo {
  readonly #ctx: RepoContext;
  readonly #box: SecretBox;

  constructor(ctx: RepoContext, box: SecretBox) {
    this.#ctx = ctx;
    this.#box = box;
  }

  /** A ConflictError ('duplicate') for a name in use. */
  async createChannel(c: NewChannel): Promise<ChannelRow> {
    const id = newId();
    const secret = c.secret === null ? null : this.#box.encrypt(c.secret, channelContext(id));
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO alert_channels (id, name, type, config, secret_enc, site_ids, on_success, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${CHANNEL_COLUMNS}`,
      [id, c.name, c.type, JSON.stringify(c.config), secret, c.siteIds === null ? null : JSON.stringify(c.siteIds), c.onSuccess, this.#ctx.now()],
    );
    return toChannel(row as Raw);
  }

  async getChannel(id: string): Promise<ChannelRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${CHANNEL_COLUMNS} FROM alert_channels WHERE id = ?`, [id]);
    return row && toChannel(row);
  }

  async listChannels(): Promise<ChannelRow[]> {
    return (await this.#ctx.db.query<Raw>(`SELECT ${CHANNEL_COLUMNS} FROM alert_channels ORDER BY name`)).map(toChannel);
  }

  async removeChannel(id: string): Promise<boolean> {
    return (await this.#ctx.db.exec('DELETE FROM alert_channels WHERE id = ?', [id])) === 1;
  }

  /** The SMTP password or signing secret, for sending only; never for a response. */
  async channelSecret(id: string): Promise<string | null> {
    const row = await this.#ctx.db.get<Raw>('SELECT secret_enc FROM alert_channels WHERE id = ?', [id]);
    const blob = strOrNull(row?.secret_enc);
    return blob === null ? null : this.#box.decrypt(blob, channelContext(id));
  }

  /** A ConflictError ('duplicate') when the user already subscribes to the channel. */
  async subscribe(s: { userId: string; channelId: string; siteIds: string[] | null; onSuccess: boolean }): Promise<SubscriptionRow> {
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO alert_subscriptions (id, user_id, channel_id, site_ids, on_success, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING ${SUB_COLUMNS}`,
      [newId(), s.userId, s.channelId, s.siteIds === null ? null : JSON.stringify(s.siteIds), s.onSuccess, this.#ctx.now()],
    );
    return toSubscription(row as Raw);
  }

  async subscriptionsOf(userId: string): Promise<SubscriptionRow[]> {
    return (await this.#ctx.db.query<Raw>(`SELECT ${SUB_COLUMNS} FROM alert_subscriptions WHERE user_id = ? ORDER BY created_at, id`, [userId])).map(toSubscription);
  }

  /** Subscriptions to the channel with their (enabled) users' emails. */
  async subscribersOf(channelId: string): Promise<(SubscriptionRow & { email: string; role: Role })[]> {
    const rows = await this.#ctx.db.query<Raw>(
      `SELECT s.id, s.user_id, s.channel_id, s.site_ids, s.on_success, s.created_at, u.email, u.role FROM alert_subscriptions s JOIN users u ON u.id = s.user_id
       WHERE s.channel_id = ? AND u.disabled = 0 ORDER BY s.created_at, s.id`,
      [channelId],
    );
    return rows.map((r) => ({ ...toSubscription(r), email: str(r.email), role: r.role as Role }));
  }

  /** Only the user's own subscription is removed. */
  async unsubscribe(userId: string, id: string): Promise<boolean> {
    return (await this.#ctx.db.exec('DELETE FROM alert_subscriptions WHERE id = ? AND user_id = ?', [id, userId])) === 1;
  }

  async settings(): Promise<AlertSettings> {
    const r = await this.#ctx.db.get<Raw>('SELECT agent_offline_minutes, quota_percent, reminder_hours FROM alert_settings WHERE id = 1');
    return { agentOfflineMinutes: num(r?.agent_offline_minutes ?? 15), quotaPercent: num(r?.quota_percent ?? 90), reminderHours: num(r?.reminder_hours ?? 24) };
  }

  async updateSettings(p: Partial<AlertSettings>): Promise<AlertSettings> {
    const s = { ...(await this.settings()), ...Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) };
    await this.#ctx.db.exec('UPDATE alert_settings SET agent_offline_minutes = ?, quota_percent = ?, reminder_hours = ? WHERE id = 1', [s.agentOfflineMinutes, s.quotaPercent, s.reminderHours]);
    return s;
  }

  async siteSettings(siteId: string): Promise<SiteAlertSettings> {
    const r = await this.#ctx.db.get<Raw>('SELECT freshness_ms, ping_url_enc FROM alert_site_settings WHERE site_id = ?', [siteId]);
    return { freshnessMs: numOrNull(r?.freshness_ms), hasPingUrl: strOrNull(r?.ping_url_enc) !== null };
  }

  /** undefined leaves a setting alone; null clears it. */
  async updateSiteSettings(siteId: string, p: { freshnessMs?: number | null; pingUrl?: string | null }): Promise<SiteAlertSettings> {
    const ping = p.pingUrl === undefined || p.pingUrl === null ? null : this.#box.encrypt(p.pingUrl, pingContext(siteId));
    // One statement: a setting left out keeps its stored value (excluded.* is only used for those given).
    const keepFreshness = p.freshnessMs === undefined ? 'alert_site_settings.freshness_ms' : 'excluded.freshness_ms';
    const keepPing = p.pingUrl === undefined ? 'alert_site_settings.ping_url_enc' : 'excluded.ping_url_enc';
    await this.#ctx.db.exec(
      `INSERT INTO alert_site_settings (site_id, freshness_ms, ping_url_enc) VALUES (?, ?, ?)
       ON CONFLICT (site_id) DO UPDATE SET freshness_ms = ${keepFreshness}, ping_url_enc = ${keepPing}`,
      [siteId, p.freshnessMs ?? null, ping],
    );
    return this.siteSettings(siteId);
  }

  /** The site's ping URL, decrypted, for sending only. */
  async pingUrl(siteId: string): Promise<string | null> {
    const r = await this.#ctx.db.get<Raw>('SELECT ping_url_enc FROM alert_site_settings WHERE site_id = ?', [siteId]);
    const blob = strOrNull(r?.ping_url_enc);
    return blob === null ? null : this.#box.decrypt(blob, pingContext(siteId));
  }

  /**
   * Sites by id after `after` (null: from the first), at most limit: each with its freshness
   * window (null: the default), its schedule row (undefined: none yet; the default window
   * follows from it) and its last completed backup, in one query a page.
   */
  async freshness(after: string | null, limit: number): Promise<SiteFreshness[]> {
    const rows = await this.#ctx.db.query<Raw>(
      `SELECT s.id, s.name, s.created_at, st.freshness_ms, ss.mode, ss.cron, ss.timezone, ss.preset,
         (SELECT MAX(b.created_at) FROM backups b WHERE b.site_id = s.id AND b.status = 'completed') AS last_ok
       FROM sites s LEFT JOIN alert_site_settings st ON st.site_id = s.id LEFT JOIN site_schedules ss ON ss.site_id = s.id
       WHERE s.id > ? ORDER BY s.id LIMIT ?`,
      [after ?? '', limit],
    );
    return rows.map((r) => ({
      siteId: str(r.id), name: str(r.name), createdAt: num(r.created_at), freshnessMs: numOrNull(r.freshness_ms),
      schedule: r.mode === null || r.mode === undefined ? undefined : { mode: r.mode as ScheduleMode, spec: cronSpecOf(r) }, lastOk: numOrNull(r.last_ok),
    }));
  }
}
