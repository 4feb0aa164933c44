import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { DownloadResponse } from '../../api/types.ts';
import type { NamedDb } from '../../engine/restore-db.ts';
import type { RestoreStep } from '../../engine/restore.ts';
import { badInput } from '../../errors.ts';
import { apiClient } from '../api-client.ts';
import type { Command } from '../command.ts';
import { runRestore } from '../lazy.ts';
import { EXIT } from '../exit-codes.ts';
import { progressFor } from '../render.ts';
import { str } from '../values.ts';

const MAX_PASSWORD_BYTES = 4096;

function firstLine(text: string): string {
  return (text.split('\n')[0] ?? '').replace(/\r$/, '');
}

/** A password file: a regular file (no link) that only its owner can read, as for ssh keys. */
async function passwordFromFile(path: string): Promise<string> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    throw badInput(`Cannot open --db-password-file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'Pass a plain file (not a link) holding the password on its first line', err);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw badInput(`--db-password-file ${path} is not a plain file`, 'Pass a file holding the password on its first line');
    if (st.mode & 0o077) throw badInput(`--db-password-file ${path} has mode ${(st.mode & 0o777).toString(8)}: others can read it`, `chmod 600 ${path}`);
    const buf = Buffer.alloc(MAX_PASSWORD_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return firstLine(buf.subarray(0, bytesRead).toString('utf8'));
  } finally {
    await fh.close();
  }
}

async function passwordFromStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += (chunk as Buffer).toString('utf8');
    if (text.includes('\n') || text.length > MAX_PASSWORD_BYTES) break;
  }
  return firstLine(text);
}

type Values = Parameters<Command['run']>[0];

/** --db-*: the database for a site without wp-config.php; the password never on argv. */
async function namedDb(v: Values): Promise<NamedDb | undefined> {
  const name = str(v['db-name']);
  const user = str(v['db-user']);
  const host = str(v['db-host']);
  const file = str(v['db-password-file']);
  const stdin = v['db-password-stdin'] === true;
  if (!name) {
    if (user || host || file || stdin) throw badInput('--db-user, --db-host and the password options need --db-name', 'Name the database to restore into with --db-name');
    return undefined;
  }
  if (!user) throw badInput('--db-name needs --db-user', 'Name the database user the restored site will use');
  if (file && stdin) throw badInput('Pass the password one way: --db-password-file or --db-password-stdin', 'Drop one of them');
  if (!file && !stdin) throw badInput(`No password for database user '${user}'`, 'Pass --db-password-file FILE (mode 0600) or pipe it with --db-password-stdin; passwords are never taken from the command line');
  const password = file ? await passwordFromFile(file) : await passwordFromStdin();
  return { name, user, password, host };
}

/** --backup ID: the download URL and the sha256 the server recorded at upload. */
async function fromServer(id: string, env: NodeJS.ProcessEnv): Promise<{ url: string; sha256?: string }> {
  const d = await apiClient(env).json<DownloadResponse>('GET', `/api/v1/backups/backups/${encodeURIComponent(id)}/download`);
  return { url: d.url, sha256: d.sha256 || undefined };
}

export const restoreCommand: Command = {
  path: ['restore'],
  summary: 'Restore a backup into a WordPress site',
  usage: 'restore (ARCHIVE | --backup ID) --site PATH [--sha256 HEX] [--db-name NAME --db-user USER --db-password-file FILE] [--force] [--keep-old]',
  help: `ARCHIVE is a .tar.zst path, s3://bucket/key, or an https:// download URL. The archive is
streamed (download, zstd -d, tar) into a staging dir beside the site, checked, the database is
imported, then wp-content is swapped in with a rename. The old wp-content is kept until the
import succeeded. WordPress core files are not in backups: install them first.

The archive is treated as untrusted: database.sql may hold no mysql client commands (\\!,
system, source, ...; the client runs in --binary-mode and --sandbox), members outside the
layout, '..' or absolute names, and hard links refuse the restore; setuid bits are dropped;
links out of wp-content, devices and FIFOs are left out (listed as notes). Restored files
belong to the owner of the site directory.

The target database comes from the site's wp-config.php. A site without one needs the
database named with --db-name/--db-user/--db-password-*: the archive's wp-config.php names
the database of the site the backup came from and is never used for that. It is installed
with its DB_* settings pointed at the named database. Either way the database is checked
(login, no tables unless --force) before anything is downloaded.

Options:
  --site PATH              the WordPress root to restore into (created if missing)
  --backup ID              restore a backup the server holds (WPBACKUP_URL, WPBACKUP_TOKEN):
                           its download link and the sha256 recorded at upload are fetched
  --sha256 HEX             the archive's sha256 (e.g. from the server's download reply):
                           checked before anything is imported
  --db-name NAME           the database to restore into, for a site without wp-config.php
  --db-user USER           its user
  --db-host HOST           DB_HOST syntax: host, host:port or localhost:/path/to.sock (default localhost)
  --db-password-file FILE  the password, on the file's first line; the file must be mode 0600
  --db-password-stdin      read the password from stdin's first line
  --force                  import into a database that already has tables
  --keep-old               keep the replaced wp-content as wp-content.wpbackup-old-<time>
  --s3-config FILE         S3 settings as JSON (mode 0600) instead of the AWS_* variables
  --json                   progress and result as JSON lines on stdout

