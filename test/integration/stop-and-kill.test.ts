import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { addBulk } from '../helpers/bulk.ts';
import { LAUNCHERS, resultOf, runCli, s3Env, type CliRun, type Launcher } from '../helpers/cli.ts';
import { listKeys, makeBucket, pendingUploads, removeBucket } from '../helpers/s3.ts';
import { TEST_HOME } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';

// A stop (SIGINT, SIGTERM, SIGHUP) or a kill -9 in each stage, to each kind of destination,
// for each way of starting wpbackup: exit 130, nothing left behind (no run dir, no temp
// file, no incomplete upload, no process), and the next backup succeeds. The site is made
// heavy enough, and the upload throttled, so each stage lasts long enough to be hit: the
// media (stored as is, first) carries backup_files, the dump (compressed as it is made and
// appended last) create_bundle and upload_remote.

const STAGES = ['backup_db', 'backup_files', 'create_bundle', 'upload_remote'] as const;
type Stage = (typeof STAGES)[number];
type Dest = 'local' | 's3';
type StopSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';

interface Stop {
  dest: Dest;
  how: Launcher;
  stage: Stage;
  signal: StopSignal;
  /** Signal the whole process group, as a terminal's Ctrl-C, `timeout` and systemd do. */
  group?: boolean;
}

// A local destination writes the archive's last bytes within a fraction of a second after
// zstd ends, far too briefly to be stopped in reliably: its upload_remote is left out.
const STOPS: Stop[] = [
  ...STAGES.map((stage, i): Stop => ({ dest: 's3', how: 'main', stage, signal: i % 2 ? 'SIGTERM' : 'SIGINT' })),
  ...STAGES.slice(0, 3).map((stage, i): Stop => ({ dest: 'local', how: 'main', stage, signal: i % 2 ? 'SIGINT' : 'SIGTERM' })),
  { dest: 'local', how: 'main', stage: 'backup_files', signal: 'SIGINT', group: true },
  { dest: 'local', how: 'readme', stage: 'backup_files', signal: 'SIGTERM' },
  { dest: 'local', how: 'readme', stage: 'create_bundle', signal: 'SIGINT', group: true },
  { dest: 's3', how: 'readme', stage: 'backup_db', signal: 'SIGHUP' },
  { dest: 's3', how: 'readme', stage: 'upload_remote', signal: 'SIGTERM' },
  { dest: 'local', how: 'systemNode', stage: 'backup_db', signal: 'SIGTERM' },
  { dest: 'local', how: 'systemNode', stage: 'create_bundle', signal: 'SIGINT', group: true },
  { dest: 's3', how: 'systemNode', stage: 'backup_files', signal: 'SIGINT', group: true },
  { dest: 's3', how: 'systemNode', stage: 'create_bundle', signal: 'SIGTERM' },
];

const KILLS: { dest: Dest; stage: Stage }[] = [...STAGES.map((stage) => ({ dest: 's3' as const, stage })), { dest: 'local', stage: 'create_bundle' }];

/** Pids of a process's descendants, read from /proc. */
function descendants(pid: number): number[] {
  const kids: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) kids.push(Number(p), ...descendants(Number(p)));
    } catch {
      // gone already
    }
  }
  return kids;
}

const alive = (pid: number): boolean => {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
};

/** Files anywhere under dir (a stopped local backup leaves none, not even an empty key dir). */
const filesUnder = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String) : []);

/**
 * For one run: true once the stage is really under way (for create_bundle: the upload has
 * bytes in flight, which the events before it may have shown: that stage can be short).
 */
