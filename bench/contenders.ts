import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand, CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListMultipartUploadsCommand,
  ListObjectsV2Command, S3Client,
} from '@aws-sdk/client-s3';
import { DUMP_FLAGS } from '../src/engine/stages/backup-db.ts';
import { findProgram } from '../src/engine/mysql.ts';
import { defaultsFile, sql } from '../test/helpers/mysql.ts';
import { findPid, measure, processCpuSeconds, resetPageCache, type CacheMode, type Measurement, type Step } from './measure.ts';
import type { BenchSite } from './site-gen.ts';

// The contenders, each measured the same way against the same MinIO, each with a fresh bucket:
//   ours       the wpbackup CLI called as README says (bin/wpbackup, which execs the pinned Node 24):
//              the dump to its temp dir, and one tar (files read in place) | zstd -T0 | multipart
//              upload stream; ours-local: the same to a local directory
//   spec       the sequential pipeline: mysqldump to a file, cp -a wp-content, tar -I 'zstd -T0' to a
//              file, upload the file with the SDK's Upload, delete the temp files
//   floor-cpu  mysqldump > /dev/null, then tar -c wp-content | zstd -T0 > /dev/null
//   floor-net  the SDK upload alone, of a file as large as our archive (kept in the page cache)

export const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '');

export interface S3Settings {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
}

export interface BenchContext {
  site: BenchSite;
  /** Scratch space for this run, on the same disk as the site; MinIO's data dir is elsewhere. */
  work: string;
  s3: S3Settings;
  runId: string;
  /** The wpbackup checkout whose CLI is measured as ours (default this repo). */
  oursRepo: string;
  oursArgs: string[];
  log: (msg: string) => void;
}

export interface ServerCpu {
  minioS: number | null;
  mariadbS: number | null;
}

export interface ContenderResult {
  name: string;
  label: string;
  m: Measurement;
  /** Bytes stored in S3. */
  archiveBytes: number | null;
  /** Bytes of SQL the dump produced. */
  dumpBytes: number | null;
  /** Where the archive was left (ours-local: kept for the restore contenders until the run ends). */
  archivePath?: string;
  /** Seconds from the start to each stage (ours: from the --json progress lines). */
  stages: Record<string, number>;
  cache: CacheMode;
  /** CPU the servers spent meanwhile: not counted in the contender's CPU. */
  serverCpu: ServerCpu;
}

function s3Env(s3: S3Settings): NodeJS.ProcessEnv {
  return { ...process.env, AWS_ENDPOINT_URL: s3.endpoint, AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_REGION: s3.region };
}

function s3Client(s3: S3Settings): S3Client {
  return new S3Client({ region: s3.region, endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey } });
}

async function createBucket(s3: S3Settings, bucket: string): Promise<void> {
  const c = s3Client(s3);
  try {
    await c.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    c.destroy();
  }
}

/** Empties and removes a bucket, so MinIO's disk use does not pile up over the run. */
export async function dropBucket(s3: S3Settings, bucket: string): Promise<void> {
  const c = s3Client(s3);
  try {
    for (;;) {
      const list = await c.send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (list.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length === 0) break;
      await c.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
    }
    const ups = await c.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const u of ups.Uploads ?? []) await c.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
    await c.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch (err) {
    if ((err as { name?: string }).name !== 'NoSuchBucket') throw err;
  } finally {
    c.destroy();
  }
}

