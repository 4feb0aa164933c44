import type { RestoreStep } from '../../engine/restore.ts';
import { badInput } from '../../errors.ts';
import type { Command } from '../command.ts';
import { runRestore } from '../lazy.ts';
import { EXIT } from '../exit-codes.ts';
import { progressFor } from '../render.ts';
import { str } from '../values.ts';

export const restoreCommand: Command = {
  path: ['restore'],
  summary: 'Restore a backup into a WordPress site',
  usage: 'restore ARCHIVE --site PATH [--force] [--keep-old]',
  help: `ARCHIVE is a .tar.zst path, s3://bucket/key, or an https:// download URL. The archive is
streamed (download, zstd -d, tar) into a staging dir beside the site, checked against its
manifest, the database is imported, then wp-content is swapped in with a rename. The old
wp-content is kept until the import succeeded.

The target database comes from the site's wp-config.php; a site without one gets the
archive's wp-config.php. WordPress core files are not in backups: install them first.

Options:
  --site PATH          the WordPress root to restore into (created if missing)
  --force              import into a database that already has tables
  --keep-old           keep the replaced wp-content as wp-content.wpbackup-old-<time>
  --s3-config FILE     S3 settings as JSON (mode 0600) instead of the AWS_* variables
  --json               progress and result as JSON lines on stdout

Exit codes: 0 done, 1 failed, 2 bad input, 130 stopped.`,
  options: {
    site: { type: 'string' },
    force: { type: 'boolean' },
    'keep-old': { type: 'boolean' },
    's3-config': { type: 'string' },
    json: { type: 'boolean' },
  },
  allowPositionals: true,
  async run(v, pos, ctx) {
    const archive = pos[0];
    if (!archive || pos.length > 1) throw badInput('restore takes exactly one ARCHIVE', 'e.g. wpbackup restore s3://bucket/<node>/<site>/site_20250101_120000.tar.zst --site /var/www/site');
    const site = str(v.site);
    if (!site) throw badInput('--site is required', 'Pass the WordPress root to restore into');
    const json = v.json === true;
    const result = await runRestore({
      archive,
      sitePath: site,
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
