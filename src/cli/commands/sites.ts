import { badInput } from '../../errors.ts';
import type { FoundSite } from '../../wordpress/discover.ts';
import type { Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';

// wpbackup sites scan: lists the WordPress sites on this server, as a table or JSON.
// The scan never reads out passwords, so none can be printed.

const DEFAULT_ROOTS = ['/var/www'];

export const sitesScan: Command = {
  path: ['sites', 'scan'],
  summary: 'Find the WordPress sites on this server',
  usage: 'sites scan [PATH...] [--depth N] [--json]',
  help: `Looks for WordPress installs under each PATH (default /var/www) and reads each one's
wp-config.php and version. Sites whose wp-config.php cannot be read are listed with the reason.

Options:
  --depth N   how many directory levels below each PATH to look (default 5)
  --json      a JSON array instead of a table

Examples:
  wpbackup sites scan
  wpbackup sites scan /srv/www /home --json`,
  options: {
    depth: { type: 'string' },
    json: { type: 'boolean' },
  },
  allowPositionals: true,
  async run(values, positionals, ctx) {
    const roots = positionals.length ? positionals : DEFAULT_ROOTS;
    const { scanSites } = await import('../../wordpress/discover.ts');
    const sites = await scanSites(roots, { maxDepth: depthOption(values.depth), signal: ctx.signal });
    if (values.json) ctx.stdout.write(JSON.stringify(sites, null, 2) + '\n');
    else if (!sites.length) ctx.stdout.write(`No WordPress sites found under ${roots.join(', ')}\n`);
    else ctx.stdout.write(sitesTable(sites));
    return EXIT.ok;
  },
};

function depthOption(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || n > 50) throw badInput(`--depth ${String(value)} is not a number from 0 to 50`, 'For example --depth 3');
  return n;
}

/** NAME PATH DB PREFIX VERSION, padded to line up, then one line per site that had an error. */
export function sitesTable(sites: FoundSite[]): string {
  const rows = [['NAME', 'PATH', 'DB', 'PREFIX', 'VERSION'], ...sites.map(siteRow)];
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((r) => r[col]?.length ?? 0))) ?? [];
  const lines = rows.map((r) => r.map((cell, col) => cell.padEnd(widths[col] ?? 0)).join('  ').trimEnd());
  const failed = sites.filter((s) => s.error);
  if (failed.length) {
    lines.push('', `${failed.length} site(s) could not be read:`);
    for (const s of failed) lines.push(`  ${s.name}: ${s.error}`);
  }
  return lines.join('\n') + '\n';
}

function siteRow(s: FoundSite): string[] {
  const db = s.dbName === undefined ? '-' : `${s.dbName}@${s.dbHost || 'localhost'}`;
  return [s.name, s.path, db, s.tablePrefix ?? '-', s.wpVersion ?? '-'];
}