Exit codes: 0 done, 1 failed, 2 bad input (or an archive refused), 130 stopped.`,
  options: {
    site: { type: 'string' },
    backup: { type: 'string' },
    sha256: { type: 'string' },
    'db-name': { type: 'string' },
    'db-user': { type: 'string' },
    'db-host': { type: 'string' },
    'db-password-file': { type: 'string' },
    'db-password-stdin': { type: 'boolean' },
    force: { type: 'boolean' },
    'keep-old': { type: 'boolean' },
    's3-config': { type: 'string' },
    json: { type: 'boolean' },
  },
  allowPositionals: true,
  async run(v, pos, ctx) {
    const backupId = str(v.backup);
    if (backupId ? pos.length > 0 : pos.length !== 1) throw badInput('restore takes exactly one ARCHIVE, or --backup ID', 'e.g. wpbackup restore s3://bucket/<node>/<site>/site_20250101_120000.tar.zst --site /var/www/site');
    const site = str(v.site);
    if (!site) throw badInput('--site is required', 'Pass the WordPress root to restore into');
    let sha256 = str(v.sha256);
    if (sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(sha256)) throw badInput(`--sha256 ${sha256} is not a sha256`, 'Pass the 64 hex digits, e.g. the sha256 field of GET /api/v1/backups/backups/{id}/download');
    const db = await namedDb(v);
    let archive = pos[0] as string;
    if (backupId) {
      const d = await fromServer(backupId, ctx.env);
      if (sha256 && d.sha256 && sha256.toLowerCase() !== d.sha256) throw badInput(`--sha256 differs from the ${d.sha256} the server recorded for backup ${backupId}`, 'Drop --sha256; the server\'s is used');
      archive = d.url;
      sha256 = sha256 ?? d.sha256;
    }
    const json = v.json === true;
    const result = await runRestore({
      archive,
      sitePath: site,
      db,
      sha256,
      force: v.force === true,
      keepOld: v['keep-old'] === true,
      env: ctx.env,
      s3ConfigFile: str(v['s3-config']),
      signal: ctx.signal,
      progress: progressFor<RestoreStep>(json, ctx.stdout, ctx.stderr),
    });
    if (json) ctx.stdout.write(JSON.stringify({ type: 'result', ...result }) + '\n');
    else {
      ctx.stdout.write(`Restored ${result.manifest.site.name} (${result.manifest.created_at}) into ${result.sitePath}, database '${result.database}'\n`);
      if (result.oldWpContent) ctx.stdout.write(`  previous wp-content kept at ${result.oldWpContent}\n`);
      for (const w of result.warnings) ctx.stdout.write(`  note: ${w}\n`);
    }
    return EXIT.ok;
  },
};
