import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDatabase, createDbUser, defaultsFile, dropDatabase, dropDbUser } from '../test/helpers/mysql.ts';
import { measured, oursCommand, run, specSteps, stepStarts, type BenchContext, type ContenderResult } from './contenders.ts';
import { measure, type Step } from './measure.ts';

// The contenders of the local and restore cases, and the start-up time:
//   spec-local   the spec's pipeline with a local destination: dump, cp -a, tar -I 'zstd -T0' into
//                the destination dir, sync (fsync) of the archive, rm of the temp files
//   floor-fsync  the write alone of a file as large as our archive, fsynced (dd conv=fsync)
//   restore      wpbackup restore ARCHIVE --site NEW_DIR --db-name ... into a fresh, empty database
//   restore-floor  zstd -d < ARCHIVE | tar -x -C NEW_DIR, then mariadb < database.sql into a fresh,
//                empty database
// and `wpbackup --help`, best of N.

/** spec with a local destination: each step waits for the one before; the archive is made durable. */
export async function runSpecLocal(ctx: BenchContext): Promise<ContenderResult> {
  const tmp = join(ctx.work, 'spec-local-tmp');
  const dest = join(ctx.work, 'spec-local-dest');
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  mkdirSync(dest, { recursive: true, mode: 0o700 });
  try {
    return await measured(ctx, 'spec-local', 'spec pipeline to a local dir (dump, cp -a, tar|zstd into the dir, sync, rm)', async () => {
      const archive = join(dest, 'archive.tar.zst');
      const spec = await specSteps(ctx, tmp, archive);
      const steps: Step[] = [
        ...spec.steps,
        // As durable as ours: the archive's data on disk before the run counts as done.
        { label: 'sync archive', argv: ['sync', '--', archive] },
        { label: 'rm temp files', argv: ['rm', '-rf', '--', ...spec.temp] },
      ];
      const m = await measure(steps, { watchDirs: [tmp], fsPath: ctx.work });
      return { m, archiveBytes: spec.sizes.archive, dumpBytes: spec.sizes.dump, stages: stepStarts(m) };
    }, { bucket: false });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(dest, { recursive: true, force: true });
  }
}

