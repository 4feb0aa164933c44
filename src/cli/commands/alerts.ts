import type { Channel, ChannelList, CreatedChannel, Delivery, DeliveryList, Subscription } from '../../api/alert-types.ts';
import { badInput } from '../../errors.ts';
import { apiClient } from '../api-client.ts';
import type { Command, CommandContext, OptionsConfig } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { str } from '../values.ts';
import { firstLine } from './users.ts';

// `wpbackup alerts ...`: alert channels, subscriptions and delivery logs over the API
// (WPBACKUP_URL, WPBACKUP_TOKEN). An SMTP password is read from stdin, never from the command
// line; a webhook's signing secret is printed once, when the channel is added.

type Values = Parameters<Command['run']>[0];
const JSON_OPT: OptionsConfig = { json: { type: 'boolean' } };
const API_HELP = `Talks to the server at WPBACKUP_URL with the API token in WPBACKUP_TOKEN.
  --json               one JSON object on stdout`;

function out(ctx: CommandContext, v: Values, body: unknown, text: string): number {
  ctx.stdout.write(v.json ? `${JSON.stringify(body)}\n` : text);
  return EXIT.ok;
}

function one(pos: string[], what: string, example: string): string {
  if (pos.length !== 1 || !pos[0]) throw badInput(`Name one ${what} (its id)`, `e.g. ${example}`);
  return encodeURIComponent(pos[0]);
}

/** "all" (or nothing): every site; else comma-separated site ids. */
function sitesOf(v: Values): string[] | null {
  const s = str(v.sites);
  return s === undefined || s === 'all' ? null : s.split(',').map((x) => x.trim()).filter(Boolean);
}

function channelLine(c: Channel): string {
  const where = c.webhook ? c.webhook.url : c.email ? `${c.email.host}:${c.email.port} to ${c.email.to.join(', ') || '(subscribers only)'}` : '';
  return `${c.id}  ${c.type.padEnd(7)}  ${c.name}${where ? `  ${where}` : ''}${c.site_ids ? `  (${c.site_ids.length} sites)` : ''}\n`;
}

function deliveryLine(d: Delivery): string {
  const err = d.last_error ? `  ${d.last_error}` : '';
  return `${d.created_at}  ${d.state.padEnd(7)}  ${d.kind.padEnd(16)}  attempts ${d.attempts}${d.state === 'pending' ? `, next ${d.next_attempt_at}` : ''}${err}\n`;
}

export const alertsChannelsList: Command = {
  path: ['alerts', 'channels', 'list'], summary: 'List alert channels', usage: 'alerts channels list [--json]', help: API_HELP,
  options: JSON_OPT, allowPositionals: false,
  async run(v, _pos, ctx) {
    const { channels } = await apiClient(ctx.env).json<ChannelList>('GET', '/api/v1/alerts/channels');
    return out(ctx, v, { channels }, channels.map(channelLine).join('') || 'No alert channels.\n');
  },
};

export const alertsChannelsAdd: Command = {
  path: ['alerts', 'channels', 'add'], summary: 'Add an alert channel: email (SMTP) or a signed webhook (super_admin)',
  usage: 'alerts channels add --name NAME (--url URL | --smtp-host HOST --from ADDR [--to ADDR,...] ...) [--sites all|ID,...] [--on-success] [--json]',
  help: `A webhook (--url) gets JSON POSTs signed with X-Wpbackup-Signature: sha256=<HMAC-SHA256 of the body>;
its secret is printed once, now. An email channel sends through an SMTP server:
  --smtp-host HOST --smtp-port PORT (587) --tls none|starttls|tls (starttls) --smtp-user USER
  --smtp-password-stdin   read the SMTP password from the first line of stdin
  --from ADDR --to ADDR,ADDR   (without --to, only subscribed users get mail)
Both:
  --sites all|ID,ID    the sites the channel hears about (default all)
  --on-success         tell it of completed backups too
${API_HELP}`,
  options: {
    ...JSON_OPT, name: { type: 'string' }, url: { type: 'string' }, 'smtp-host': { type: 'string' }, 'smtp-port': { type: 'string' }, tls: { type: 'string' },
    'smtp-user': { type: 'string' }, 'smtp-password-stdin': { type: 'boolean' }, from: { type: 'string' }, to: { type: 'string' }, sites: { type: 'string' }, 'on-success': { type: 'boolean' },
  },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    const name = str(v.name);
    if (!name) throw badInput('--name is required', "See 'wpbackup alerts channels add --help'");
    const url = str(v.url);
    const host = str(v['smtp-host']);
    if (!url === !host) throw badInput('Give either --url (a webhook) or --smtp-host (email)', "See 'wpbackup alerts channels add --help'");
    const common = { name, site_ids: sitesOf(v), on_success: v['on-success'] === true };
    let body: Record<string, unknown>;
    if (url) body = { ...common, type: 'webhook', webhook: { url } };
    else {
      const port = Number(str(v['smtp-port']) ?? '587');
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw badInput(`--smtp-port must be a port number, not ${str(v['smtp-port'])}`);
      const password = v['smtp-password-stdin'] ? await firstLine(process.stdin, 1024) : undefined;
      const to = (str(v.to) ?? '').split(',').map((x) => x.trim()).filter(Boolean);
      body = { ...common, type: 'email', email: { host, port, tls: str(v.tls) ?? 'starttls', user: str(v['smtp-user']) ?? null, from: str(v.from), to, ...(password ? { password } : {}) } };
    }
    const c = await apiClient(ctx.env).json<CreatedChannel>('POST', '/api/v1/alerts/channels', body);
    const secret = c.secret ? `Signing secret (shown once; keep it with the receiver): ${c.secret}\n` : '';
    return out(ctx, v, c, `Added ${channelLine(c)}${secret}`);
  },
};

