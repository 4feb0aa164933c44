import { join, resolve } from 'node:path';
import { nodeUuid, resolveDataDir, siteUuid } from '../../datadir.ts';
import type { BackupResult } from '../../engine/backup.ts';
import { formatBytes } from '../../engine/progress.ts';
import { badInput } from '../../errors.ts';
import type { Command, CommandContext } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { parseRate } from '../../engine/throttle.ts';
import { progressFor } from '../render.ts';
import { str, strs } from '../values.ts';

// wpbackup backup --site PATH --to DEST: the whole backup from the command line, no server.

function report(r: BackupResult, ctx: CommandContext, seconds: number): void {
  const w = r.manifest.wp_content;
  const out = ctx.stdout;
  out.write(`Backup complete: ${r.location}\n`);
  out.write(`  ${formatBytes(r.size)} compressed, sha256 ${r.sha256}, ${seconds.toFixed(1)} s\n`);
  out.write(`  database ${formatBytes(r.manifest.database.bytes)}, wp-content ${w.files} files ${formatBytes(w.bytes)}\n`);
  const problems = [...w.unreadable, ...w.changed, ...w.skipped];
  if (problems.length) {
    out.write(`  ${problems.length} path(s) could not be backed up as they were:\n`);
    for (const p of problems.slice(0, 20)) out.write(`    ${p.path}: ${p.reason}\n`);
    if (problems.length > 20) out.write(`    ... and ${problems.length - 20} more (see manifest.json in the archive)\n`);
  }
  if (r.orphans.abortedUploads || r.orphans.removed.length) out.write(`  cleaned up after ${r.orphans.removed.length} earlier run(s) that were killed\n`);
}

export const backupCommand: Command = {
  path: ['backup'],
  summary: 'Back up one WordPress site to a directory or S3',
  usage: 'backup --site PATH [--to DEST] [options]',
  help: `Dumps the database, reads wp-content in place and streams one .tar.zst to DEST as it is
made: no temp copies, only the database dump touches the temp dir.

Options:
  --site PATH          the WordPress root (holds wp-config.php or wp-settings.php)
  --to DEST            a directory or s3://bucket[/prefix] (default: $WPBACKUP_DEST or DATA_DIR/backups)
  --name NAME          site name used in the file name (default: siteurl's host)
  --exclude PATTERN    leave out wp-content paths (gitignore rules; repeatable)
  --no-default-excludes  keep wp-content/cache, wflogs and backup plugins' archives
  --no-config-files    leave wp-config.php and .htaccess out of the archive
  --level N            zstd level, 1-19 (default 3)
  --compress-all       also compress media that is compressed already (JPEG, PNG, MP4, ZIP...),
                       which is otherwise stored as is: zstd would spend most of its CPU on it
                       for well under 1% of its size
  --limit-upload RATE  cap upload bandwidth, e.g. 10M (bytes per second; K, M, G)
  --data-dir DIR       node/site ids and temp dirs (default $WPBACKUP_DATA_DIR or /var/lib/wpbackup)
  --temp-dir DIR       where the database dump is written (default DATA_DIR/tmp; $WPBACKUP_TEMP_DIR)
  --s3-config FILE     S3 settings as JSON (mode 0600) instead of the AWS_* variables
  --no-nice            run children at normal priority (default: nice 10)
  --json               progress and result as JSON lines on stdout

S3 settings: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
Exit codes: 0 done, 1 failed, 2 bad input, 3 done but some files were left out, 130 stopped.`,
  options: {
    site: { type: 'string' },
    to: { type: 'string' },
    name: { type: 'string' },
    exclude: { type: 'string', multiple: true },
    'no-default-excludes': { type: 'boolean' },
    'no-config-files': { type: 'boolean' },
    level: { type: 'string' },
    'compress-all': { type: 'boolean' },
    'limit-upload': { type: 'string' },
    'data-dir': { type: 'string' },
    'temp-dir': { type: 'string' },
    's3-config': { type: 'string' },
    'no-nice': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    const site = str(v.site);
    if (!site) throw badInput('--site is required', 'Pass the WordPress root, e.g. --site /var/www/example.com');
    const level = Number(str(v.level) ?? '3');
    if (!Number.isInteger(level) || level < 1 || level > 19) throw badInput(`--level must be a whole number from 1 to 19, not ${str(v.level)}`);
    const dataDir = resolveDataDir(str(v['data-dir']), ctx.env);
    const dest = str(v.to) ?? ctx.env.WPBACKUP_DEST ?? join(dataDir, 'backups');
    // Loaded here, not at the top: `wpbackup --help` and the other commands never pay for the engine.
    const [{ runBackup }, { openStorage }] = await Promise.all([import('../../engine/backup.ts'), import('../../storage/open.ts')]);
    const storageOpts = { env: ctx.env, s3ConfigFile: str(v['s3-config']) };
    const storage = openStorage(dest, storageOpts);
    const json = v.json === true;
    const started = performance.now();
    const result = await runBackup({
      sitePath: resolve(site),
      storage,
      destination: dest,
      nodeUuid: nodeUuid(dataDir),
      siteUuid: (p) => siteUuid(dataDir, p),
      tempBase: resolve(str(v['temp-dir']) ?? ctx.env.WPBACKUP_TEMP_DIR ?? join(dataDir, 'tmp')),
      siteName: str(v.name),
      excludes: strs(v.exclude),
      defaultExcludes: v['no-default-excludes'] !== true,
      includeConfigFiles: v['no-config-files'] !== true,
      zstdLevel: level,
      compressAll: v['compress-all'] === true,
      limitUploadBytesPerSec: str(v['limit-upload']) ? parseRate(str(v['limit-upload']) ?? '') : undefined,
      nice: v['no-nice'] === true ? 0 : 10,
      signal: ctx.signal,
      progress: progressFor(json, ctx.stdout, ctx.stderr),
      storageFor: (d) => openStorage(d, storageOpts),
    });
    const seconds = (performance.now() - started) / 1000;
    if (json) ctx.stdout.write(JSON.stringify({ type: 'result', ...result, manifest: result.manifest }) + '\n');
    else report(result, ctx, seconds);
    const w = result.manifest.wp_content;
    return w.unreadable.length + w.changed.length + w.skipped.length > 0 ? EXIT.okWithWarnings : EXIT.ok;
  },
};