export function run(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(' ')} exited with ${code}`))));
  });
}

export function dumpDefaults(site: BenchSite): string {
  return defaultsFile({ user: site.dbUser, password: site.dbPassword, host: site.dbHost, port: site.dbPort });
}

export async function dumpArgv(site: BenchSite): Promise<string[]> {
  return [await findProgram('dump'), `--defaults-extra-file=${dumpDefaults(site)}`, ...DUMP_FLAGS, '--', site.dbName];
}

/** Untimed: the same reads every contender does, so a warm cache is the same for all. */
async function warmCache(site: BenchSite): Promise<void> {
  await run(['sh', '-c', 'tar -C "$1" -cf - . | cat > /dev/null', 'warm', site.dir]);
  await run(['sh', '-c', '"$@" > /dev/null', 'warm', ...(await dumpArgv(site))]);
}

async function dirtyPages(): Promise<number> {
  const out = await sql("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'");
  return Number(out.split('\t')[1] ?? 0);
}

/**
 * Has InnoDB write back the pages left dirty (by the site generator, mostly) so that no
 * contender pays for that I/O: briefly lowers innodb_max_dirty_pages_pct to 0, waits (up to
 * 60 s) and restores it.
 */
async function settleDatabase(): Promise<void> {
  if ((await dirtyPages()) < 50) return;
  const old = await sql('SELECT @@GLOBAL.innodb_max_dirty_pages_pct');
  await sql('SET GLOBAL innodb_max_dirty_pages_pct = 0');
  try {
    for (let i = 0; i < 120 && (await dirtyPages()) >= 50; i++) await sleep(500);
  } finally {
    await sql(`SET GLOBAL innodb_max_dirty_pages_pct = ${Number(old) || 90}`);
  }
}

/** The same starting state for every contender: written back, page cache dropped (or warmed). */
async function prepare(ctx: BenchContext): Promise<CacheMode> {
  await settleDatabase();
  await run(['sync']);
  const mode = await resetPageCache(() => warmCache(ctx.site));
  await sleep(1000);
  return mode;
}

function serverPids(s3: S3Settings): { minio: number | undefined; mariadb: number | undefined } {
  const port = new URL(s3.endpoint).port;
  return { minio: findPid(['minio', `:${port}`]), mariadb: findPid(['mariadbd']) ?? findPid(['mysqld']) };
}

type Run = (bucket: string) => Promise<Omit<ContenderResult, 'name' | 'label' | 'cache' | 'serverCpu'>>;

/** Runs one contender with its own fresh bucket (unless it uploads nothing) from a reset cache. */
export async function measured(ctx: BenchContext, name: string, label: string, fn: Run, opts: { bucket?: boolean; afterPrepare?: () => Promise<void> } = {}): Promise<ContenderResult> {
  const bucket = `wpb-bench-${ctx.runId}-${name}`.toLowerCase().slice(0, 63);
  const useBucket = opts.bucket !== false;
  if (useBucket) await createBucket(ctx.s3, bucket);
  try {
    const cache = await prepare(ctx);
    await opts.afterPrepare?.();
    const pids = serverPids(ctx.s3);
    const cpu0 = { minio: pids.minio ? processCpuSeconds(pids.minio) : undefined, mariadb: pids.mariadb ? processCpuSeconds(pids.mariadb) : undefined };
    ctx.log(`running ${label}`);
    const r = await fn(bucket);
    const delta = (pid: number | undefined, before: number | undefined): number | null => {
      const after = pid ? processCpuSeconds(pid) : undefined;
      return after !== undefined && before !== undefined ? after - before : null;
    };
    const serverCpu = { minioS: delta(pids.minio, cpu0.minio), mariadbS: delta(pids.mariadb, cpu0.mariadb) };
    ctx.log(`  ${label}: ${r.m.wallS.toFixed(1)} s wall, ${r.m.cpuS.toFixed(1)} s CPU`);
    return { name, label, cache, serverCpu, ...r };
  } finally {
    if (useBucket) await dropBucket(ctx.s3, bucket);
  }
}

/** README's way of calling wpbackup: the shell launcher that execs the pinned Node 24. */
export function oursCommand(ctx: BenchContext): string {
  const bin = join(ctx.oursRepo, 'bin/wpbackup');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: --ours-repo must name a wpbackup checkout with bin/wpbackup (and its node_modules)`);
  return bin;
}

/**
 * ours: the wpbackup CLI, as a user runs it, to MinIO (`s3`) or to a local directory (`local`,
 * whose archive is kept under ctx.work for the restore contenders).
 */
