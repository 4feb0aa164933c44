import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { services } from '../test/helpers/services.ts';
import { REPO, runFloorCpu, runFloorNet, runOurs, runSpec, type BenchContext, type ContenderResult } from './contenders.ts';
import { formatReport, summarize } from './report.ts';
import { BENCH_HOME, ensureSite, removeSite, type SiteSpec } from './site-gen.ts';

// npm run bench [-- --db-mb N --files-mb N --files N --keep --runs N ...]
// Backs up one generated WordPress site four ways against the same MinIO and prints the
// figures side by side; the results also go to bench/results/latest.json.

const HELP = `Usage: npm run bench -- [options]

Generates a WordPress site of the given size (cached under ${BENCH_HOME}, keyed by size),
then measures, one after another and each from a dropped page cache and a fresh bucket:
  ours       wpbackup backup --to s3://... (the CLI, as a child process)
  spec       mysqldump to a file, cp -a wp-content, tar -I 'zstd -T0' to a file, SDK multipart upload, rm
  floor (i)  mysqldump > /dev/null, then tar -c wp-content | zstd -T0 > /dev/null
  floor (ii) the SDK upload alone of a file as large as our archive
and prints wall time, throughput, CPU, peak RSS and peak extra disk, with the targets.

Options:
  --db-mb N       database rows to generate, in MB (default 300)
  --files-mb N    wp-content size in MB (default 2048)
  --files N       wp-content files to generate (default 1.5 per MB, at least 100)
  --keep          keep the generated site afterwards, so the next run with the same sizes reuses it
                  (a kept site of the same size is always reused; without --keep it is removed at the end)
  --regen         rebuild the site even if a kept one exists
  --runs N        measure every contender N times (default 1); the table shows each one's fastest run
                  (others' work on the machine only slows a run down), the JSON has them all
  --only LIST     comma-separated subset of ours,spec,floor (default all)
  --ours-arg ARG  extra argument for wpbackup backup (repeatable), e.g. --ours-arg=--no-nice
  --ours-repo DIR measure the wpbackup CLI of another checkout (DIR/src/cli/main.ts), e.g. a prototype
  --out FILE      where to write the JSON results (default bench/results/latest.json)
`;

function positiveInt(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a whole number of at least 1, not ${v}`);
  return n;
}

function toolVersion(argv: string[]): string {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '?';
}

/** The commit and uncommitted changes of the measured checkout, so a result can be traced back. */
function gitState(dir: string): string {
  const head = spawnSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  if (head.status !== 0) return dir;
  const dirty = spawnSync('git', ['-C', dir, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
  return `${dir} @ ${head.stdout.trim()}${dirty.length ? ` + uncommitted: ${dirty.map((l) => l.slice(3)).join(', ')}` : ''}`;
}

/** The least disturbed run: other work on the machine only ever makes a run slower. */
function best(results: ContenderResult[]): ContenderResult {
  return [...results].sort((a, b) => a.m.wallS - b.m.wallS)[0] as ContenderResult;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      'db-mb': { type: 'string' }, 'files-mb': { type: 'string' }, files: { type: 'string' },
      keep: { type: 'boolean' }, regen: { type: 'boolean' }, runs: { type: 'string' }, only: { type: 'string' },
      'ours-arg': { type: 'string', multiple: true }, 'ours-repo': { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  const dbMb = positiveInt(v['db-mb'], 'db-mb', 300);
  const filesMb = positiveInt(v['files-mb'], 'files-mb', 2048);
  const spec: SiteSpec = { dbMb, filesMb, files: positiveInt(v.files, 'files', Math.max(100, Math.round(filesMb * 1.5))) };
  const runs = positiveInt(v.runs, 'runs', 1);
  const only = new Set((v.only ?? 'ours,spec,floor').split(',').map((s) => s.trim()));
  for (const o of only) if (!['ours', 'spec', 'floor'].includes(o)) throw new Error(`--only takes ours, spec and floor, not ${o}`);
  const out = v.out ?? join(REPO, 'bench/results/latest.json');
  const log = (msg: string): void => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;

  const svc = services();
  const { site, reused } = await ensureSite(spec, { regen: v.regen, log });
  if (reused) log(`reusing the kept site ${site.key} (${site.wpContentFiles} files, ${(site.wpContentBytes / 1e6).toFixed(0)} MB in wp-content)`);
  const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const work = join(BENCH_HOME, 'work', runId);
  mkdirSync(work, { recursive: true, mode: 0o700 });
  const oursRepo = resolve(v['ours-repo'] ?? REPO);
  const ctx: BenchContext = { site, work, s3: svc.minio, runId, oursRepo, oursArgs: v['ours-arg'] ?? [], log };
  const all: Record<string, ContenderResult[]> = {};
  const add = (r: ContenderResult): void => void (all[r.name] ??= []).push(r);
  try {
    for (let i = 1; i <= runs; i++) {
      if (runs > 1) log(`run ${i} of ${runs}`);
      let archiveBytes: number | null = null;
      if (only.has('ours')) {
        const r = await runOurs(ctx);
        archiveBytes = r.archiveBytes;
        add(r);
      }
      if (only.has('spec')) {
        const r = await runSpec(ctx);
        archiveBytes ??= r.archiveBytes;
        add(r);
      }
      if (only.has('floor')) {
        add(await runFloorCpu(ctx));
        // Without an archive of our own to match, about what zstd makes of this site.
        const bytes = archiveBytes ?? Math.round(site.wpContentBytes + site.sqlBytes / 5);
        add(await runFloorNet(ctx, bytes));
        add(await runFloorNet(ctx, bytes, 'ours'));
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
    if (!v.keep) {
      log(`removing the generated site ${site.key} (pass --keep to reuse it next time)`);
      await removeSite(site);
    }
  }

  const chosen = Object.fromEntries(Object.entries(all).map(([k, rs]) => [k, best(rs)]));
  const ranges = Object.fromEntries(Object.entries(all).map(([k, rs]) => [k, rs.map((r) => r.m.wallS)]));
  const summary = summarize(chosen, site, cpus().length);
  const env = {
    cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', memGiB: Math.round(totalmem() / 2 ** 30), kernel: release(), node: process.version,
    wpbackup: gitState(oursRepo),
    zstd: toolVersion(['zstd', '--version']).replace(/^\*+\s*|\s*\*+$/g, '').replace(/, by .*$/, ''), tar: toolVersion(['tar', '--version']), mysqldump: toolVersion(['mariadb-dump', '--version']),
  };
  const report = formatReport({ command, site, summary, runs, env, siteReused: reused, ranges });
  process.stdout.write(report);
  mkdirSync(join(out, '..'), { recursive: true });
  const { dbPassword: _secret, ...siteInfo } = site;
  writeFileSync(out, JSON.stringify({ command, date: new Date().toISOString(), env, spec, site: siteInfo, siteReused: reused, runs, summary, all }, null, 2) + '\n');
  log(`results written to ${out}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