/** The local destination's floor: writing as many bytes as our archive, and fsyncing them. */
export async function runFloorFsync(ctx: BenchContext, bytes: number): Promise<ContenderResult> {
  const dir = join(ctx.work, 'floor-fsync');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    return await measured(ctx, 'floor-fsync', `floor (iii): dd conv=fsync of a ${(bytes / 1e6).toFixed(0)} MB file`, async () => {
      const file = join(dir, 'archive.bin');
      const steps: Step[] = [{ label: 'dd conv=fsync', argv: ['dd', 'if=/dev/zero', `of=${file}`, 'bs=2M', `count=${bytes}`, 'iflag=count_bytes', 'conv=fsync', 'status=none'] }];
      const m = await measure(steps, { watchDirs: [], fsPath: ctx.work });
      return { m, archiveBytes: bytes, dumpBytes: null, stages: stepStarts(m) };
    }, { bucket: false });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface RestoreTarget {
  dir: string;
  db: string;
  password: string;
  passwordFile: string;
  defaults: string;
}

/** A new directory and a fresh, empty database with its own user. */
async function restoreTarget(ctx: BenchContext, name: string): Promise<RestoreTarget> {
  const db = `wpbench_${name.replace(/-/g, '_')}_${randomBytes(3).toString('hex')}`;
  const password = randomBytes(12).toString('base64url');
  await createDatabase(db);
  await createDbUser(db, password, db);
  const passwordFile = join(ctx.work, `${db}.pw`);
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  const defaults = defaultsFile({ user: db, password, host: ctx.site.dbHost, port: ctx.site.dbPort });
  return { dir: join(ctx.work, `${name}-site`), db, password, passwordFile, defaults };
}

async function dropTarget(t: RestoreTarget): Promise<void> {
  rmSync(t.dir, { recursive: true, force: true });
  rmSync(t.passwordFile, { force: true });
  await dropDbUser(t.db);
  await dropDatabase(t.db);
}

/** ours: wpbackup restore of our local archive into a new directory and an empty database. */
export async function runRestore(ctx: BenchContext, archive: string): Promise<ContenderResult> {
  const t = await restoreTarget(ctx, 'restore');
  try {
    return await measured(ctx, 'restore', 'restore (wpbackup restore ARCHIVE --site NEW --db-name ...)', async () => {
      const stages: Record<string, number> = {};
      const started = performance.now();
      const step: Step = {
        label: 'wpbackup restore',
        argv: [oursCommand(ctx), 'restore', archive, '--site', t.dir, '--db-name', t.db, '--db-user', t.db, '--db-host', `${ctx.site.dbHost}:${ctx.site.dbPort}`, '--db-password-file', t.passwordFile, '--json'],
        cwd: ctx.oursRepo,
        onLine: (line, at) => {
          if (!line.startsWith('{')) return;
          const e = JSON.parse(line) as { type: string; stage?: string | null };
          if (e.type === 'progress' && e.stage && !(e.stage in stages)) stages[e.stage] = (at - started) / 1000;
        },
      };
      const m = await measure([step], { watchDirs: [], fsPath: ctx.work });
      stages.exit = m.wallS;
      return { m, archiveBytes: statSync(archive).size, dumpBytes: null, stages };
    }, { bucket: false });
  } finally {
    await dropTarget(t);
  }
}

/** The restore's floor: the spec's procedure by hand, extraction piped, then the import. */
export async function runRestoreFloor(ctx: BenchContext, archive: string): Promise<ContenderResult> {
  const t = await restoreTarget(ctx, 'restore-floor');
  try {
    return await measured(ctx, 'restore-floor', 'restore floor: zstd -d < archive | tar -x; mariadb < database.sql', async () => {
      mkdirSync(t.dir, { recursive: true, mode: 0o755 });
      const steps: Step[] = [
        { label: 'zstd -d | tar -x', argv: ['bash', '-c', 'set -o pipefail; zstd -d -q -c < "$1" | tar -x -C "$2"', 'floor', archive, t.dir] },
        { label: 'mariadb < database.sql', argv: ['bash', '-c', 'mariadb --defaults-extra-file="$1" --database="$2" < "$3"', 'floor', t.defaults, t.db, join(t.dir, 'database.sql')] },
      ];
      const m = await measure(steps, { watchDirs: [], fsPath: ctx.work });
      return { m, archiveBytes: statSync(archive).size, dumpBytes: null, stages: stepStarts(m) };
    }, { bucket: false });
  } finally {
    await dropTarget(t);
  }
}

/** An untimed local backup, for the restore contenders when ours-local was not run. */
export async function makeArchive(ctx: BenchContext): Promise<string> {
  const dest = join(ctx.work, 'restore-source');
  mkdirSync(dest, { recursive: true, mode: 0o700 });
  ctx.log('making an archive to restore (untimed)');
  await run([oursCommand(ctx), 'backup', '--site', ctx.site.dir, '--to', dest, '--data-dir', join(ctx.work, 'restore-source-data')]);
  const out = spawnSync('find', [dest, '-name', '*.tar.zst', '-type', 'f'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
  if (out.length !== 1) throw new Error(`expected one archive under ${dest}, found ${out.length}`);
  return out[0] as string;
}

export interface Startup {
  command: string;
  runs: number;
  bestMs: number;
  medianMs: number;
  allMs: number[];
}

/** `wpbackup --help` as README calls it: one untimed start (fills the compile cache), then the best of `runs`. */
export function measureStartup(ctx: BenchContext, runs = 10): Startup {
  const argv = [oursCommand(ctx), '--help'];
  const once = (): number => {
    const t0 = performance.now();
    const r = spawnSync(argv[0] as string, argv.slice(1), { stdio: 'ignore', cwd: ctx.oursRepo });
    const ms = performance.now() - t0;
    if (r.status !== 0) throw new Error(`${argv.join(' ')} exited with ${r.status}`);
    return ms;
  };
  once();
  const allMs = Array.from({ length: runs }, once);
  const sorted = [...allMs].sort((a, b) => a - b);
  return { command: 'bin/wpbackup --help', runs, bestMs: sorted[0] as number, medianMs: sorted[Math.floor(runs / 2)] as number, allMs };
}
