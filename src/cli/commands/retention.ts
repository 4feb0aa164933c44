import { isUuid, RETENTION_FIELDS } from '../../api/formats.ts';
import type { FleetPolicyBody, PolicyBody, PruneFleetBody, PruneSiteBody, ReconcileBody, SiteRetentionBody } from '../../api/retention.ts';
import type { Backup } from '../../api/types.ts';
import { badInput } from '../../errors.ts';
import { apiClient } from '../api-client.ts';
import type { Command, CommandContext, OptionsConfig } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { siteOrFleetCommand } from '../site-or-fleet.ts';
import { str } from '../values.ts';
import { siteId } from './backup-remote.ts';

// wpbackup retention show|set|clear, backups pin|unpin, prune, storage reconcile: the CLI
// over the retention routes (routes/retention.ts), with WPBACKUP_URL and WPBACKUP_TOKEN.

const API_HELP = 'SITE is a site id or name. Uses WPBACKUP_URL and WPBACKUP_TOKEN. Exit codes: 0 done, 1 failed (e.g. a deletion to be retried), 2 bad input or refused.';
const RULE_OPTIONS: OptionsConfig = Object.fromEntries(RETENTION_FIELDS.map((f) => [f.replace('_', '-'), { type: 'string' }]));

function onlyId(pos: string[], what: string, example: string): string {
  if (pos.length !== 1 || !pos[0] || !isUuid(pos[0])) throw badInput(`Name one ${what} by its id`, `e.g. ${example}`);
  return pos[0];
}

function count(name: string, text: string): number | null {
  if (text === 'off') return null;
  if (text === 'all') return -1;
  if (!/^[0-9]{1,7}$/.test(text)) throw badInput(`--${name} must be a whole number, "all" or "off", not "${text}"`, `e.g. --${name} 7`);
  return Number(text);
}

function policyOf(v: Record<string, unknown>): Partial<PolicyBody> {
  const out: Partial<PolicyBody> = {};
  for (const f of RETENTION_FIELDS) {
    const text = str(v[f.replace('_', '-')] as string | undefined);
    if (text !== undefined) out[f] = count(f.replace('_', '-'), text);
  }
  return out;
}

function rulesText(p: PolicyBody): string {
  const set = RETENTION_FIELDS.filter((f) => p[f]).map((f) => `${f} ${p[f] === -1 ? 'all' : String(p[f])}`);
  return set.length > 0 ? set.join(', ') : 'nothing set (keep everything)';
}

function print(ctx: CommandContext, json: boolean, body: unknown, text: string): void {
  ctx.stdout.write(json ? `${JSON.stringify(body)}\n` : text);
}

function fleetText(b: FleetPolicyBody): string {
  return `Fleet default: ${rulesText(b)} (buckets in ${b.time_zone})\n`;
}

function showSite(b: SiteRetentionBody): string {
  const lines = [`Site ${b.site_id}: ${b.source === 'site' ? 'its own policy' : b.source === 'fleet' ? 'the fleet default' : 'no policy (keep everything)'}`,
    `  applies:   ${rulesText(b.effective)} (buckets in ${b.time_zone})`,
    `  fleet:     ${rulesText(b.fleet)}`];
  for (const d of b.pending_deletions) lines.push(`  deletion pending: backup ${d.backup_id} (${d.attempts} failed tries, next ${d.retry_at ?? 'now'}): ${d.error ?? ''}`);
  return `${lines.join('\n')}\n`;
}

const text = { siteText: showSite, fleetText };

export const retentionShow = siteOrFleetCommand({
  path: ['retention', 'show'],
  summary: 'Show the fleet retention policy, or the one that applies to a site',
  usage: 'retention show [--site SITE] [--json]',
  help: API_HELP,
  text,
  calls: () => ({
    site: (api, id) => api.json<SiteRetentionBody>('GET', `/api/v1/sites/${id}/retention`),
    fleet: (api) => api.json<FleetPolicyBody>('GET', '/api/v1/retention'),
  }),
});

export const retentionSet = siteOrFleetCommand({
  path: ['retention', 'set'],
  summary: 'Set the fleet retention policy, or a site\'s own',
  usage: 'retention set [--site SITE] [--keep-last N] [--keep-hourly N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--keep-yearly N] [--time-zone TZ] [--json]',
  help: `Replaces the whole policy: rules not given are off. N is a count, "all" (every bucket) or "off".
Without --site, sets the fleet default that sites without their own follow, and --time-zone (IANA
name, default UTC) the buckets use. With --site, the site's own policy, which replaces the fleet
default for that site. ${API_HELP}`,
  options: { ...RULE_OPTIONS, 'time-zone': { type: 'string' } },
  text,
  calls(v) {
    const policy = policyOf(v);
    const tz = str(v['time-zone'] as string | undefined);
    if (str(v.site as string | undefined) !== undefined && tz !== undefined) throw badInput('--time-zone is the fleet\'s, not a site\'s', 'Set it without --site');
    return {
      site: (api, id) => api.json<SiteRetentionBody>('PUT', `/api/v1/sites/${id}/retention`, policy),
      fleet: (api) => api.json<FleetPolicyBody>('PUT', '/api/v1/retention', { ...policy, ...(tz === undefined ? {} : { time_zone: tz }) }),
    };
  },
});

export const retentionClear = siteOrFleetCommand({
  path: ['retention', 'clear'],
  summary: 'Remove a site\'s own policy (it follows the fleet default), or the fleet\'s (keep everything)',
  usage: 'retention clear [--site SITE] [--json]',
  help: API_HELP,
  text,
  calls: () => ({
    site: (api, id) => api.json<SiteRetentionBody>('DELETE', `/api/v1/sites/${id}/retention`),
    fleet: (api) => api.json<FleetPolicyBody>('PUT', '/api/v1/retention', {}),
  }),
});

