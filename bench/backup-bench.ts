import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { services } from '../test/helpers/services.ts';
import { REPO, runFloorCpu, runFloorNet, runOurs, runSpec, type BenchContext, type ContenderResult } from './contenders.ts';
import { makeArchive, measureStartup, runFloorFsync, runRestore, runRestoreFloor, runSpecLocal, type Startup } from './more-contenders.ts';
import { formatReport, summarize } from './report.ts';
import { BENCH_HOME, ensureSite, removeSite, SHAPES, type Shape, type SiteSpec } from './site-gen.ts';

// npm run bench [-- --shape many-files --db-mb N --files-mb N --files N --keep --runs N ...]
// Backs up one generated WordPress site to MinIO and to a local dir, restores it, each against
// the spec's pipeline and its floor, and prints the figures side by side; the results also go
// to bench/results/latest.json.

const HELP = `Usage: npm run bench -- [options]

Generates a WordPress site of the given shape and size (cached under ${BENCH_HOME}, keyed by
both), then measures, one after another and each from a dropped page cache and a fresh bucket:

  backup to S3 (MinIO)
    ours         bin/wpbackup backup --to s3://... (README's way of calling it)
    spec         mysqldump to a file, cp -a wp-content, tar -I 'zstd -T0' to a file, SDK multipart upload, rm
    floor (i)    mysqldump > /dev/null, then tar -c wp-content | zstd -T0 > /dev/null
    floor (ii)   the SDK upload alone of a file as large as our archive (and, for information,
                 the same upload by wpbackup's own uploader)
  backup to a local dir
    ours-local   bin/wpbackup backup --to DIR
    spec-local   the spec pipeline with the archive written into DIR and synced, no upload
    floor (iii)  dd conv=fsync of a file as large as our archive (the floor is max(i, iii))
  restore (of ours-local's archive, or of an untimed one)
    restore      bin/wpbackup restore ARCHIVE --site NEW_DIR --db-name ... into a fresh, empty database
    restore floor  zstd -d < ARCHIVE | tar -x -C NEW_DIR, then mariadb < database.sql into a fresh database
  start-up       bin/wpbackup --help, best of 10

and prints wall time, the ratio to the spec pipeline (target <= 0.75) and to the floor (<= 1.25),
peak RSS of ours' whole process tree (< 200 MB), start-up (< 150 ms), with PASS/FAIL, then
throughput, CPU, per-process RSS and peak extra disk of every contender.

Shapes (--shape):
  default      mostly large media: --db-mb 300, --files-mb 2048, 1.5 files per MB
  many-files   a site shaped like real ones: 200,000 files, uploads/YYYY/MM/name.jpg originals
               with the 5-10 resized copies WordPress makes (name-150x150.jpg, ...; sizes roughly
               proportional to pixels, thumbnails about 2 KB), 15% plugin and theme code
               (PHP/JS/CSS); --files-mb 800, --db-mb 60. A few minutes to generate.
  million      1,000,000 files of 0-200 bytes, --db-mb 10: for peak RSS against the number of
               files, e.g. with --only ours,ours-local. Slow to generate (several minutes).

Options:
  --shape NAME    default, many-files or million (see above)
  --db-mb N       database rows to generate, in MB (default by shape)
  --files-mb N    wp-content size in MB (default by shape; not used by million)
  --files N       wp-content files to generate (default by shape)
  --keep          keep the generated site afterwards, so the next run with the same shape and sizes reuses it
                  (a kept site is always reused; without --keep it is removed at the end)
  --regen         rebuild the site even if a kept one exists
  --runs N        measure every contender N times (default 1); the table shows each one's fastest run
                  (others' work on the machine only slows a run down), the JSON has them all
  --only LIST     comma-separated subset of ours,spec,floor,local,ours-local,restore,help (default
                  all): ours/spec/floor = the S3 case, local = ours-local, spec-local and floor (iii)
                  (with floor (i)), ours-local = that contender alone, restore = both restore
                  contenders, help = the start-up time
  --ours-arg ARG  extra argument for wpbackup backup (repeatable), e.g. --ours-arg=--no-nice
  --ours-repo DIR measure the wpbackup CLI of another checkout (DIR/bin/wpbackup), e.g. a prototype
  --out FILE      where to write the JSON results (default bench/results/latest.json, or
                  bench/results/SHAPE-latest.json for the other shapes)

Examples:
  npm run bench                                   # the default shape, every case
  npm run bench -- --shape many-files --keep      # 200,000 files; kept for the next run
  npm run bench -- --shape million --only ours,ours-local --keep
`;

