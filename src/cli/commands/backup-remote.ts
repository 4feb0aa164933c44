import { END_STATUSES, isUuid } from '../../api/formats.ts';
import type { BackupStatusBody, Site, StartBackupResponse } from '../../api/types.ts';
import type { ProgressEvent } from '../../engine/progress.ts';
import { badInput } from '../../errors.ts';
import { apiClient, sseEvents, type ApiClient } from '../api-client.ts';
import type { Command, CommandContext } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { progressFor } from '../render.ts';

// wpbackup backup start SITE / backup watch SITE: the same as scripts/start_backup.sh and
// monitor_backup.sh, against a running server, with a progress bar.

const ENDED: ReadonlySet<string> = new Set(END_STATUSES);

/** A site id, or a site name looked up in the sites the token can see. */
export async function siteId(api: ApiClient, ref: string | undefined): Promise<string> {
  if (!ref) throw badInput('Name the site: a site id or name', "List them with GET /api/v1/sites");
  if (isUuid(ref)) return ref;
  const list = (await api.json<{ sites: Site[] }>('GET', '/api/v1/sites')).sites;
  const found = list.filter((s) => s.name === ref);
  if (found.length !== 1) throw badInput(found.length ? `${found.length} sites are named ${ref}` : `No site named ${ref}`, 'Pass the site id instead');
  return (found[0] as Site).id;
}

function toEvent(s: BackupStatusBody): ProgressEvent {
  return { status: s.status, progress: s.progress, stage: s.stage, stage_detail: s.stage_detail ?? '', error: s.error, bytes_done: 0, bytes_total: 0 };
}

async function watch(api: ApiClient, id: string, ctx: CommandContext, json: boolean): Promise<number> {
  const progress = progressFor(json, ctx.stdout, ctx.stderr);
  let last: BackupStatusBody | undefined;
  const stream = await api.stream(`/api/v1/sites/${id}/backup/events`, ctx.signal);
  for await (const { data } of sseEvents(stream)) {
    last = data as BackupStatusBody;
    progress.event(toEvent(last));
    if (ENDED.has(last.status)) break;
  }
  if (!last) return EXIT.failed;
  if (last.status === 'completed') ctx.stdout.write(json ? '' : `Backup ${last.backup_id} completed\n`);
  return last.status === 'completed' ? EXIT.ok : last.status === 'stopped' ? EXIT.stopped : EXIT.failed;
}

export const backupStart: Command = {
  path: ['backup', 'start'],
  summary: 'Start a backup of a site on the server (and watch it with --watch)',
  usage: 'backup start SITE [--watch] [--json]',
  help: `SITE is a site id or name. Uses WPBACKUP_URL and WPBACKUP_TOKEN.
Exit codes: 0 started (or, with --watch, completed), 1 failed, 2 bad input or refused (e.g. already running, quota), 130 stopped.`,
  options: { watch: { type: 'boolean' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(v, pos, ctx) {
    const api = apiClient(ctx.env);
    const id = await siteId(api, pos[0]);
    const job = await api.json<StartBackupResponse>('POST', `/api/v1/sites/${id}/backup/start`);
    if (v.json) ctx.stdout.write(JSON.stringify({ type: 'started', ...job }) + '\n');
    else ctx.stdout.write(`Backup started: job ${job.job_id} for site ${id}\n`);
    return v.watch ? watch(api, id, ctx, v.json === true) : EXIT.ok;
  },
};

export const backupWatch: Command = {
  path: ['backup', 'watch'],
  summary: "Follow a site's backup live until it ends",
  usage: 'backup watch SITE [--json]',
  help: `SITE is a site id or name. Uses WPBACKUP_URL and WPBACKUP_TOKEN.
Exit codes: 0 completed, 1 failed, 2 bad input, 130 stopped.`,
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  async run(v, pos, ctx) {
    const api = apiClient(ctx.env);
    return watch(api, await siteId(api, pos[0]), ctx, v.json === true);
  },
};