function pinCommand(pin: boolean): Command {
  const verb = pin ? 'pin' : 'unpin';
  return {
    path: ['backups', verb],
    summary: pin ? 'Pin a backup: retention never deletes it' : 'Unpin a backup: retention applies to it again',
    usage: `backups ${verb} BACKUP_ID [--json]`,
    help: API_HELP,
    options: { json: { type: 'boolean' } },
    allowPositionals: true,
    async run(v, pos, ctx) {
      const id = onlyId(pos, 'backup', `wpbackup backups ${verb} 3d298266-633b-48b6-9662-07a1d9ee1c44`);
      const b = await apiClient(ctx.env).json<Backup>(pin ? 'POST' : 'DELETE', `/api/v1/backups/backups/${id}/pin`);
      print(ctx, v.json === true, b, `Backup ${b.id} ${b.pinned ? 'pinned' : 'unpinned'}\n`);
      return EXIT.ok;
    },
  };
}
export const backupsPin = pinCommand(true);
export const backupsUnpin = pinCommand(false);

function pruneText(s: PruneSiteBody): string {
  const head = `Site ${s.site_id}: ${s.policy} (${s.source} policy, buckets in ${s.time_zone})${s.skipped ? `: skipped, ${s.skipped}` : ''}`;
  const keep = s.keep.map((k) => `  keep    ${k.backup_id} ${k.created_at}  (${k.kept_by.join(', ')})`);
  const verb = (r: PruneSiteBody['remove'][number]): string => (r.deleted === true ? 'deleted' : r.deleted === false ? 'FAILED' : s.dry_run ? 'would delete' : 'left');
  const remove = s.remove.map((r) => `  ${verb(r).padEnd(12)} ${r.backup_id} ${r.created_at}  ${r.error ?? r.reason}`);
  return [head, ...keep, ...remove].join('\n') + '\n';
}

export const pruneCommand: Command = {
  path: ['prune'],
  summary: 'Apply retention now: to one site, or to every site',
  usage: 'prune [--site SITE] [--dry-run] [--json]',
  help: `Deletes the backups the policy keeps no more (object, then row), and lists what it kept and why.
--dry-run lists what would go and why, deleting nothing. Never deletes the newest completed
backup, a pinned one, or anything of a site whose backup is queued or running.
${API_HELP}`,
  options: { site: { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    const site = str(v.site);
    const api = apiClient(ctx.env);
    const body = { dry_run: v['dry-run'] === true };
    const sites = site !== undefined ? [await api.json<PruneSiteBody>('POST', `/api/v1/sites/${await siteId(api, site)}/prune`, body)] : (await api.json<PruneFleetBody>('POST', '/api/v1/prune', body)).sites;
    if (v.json === true) for (const s of sites) ctx.stdout.write(`${JSON.stringify(s)}\n`);
    else ctx.stdout.write(sites.length > 0 ? sites.map(pruneText).join('') : 'No site has backups\n');
    const failed = sites.flatMap((s) => s.remove.filter((r) => r.deleted === false));
    if (failed.length > 0) ctx.stderr.write(`${failed.length} deletion(s) failed; they are retried in the background (wpbackup retention show --site SITE)\n`);
    return failed.length > 0 ? EXIT.failed : EXIT.ok;
  },
};

export const storageReconcile: Command = {
  path: ['storage', 'reconcile'],
  summary: 'List orphans under a storage provider (rows without an object, objects without a row); --delete removes them',
  usage: 'storage reconcile --provider ID [--delete] [--grace-minutes N] [--json]',
  help: `Objects of uploads in progress, and objects younger than the grace period (default 360 minutes),
are never orphans. ${API_HELP}`,
  options: { provider: { type: 'string' }, delete: { type: 'boolean' }, 'grace-minutes': { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    const provider = str(v.provider);
    if (!provider || !isUuid(provider)) throw badInput('--provider must be a storage provider id', 'List them with GET /api/v1/storage-providers');
    const grace = str(v['grace-minutes']);
    if (grace !== undefined && !/^[0-9]{1,6}$/.test(grace)) throw badInput(`--grace-minutes must be a whole number, not "${grace}"`);
    const b = await apiClient(ctx.env).json<ReconcileBody>('POST', `/api/v1/storage-providers/${provider}/reconcile`, { delete: v.delete === true, ...(grace === undefined ? {} : { grace_minutes: Number(grace) }) });
    print(ctx, v.json === true, b, reconcileText(b));
    return b.removed && b.removed.errors.length > 0 ? EXIT.failed : EXIT.ok;
  },
};

function reconcileText(b: ReconcileBody): string {
  const lines = [`${b.location}: ${b.objects_scanned} objects; ${b.orphan_objects.length} without a row, ${b.orphan_rows.length} rows without an object (skipped: ${b.skipped.in_progress} uploading, ${b.skipped.recent} recent)`];
  for (const o of b.orphan_objects) lines.push(`  object without a row: ${o.key} (${o.size} bytes, ${o.modified})`);
  for (const r of b.orphan_rows) lines.push(`  row without an object: backup ${r.backup_id} (site ${r.site_id}, ${r.status}) ${r.key}`);
  if (b.removed) lines.push(`Removed ${b.removed.objects} object(s) and ${b.removed.rows} row(s)`, ...b.removed.errors.map((e) => `  failed: ${e}`));
  else if (b.orphan_objects.length + b.orphan_rows.length > 0) lines.push('Run again with --delete to remove them');
  return `${lines.join('\n')}\n`;
}