export async function runOurs(ctx: BenchContext, to: 's3' | 'local' = 's3'): Promise<ContenderResult> {
  const dataDir = join(ctx.work, `ours-${to}-data`);
  const destDir = join(ctx.work, 'ours-local-dest');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (to === 'local') {
    rmSync(destDir, { recursive: true, force: true });
    mkdirSync(destDir, { recursive: true, mode: 0o700 });
  }
  const name = to === 's3' ? 'ours' : 'ours-local';
  try {
    return await measured(ctx, name, `${name} (wpbackup backup --to ${to === 's3' ? 's3://...' : 'a local dir'})`, async (bucket) => {
      let result: { size?: number; key?: string; manifest?: { database?: { bytes?: number } } } | undefined;
      const stages: Record<string, number> = {};
      let t0 = 0;
      const step: Step = {
        label: 'wpbackup backup',
        argv: [oursCommand(ctx), 'backup', '--site', ctx.site.dir, '--to', to === 's3' ? `s3://${bucket}/bench` : destDir, '--json', '--data-dir', dataDir, ...ctx.oursArgs],
        env: s3Env(ctx.s3),
        cwd: ctx.oursRepo,
        onLine: (line, at) => {
          if (!line.startsWith('{')) return;
          const e = JSON.parse(line) as { type: string; stage?: string | null; size?: number };
          if (t0 === 0) t0 = at;
          if (e.type === 'progress' && e.stage && !(e.stage in stages)) stages[e.stage] = (at - t0) / 1000;
          if (e.type === 'result') result = e as typeof result;
        },
      };
      const started = performance.now();
      const m = await measure([step], { watchDirs: [dataDir], fsPath: ctx.work });
      // Stage times from the first progress line; shift them to the process start.
      const shift = t0 ? (t0 - started) / 1000 : 0;
      for (const k of Object.keys(stages)) stages[k] = (stages[k] as number) + shift;
      stages.exit = m.wallS;
      if (!result?.size) throw new Error('wpbackup printed no result line');
      const archivePath = to === 'local' ? findArchive(destDir, result.key) : undefined;
      return { m, archiveBytes: result.size, dumpBytes: result.manifest?.database?.bytes ?? null, stages, archivePath };
    }, { bucket: to === 's3' });
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The archive a local backup wrote: at its key under the destination, or the one .tar.zst there. */
function findArchive(dest: string, key: string | undefined): string {
  if (key && existsSync(join(dest, key))) return join(dest, key);
  const found = readdirSync(dest, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.tar.zst'));
  if (found.length !== 1) throw new Error(`expected one archive under ${dest}, found ${found.length}`);
  return join(dest, found[0] as string);
}

/** spec: each step waits for the one before, through temp files. */
/**
 * The spec pipeline's first three steps: dump to tmp, cp -a wp-content to tmp, tar|zstd into
 * `archive`. `sizes` is filled as they run; `temp` is what the caller's last step removes.
 */
export async function specSteps(ctx: BenchContext, tmp: string, archive: string): Promise<{ steps: Step[]; sizes: { dump: number; archive: number }; temp: string[] }> {
  const dump = join(tmp, 'database.sql');
  const sizes = { dump: 0, archive: 0 };
  const steps: Step[] = [
    { label: 'mysqldump > file', argv: await dumpArgv(ctx.site), stdoutFile: dump, afterExit: () => (sizes.dump = statSync(dump).size) },
    { label: 'cp -a wp-content', argv: ['cp', '-a', join(ctx.site.dir, 'wp-content'), join(tmp, 'wp-content')] },
    {
      label: "tar -I 'zstd -T0' -cf", argv: ['tar', '-I', 'zstd -T0', '-cf', archive, '-C', tmp, 'database.sql', 'wp-content', '-C', ctx.site.dir, 'wp-config.php', '.htaccess'],
      afterExit: () => (sizes.archive = statSync(archive).size),
    },
  ];
  return { steps, sizes, temp: [dump, join(tmp, 'wp-content')] };
}

export async function runSpec(ctx: BenchContext): Promise<ContenderResult> {
  const tmp = join(ctx.work, 'spec-tmp');
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  try {
    return await measured(ctx, 'spec', 'spec pipeline (dump, cp -a, tar|zstd to file, SDK upload, rm)', async (bucket) => {
      const archive = join(tmp, 'archive.tar.zst');
      const spec = await specSteps(ctx, tmp, archive);
      const steps: Step[] = [
        ...spec.steps,
        { label: 'SDK Upload', argv: [process.execPath, join(REPO, 'bench/sdk-upload.ts'), archive, bucket, 'bench/archive.tar.zst'], env: s3Env(ctx.s3), cwd: REPO },
        { label: 'rm temp files', argv: ['rm', '-rf', '--', ...spec.temp, archive] },
      ];
      const m = await measure(steps, { watchDirs: [tmp], fsPath: ctx.work });
      return { m, archiveBytes: spec.sizes.archive, dumpBytes: spec.sizes.dump, stages: stepStarts(m) };
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export function stepStarts(m: Measurement): Record<string, number> {
  const out: Record<string, number> = {};
  let t = 0;
  for (const s of m.steps) {
    out[s.label] = t;
    t += s.wallS;
  }
  out.exit = m.wallS;
  return out;
}

/** floor (i): the reading and compressing alone, nothing written or sent. */
export async function runFloorCpu(ctx: BenchContext): Promise<ContenderResult> {
  return measured(ctx, 'floor-cpu', 'floor (i): mysqldump > /dev/null; tar -c wp-content | zstd -T0 > /dev/null', async () => {
    const steps: Step[] = [
      { label: 'mysqldump > /dev/null', argv: await dumpArgv(ctx.site), stdoutFile: '/dev/null' },
      { label: 'tar | zstd -T0 > /dev/null', argv: ['bash', '-c', 'set -o pipefail; tar -C "$1" -cf - wp-content | zstd -T0 -q -c > /dev/null', 'floor', ctx.site.dir] },
    ];
    const m = await measure(steps, { watchDirs: [], fsPath: ctx.work });
    return { m, archiveBytes: null, dumpBytes: null, stages: stepStarts(m) };
  }, { bucket: false });
}

/**
 * floor (ii): the upload alone, of a file as large as our archive, read from the page cache,
 * by the SDK; with `uploader: 'ours'`, by wpbackup's own uploader (for information).
 */
export async function runFloorNet(ctx: BenchContext, bytes: number, uploader: 'sdk' | 'ours' = 'sdk'): Promise<ContenderResult> {
  const dir = join(ctx.work, 'floor-net');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'upload.bin');
  try {
    writeRandomFile(file, bytes);
    const who = uploader === 'sdk' ? 'SDK' : "wpbackup's";
    const label = `floor (ii${uploader === 'sdk' ? '' : "'"}): ${who} upload of a ${(bytes / 1e6).toFixed(0)} MB file from the page cache`;
    const script = uploader === 'sdk' ? 'bench/sdk-upload.ts' : 'bench/ours-upload.ts';
    return await measured(ctx, uploader === 'sdk' ? 'floor-net' : 'floor-net-ours', label, async (bucket) => {
      const steps: Step[] = [{ label: `${who} upload`, argv: [process.execPath, join(REPO, script), file, bucket, 'bench/upload.bin'], env: s3Env(ctx.s3), cwd: REPO }];
      const m = await measure(steps, { watchDirs: [], fsPath: ctx.work });
      return { m, archiveBytes: bytes, dumpBytes: null, stages: stepStarts(m) };
    }, {
      // Ours never reads its archive back from disk: the file is put in the page cache first.
      afterPrepare: () => run(['sh', '-c', 'cat "$1" > /dev/null', 'warm', file]),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function writeRandomFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (let left = bytes; left > 0; ) {
      const n = Math.min(left, buf.length);
      randomFillSync(buf, 0, n);
      writeSync(fd, buf, 0, n);
      left -= n;
    }
  } finally {
    closeSync(fd);
  }
}