function stageWatch(stage: string): (e: Record<string, unknown>) => boolean {
  let uploading = false;
  return (e) => {
    if (/uploaded [1-9]/.test(String(e.stage_detail))) uploading = true;
    if (e.type !== 'progress' || e.stage !== stage) return false;
    if (stage === 'create_bundle') return uploading;
    if (stage === 'backup_db') return /Dumping database .*\(/.test(String(e.stage_detail));
    return true;
  };
}

describe('stop and kill -9 in every stage', () => {
  let site: FixtureSite;
  let bucket: string;
  let work: string;
  before(async () => {
    site = await createFixtureSite({ name: 'stopkill' });
    // A dump that ends well before wp-content does, so backup_files is a stage with the reader
    // at work, and big enough, compressed, to carry the upload stages through the throttle.
    await addBulk(site, { dbMb: 24, files: 30000, mediaMb: 48, randomDb: true });
    bucket = await makeBucket();
    work = mkdtempSync(join(TEST_HOME, 'sk-'));
  });
  after(async () => {
    await site.cleanup();
    await removeBucket(bucket);
    rmSync(work, { recursive: true, force: true });
  });

  const destOf = (dest: Dest, name: string): string => (dest === 's3' ? `s3://${bucket}` : join(work, name, 'dest'));
  // S3 uploads are throttled so the upload stages last. A local directory is written at full
  // speed, as users do, which is also the path that used to crash on a stop (no stream between
  // zstd's output and the file), except to be stopped in create_bundle: appending the dump,
  // compressed while it was made, is a copy of milliseconds at full speed.
  const args = (dest: string, dataDir: string, stage?: Stage): string[] => [
    'backup', '--site', site.dir, '--to', dest, '--json', '--data-dir', dataDir,
    ...(dest.startsWith('s3://') || stage === 'create_bundle' ? ['--limit-upload', '12M'] : []),
  ];
  const runDirs = (dataDir: string): string[] => (existsSync(join(dataDir, 'tmp')) ? readdirSync(join(dataDir, 'tmp')) : []);

  async function assertNothingLeft(dest: Dest, name: string, dataDir: string): Promise<void> {
    assert.deepEqual(runDirs(dataDir), [], 'no run dir');
    if (dest === 'local') {
      assert.deepEqual(filesUnder(destOf(dest, name)), [], 'no temp file, no object, no empty key dir');
    } else {
      assert.deepEqual(await pendingUploads(bucket), [], 'no incomplete multipart upload');
      assert.deepEqual(await listKeys(bucket), [], 'no object');
    }
  }

  for (const s of STOPS) {
    const name = `stop-${s.dest}-${s.how}-${s.stage}${s.group ? '-group' : ''}`;
    it(`${s.signal}${s.group ? ' to the process group' : ''} in ${s.stage}, ${s.dest} destination, started ${s.how === 'main' ? 'by the pinned node on the sources' : s.how === 'readme' ? "README's way (bin/wpbackup)" : 'by the launcher on the system node'}: exit 130, nothing left`, async () => {
      const dataDir = join(work, name, 'data');
      let signalledAt = 0;
      let exitedAt = 0;
      let processes: number[] = [];
      const inStage = stageWatch(s.stage);
      const run = await runCli(args(destOf(s.dest, name), dataDir, s.stage), {
        env: s3Env(),
        command: LAUNCHERS[s.how](),
        detached: s.group,
        onEvent: (e, child: ChildProcess) => {
          if (signalledAt || !inStage(e)) return;
          const pid = child.pid as number;
          processes = [pid, ...descendants(pid)];
          signalledAt = performance.now();
          child.once('exit', () => (exitedAt = performance.now()));
          if (s.group) process.kill(-pid, s.signal);
          else child.kill(s.signal);
        },
      });
      assert.ok(signalledAt, `the run reached ${s.stage}: ${run.stderr}`);
      assert.equal(run.code, 130, run.stderr);
      // README promises a stop within two seconds; a launcher in front adds a process start at most.
      if (s.how === 'main') assert.ok(exitedAt - signalledAt < 2000, `stopping took ${Math.round(exitedAt - signalledAt)} ms`);
      const progress = run.events.filter((e) => e.type === 'progress');
      assert.equal(progress.at(-1)?.status, 'stopped');
      assert.equal(progress.at(-1)?.stage, 'cleanup');
      assert.doesNotMatch(run.stderr, /Unhandled|at .*\.ts:\d+/, 'no crash, no stack trace');
      // The dump (compressed as it was made), the reader and zstd can all be done by create_bundle,
      // which appends the dump; a launcher on the system node always has its child.
      if (s.stage === 'backup_db' || s.stage === 'backup_files' || s.how === 'systemNode') assert.ok(processes.length > 1, 'the run had children when it was signalled');
      await waitFor('every process of the run to be gone', async () => processes.every((p) => !alive(p)), { ms: 5000, context: () => `alive: ${processes.filter(alive).join(' ')}` });
      await assertNothingLeft(s.dest, name, dataDir);
    });
  }

  for (const k of KILLS) {
    it(`kill -9 in ${k.stage}, ${k.dest} destination: children die, the next run cleans up and succeeds`, async () => {
      const name = `kill-${k.dest}-${k.stage}`;
      const dataDir = join(work, name, 'data');
      const dest = destOf(k.dest, name);
      let children: number[] = [];
      let killed = false;
      const inStage = stageWatch(k.stage);
      await runCli(args(dest, dataDir, k.stage), {
        env: s3Env(),
        onEvent: (e, child) => {
          if (!killed && inStage(e)) {
            killed = true;
            children = descendants(child.pid as number);
            child.kill('SIGKILL');
          }
        },
      });
      assert.ok(killed, `the run reached ${k.stage}`);
      await waitFor('the killed run\'s children to die', async () => children.every((p) => !alive(p)), { ms: 5000, context: () => `alive: ${children.filter(alive).join(' ')}` });
      assert.equal(runDirs(dataDir).length, 1, 'the killed run left its temp dir');
      const upload = k.stage === 'create_bundle' || k.stage === 'upload_remote';
      if (k.dest === 's3' && upload) assert.equal((await pendingUploads(bucket)).length, 1, 'the killed run left an incomplete upload');
      if (k.dest === 'local' && upload) assert.equal(filesUnder(dest).filter((f) => /\.wpb-upload-/.test(f)).length, 1, 'the killed run left its temp file');

      // The next run only has to find and clean up the orphans: it may leave the bulk of the files out.
      const next = await runCli([...args(dest, dataDir).filter((a) => a !== '--limit-upload' && a !== '12M'), '--exclude', 'uploads/'], { env: s3Env() });
      assert.equal(next.code, 0, next.stderr);
      assert.deepEqual(runDirs(dataDir), []);
      const key = resultOf(next).key as string;
      if (k.dest === 's3') {
        assert.deepEqual(await pendingUploads(bucket), []);
        assert.deepEqual(await listKeys(bucket), [key]);
        await removeObjects();
      } else {
        assert.deepEqual(filesUnder(dest).filter((f) => statSync(join(dest, f)).isFile()), [key], 'the archive and no temp file');
      }
    });
  }

  it('kill -9 of the launcher on the system node: its child stops, cleans up and exits', async () => {
    const name = 'kill-launcher';
    const dataDir = join(work, name, 'data');
    let processes: number[] = [];
    const inStage = stageWatch('backup_files');
    const run = await runCli(args(destOf('local', name), dataDir), {
      command: LAUNCHERS.systemNode(),
      onEvent: (e, child) => {
        if (processes.length || !inStage(e)) return;
        processes = [child.pid as number, ...descendants(child.pid as number)];
        child.kill('SIGKILL');
      },
    });
    assert.ok(processes.length > 2, `the run reached backup_files with a child and its children: ${run.stderr}`);
    assert.equal(run.signal, 'SIGKILL');
    assert.equal(run.events.filter((e) => e.type === 'progress').at(-1)?.status, 'stopped', 'the child saw the launcher go and stopped');
    await waitFor('every process of the run to be gone', async () => processes.every((p) => !alive(p)), { ms: 5000, context: () => `alive: ${processes.filter(alive).join(' ')}` });
    await assertNothingLeft('local', name, dataDir);
  });

  describe('without zstd on PATH', () => {
    let path: string;
    before(() => {
      // Every program on PATH but zstd, linked into one dir.
      const bin = join(work, 'no-zstd-bin');
      mkdirSync(bin);
      for (const dir of (process.env.PATH ?? '').split(':').filter((d) => d && existsSync(d))) {
        for (const name of readdirSync(dir)) {
          if (!name.startsWith('zstd') && !existsSync(join(bin, name))) symlinkSync(join(dir, name), join(bin, name));
        }
      }
      path = bin;
    });

    for (const dest of ['local', 's3'] as const) {
      it(`a backup to a ${dest} destination fails with bad_input naming zstd and the fix, leaving nothing`, async () => {
        const name = `no-zstd-${dest}`;
        const dataDir = join(work, name, 'data');
        const run: CliRun = await runCli(args(destOf(dest, name), dataDir), { env: { ...s3Env(), PATH: path } });
        assert.equal(run.code, 2, run.stderr);
        assert.match(run.stderr, /^wpbackup: zstd is not installed \(not found on PATH\)\. Install it \(apt-get install zstd\)/m);
        assert.doesNotMatch(run.stderr, /Unhandled|at .*\.ts:\d+/, 'no crash, no stack trace');
        assert.equal(run.events.at(-1)?.kind, 'bad_input');
        await assertNothingLeft(dest, name, dataDir);
      });
    }
  });

  async function removeObjects(): Promise<void> {
    const { DeleteObjectCommand } = await import('@aws-sdk/client-s3');
    const { s3 } = await import('../helpers/s3.ts');
    for (const k of await listKeys(bucket)) await s3().send(new DeleteObjectCommand({ Bucket: bucket, Key: k }));
  }
});