export const alertsChannelsRemove: Command = {
  path: ['alerts', 'channels', 'remove'], summary: 'Remove an alert channel (super_admin)', usage: 'alerts channels remove CHANNEL_ID [--json]', help: API_HELP,
  options: JSON_OPT, allowPositionals: true,
  async run(v, pos, ctx) {
    const id = one(pos, 'channel', 'wpbackup alerts channels remove 0b6f…');
    await apiClient(ctx.env).json('DELETE', `/api/v1/alerts/channels/${id}`);
    return out(ctx, v, { removed: decodeURIComponent(id) }, 'Removed.\n');
  },
};

export const alertsChannelsTest: Command = {
  path: ['alerts', 'channels', 'test'], summary: 'Send a test alert through a channel now (super_admin)', usage: 'alerts channels test CHANNEL_ID [--to ADDR] [--json]',
  help: `Prints the delivery after its first attempt; a failed one is retried with backoff (see 'alerts deliveries').
  --to ADDR            email channels: send to this address instead of the channel's recipients
${API_HELP}`,
  options: { ...JSON_OPT, to: { type: 'string' } }, allowPositionals: true,
  async run(v, pos, ctx) {
    const id = one(pos, 'channel', 'wpbackup alerts channels test 0b6f…');
    const to = str(v.to);
    const d = await apiClient(ctx.env).json<Delivery>('POST', `/api/v1/alerts/channels/${id}/test`, to ? { to: [to] } : {});
    return out(ctx, v, d, deliveryLine(d));
  },
};

export const alertsSubscribe: Command = {
  path: ['alerts', 'subscribe'], summary: 'Mail me alerts for my sites through an email channel',
  usage: 'alerts subscribe --channel CHANNEL_ID [--sites all|ID,...] [--on-success] [--json]',
  help: `Alerts about the sites you may read (all of them, or those listed) go to your account's email.
  --on-success         completed backups too
${API_HELP}`,
  options: { ...JSON_OPT, channel: { type: 'string' }, sites: { type: 'string' }, 'on-success': { type: 'boolean' } }, allowPositionals: false,
  async run(v, _pos, ctx) {
    const channel = str(v.channel);
    if (!channel) throw badInput('--channel is required', "List channels with 'wpbackup alerts channels list'");
    const s = await apiClient(ctx.env).json<Subscription>('POST', '/api/v1/alerts/subscriptions', { channel_id: channel, site_ids: sitesOf(v), on_success: v['on-success'] === true });
    return out(ctx, v, s, `Subscribed (${s.id}).\n`);
  },
};

export const alertsUnsubscribe: Command = {
  path: ['alerts', 'unsubscribe'], summary: 'Remove one of my alert subscriptions', usage: 'alerts unsubscribe SUBSCRIPTION_ID [--json]', help: API_HELP,
  options: JSON_OPT, allowPositionals: true,
  async run(v, pos, ctx) {
    const id = one(pos, 'subscription', 'wpbackup alerts unsubscribe 5e1c…');
    await apiClient(ctx.env).json('DELETE', `/api/v1/alerts/subscriptions/${id}`);
    return out(ctx, v, { removed: decodeURIComponent(id) }, 'Unsubscribed.\n');
  },
};

export const alertsDeliveries: Command = {
  path: ['alerts', 'deliveries'], summary: "A channel's delivery log, newest first (super_admin)", usage: 'alerts deliveries --channel CHANNEL_ID [--limit N] [--json]',
  help: `  --limit N            at most N deliveries (default 50)
${API_HELP}`,
  options: { ...JSON_OPT, channel: { type: 'string' }, limit: { type: 'string' } }, allowPositionals: false,
  async run(v, _pos, ctx) {
    const channel = str(v.channel);
    if (!channel) throw badInput('--channel is required', "List channels with 'wpbackup alerts channels list'");
    const limit = str(v.limit) ?? '50';
    if (!/^[0-9]{1,3}$/.test(limit)) throw badInput(`--limit must be a number from 1 to 500, not ${limit}`);
    const { deliveries } = await apiClient(ctx.env).json<DeliveryList>('GET', `/api/v1/alerts/channels/${encodeURIComponent(channel)}/deliveries?limit=${limit}`);
    return out(ctx, v, { deliveries }, deliveries.map(deliveryLine).join('') || 'No deliveries yet.\n');
  },
};

export const ALERT_COMMANDS: Command[] = [alertsChannelsList, alertsChannelsAdd, alertsChannelsRemove, alertsChannelsTest, alertsSubscribe, alertsUnsubscribe, alertsDeliveries];
