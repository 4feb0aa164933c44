import type { ServerContext } from '../context.ts';
import type { SiteRow } from '../db/sites.ts';

// What an alert says, whatever carries it: a kind, a one-line title, a few lines of text, the
// site or node it is about (with a link), and the details a machine reads (the webhook body).

export const ALERT_KINDS = [
  'backup.failed', 'backup.succeeded', 'site.recovered', 'backup.stale', 'agent.offline', 'agent.online', 'storage.quota', 'prune.failed', 'test',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export interface AlertEvent {
  kind: AlertKind;
  /** Unique per event: a target gets at most one delivery per key, whichever server records it. */
  key: string;
  at: number;
  title: string;
  text: string;
  /** A daily reminder of a condition that still holds. */
  reminder: boolean;
  site: { id: string; name: string; node_id: string; url: string } | null;
  node: { id: string; hostname: string } | null;
  /** Sites the event concerns, for routing to channels and subscribers. */
  siteIds: string[];
  detail: Record<string, unknown>;
}

/** The JSON a webhook receives (and the payload stored with each delivery). */
export interface AlertPayload {
  event: AlertKind;
  reminder: boolean;
  at: string;
  title: string;
  text: string;
  site: AlertEvent['site'];
  node: AlertEvent['node'];
  detail: Record<string, unknown>;
}

export function payloadOf(e: AlertEvent): AlertPayload {
  return { event: e.kind, reminder: e.reminder, at: new Date(e.at).toISOString(), title: e.title, text: e.text, site: e.site, node: e.node, detail: e.detail };
}

export function siteLink(ctx: ServerContext, siteId: string): string {
  return `${ctx.config.publicUrl.replace(/\/+$/, '')}/api/v1/sites/${siteId}`;
}

export function siteRef(ctx: ServerContext, s: SiteRow): NonNullable<AlertEvent['site']> {
  return { id: s.id, name: s.name, node_id: s.nodeId, url: siteLink(ctx, s.id) };
}

const TITLES: Record<AlertKind, (name: string) => string> = {
  'backup.failed': (n) => `Backup of ${n} failed`,
  'backup.succeeded': (n) => `Backup of ${n} completed`,
  'site.recovered': (n) => `${n} recovered: a backup completed`,
  'backup.stale': (n) => `No completed backup of ${n} within its freshness window`,
  'agent.offline': (n) => `Agent on ${n} is offline`,
  'agent.online': (n) => `Agent on ${n} is back online`,
  'storage.quota': (n) => `Storage of ${n} is near its quota`,
  'prune.failed': (n) => `Pruning old backups of ${n} failed`,
  test: () => 'Test alert from wpbackup',
};

/** An event about a site (most of them); lines are the text's body, the link is added. */
export function siteEvent(ctx: ServerContext, kind: AlertKind, key: string, site: SiteRow, lines: string[], detail: Record<string, unknown>): AlertEvent {
  const ref = siteRef(ctx, site);
  return {
    kind, key, at: ctx.now(), title: TITLES[kind](site.name), text: [...lines, `Site: ${ref.url}`].join('\n'),
    reminder: false, site: ref, node: null, siteIds: [site.id], detail,
  };
}

/** An event about a node (agents, node quotas); it concerns the node's sites. */
export function nodeEvent(ctx: ServerContext, kind: AlertKind, key: string, node: { id: string; hostname: string }, siteIds: string[], lines: string[], detail: Record<string, unknown>): AlertEvent {
  return { kind, key, at: ctx.now(), title: TITLES[kind](node.hostname), text: lines.join('\n'), reminder: false, site: null, node: { id: node.id, hostname: node.hostname }, siteIds, detail };
}

export function testEvent(ctx: ServerContext, key: string, channelName: string): AlertEvent {
  return {
    kind: 'test', key, at: ctx.now(), title: TITLES.test(''), text: `This is a test of the alert channel ${channelName}. If you read this, it works.`,
    reminder: false, site: null, node: null, siteIds: [], detail: {},
  };
}

/** The same condition told again, a day (reminder_hours) later. */
export function reminderOf(e: AlertEvent, key: string, at: number, since: number): AlertEvent {
  const hours = Math.round((at - since) / 3_600_000);
  return { ...e, key, at, reminder: true, title: `Reminder: ${e.title}`, text: `${e.text}\nStill so after ${hours} hours (since ${new Date(since).toISOString()}).` };
}