const SHAPE_DEFAULTS: Record<Shape, (filesMb: number | undefined) => { dbMb: number; filesMb: number; files: number }> = {
  default: (mb) => ({ dbMb: 300, filesMb: mb ?? 2048, files: Math.max(100, Math.round((mb ?? 2048) * 1.5)) }),
  'many-files': (mb) => ({ dbMb: 60, filesMb: mb ?? 800, files: 200_000 }),
  // Files of 0-200 bytes: about 100 MB whatever --files-mb says.
  million: () => ({ dbMb: 10, filesMb: 100, files: 1_000_000 }),
};
const ONLY = ['ours', 'spec', 'floor', 'local', 'ours-local', 'restore', 'help'];

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

/** Every selected contender once; returns the archive the restore contenders use (the newest local one). */
async function oneRound(ctx: BenchContext, only: Set<string>, add: (r: ContenderResult) => ContenderResult, restoreFrom: string | undefined): Promise<string | undefined> {
  let restoreArchive = restoreFrom;
  // Without an archive of our own to match, about what zstd makes of this site.
  const guess = Math.round(ctx.site.wpContentBytes + ctx.site.sqlBytes / 5);
  let archiveBytes: number | null = null;
  if (only.has('ours')) archiveBytes = add(await runOurs(ctx)).archiveBytes;
  if (only.has('spec')) {
    const r = add(await runSpec(ctx));
    archiveBytes ??= r.archiveBytes;
  }
  if (only.has('floor')) {
    add(await runFloorCpu(ctx));
    add(await runFloorNet(ctx, archiveBytes ?? guess));
    add(await runFloorNet(ctx, archiveBytes ?? guess, 'ours'));
  }
  if (only.has('local') || only.has('ours-local')) {
    const r = add(await runOurs(ctx, 'local'));
    restoreArchive = r.archivePath;
    if (only.has('local')) {
      add(await runSpecLocal(ctx));
      if (!only.has('floor')) add(await runFloorCpu(ctx));
      add(await runFloorFsync(ctx, r.archiveBytes ?? guess));
    }
  }
  if (only.has('restore')) {
    restoreArchive ??= await makeArchive(ctx);
    add(await runRestore(ctx, restoreArchive));
    add(await runRestoreFloor(ctx, restoreArchive));
  }
  return restoreArchive;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      shape: { type: 'string' }, 'db-mb': { type: 'string' }, 'files-mb': { type: 'string' }, files: { type: 'string' },
      keep: { type: 'boolean' }, regen: { type: 'boolean' }, runs: { type: 'string' }, only: { type: 'string' },
      'ours-arg': { type: 'string', multiple: true }, 'ours-repo': { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  const shape = (v.shape ?? 'default') as Shape;
  if (!SHAPES.includes(shape)) throw new Error(`--shape takes ${SHAPES.join(', ')}, not ${v.shape}`);
  const d = SHAPE_DEFAULTS[shape](v['files-mb'] === undefined ? undefined : positiveInt(v['files-mb'], 'files-mb', 0));
  const spec: SiteSpec = { shape, dbMb: positiveInt(v['db-mb'], 'db-mb', d.dbMb), filesMb: d.filesMb, files: positiveInt(v.files, 'files', d.files) };
  const runs = positiveInt(v.runs, 'runs', 1);
  const only = new Set((v.only ?? ONLY.join(',')).split(',').map((s) => s.trim()));
  for (const o of only) if (!ONLY.includes(o)) throw new Error(`--only takes ${ONLY.join(', ')}, not ${o}`);
  const out = v.out ?? join(REPO, `bench/results/${shape === 'default' ? '' : `${shape}-`}latest.json`);
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
  const add = (r: ContenderResult): ContenderResult => {
    (all[r.name] ??= []).push(r);
    return r;
  };
  let startup: Startup | null = null;
  try {
    if (only.has('help')) {
      startup = measureStartup(ctx);
      log(`start-up: bin/wpbackup --help, best of ${startup.runs}: ${startup.bestMs.toFixed(0)} ms`);
    }
    let restoreArchive: string | undefined;
    for (let i = 1; i <= runs; i++) {
      if (runs > 1) log(`run ${i} of ${runs}`);
      restoreArchive = await oneRound(ctx, only, add, restoreArchive);
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
  const summary = summarize(chosen, site, cpus().length, startup);
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
