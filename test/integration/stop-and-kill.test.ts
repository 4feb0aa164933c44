import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { addBulk } from '../helpers/bulk.ts';
import { resultOf, runCli, s3Env } from '../helpers/cli.ts';
import { listKeys, makeBucket, pendingUploads, removeBucket } from '../helpers/s3.ts';
import { TEST_HOME } from '../helpers/services.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';

// A stop (SIGINT) or a kill -9 in each stage: nothing may be left behind, and the next
// backup must succeed. The site is made heavy enough, and the upload throttled, so each
// stage lasts long enough to be hit: the media (stored as is, first) carries backup_files,
// the compressed dump create_bundle and upload_remote.

const STAGES = ['backup_db', 'backup_files', 'create_bundle', 'upload_remote'] as const;

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

const alive = (pid: number): boolean => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');

describe('stop and kill -9 in every stage', () => {
  let site: FixtureSite;
  let bucket: string;
  let work: string;
  before(async () => {
    site = await createFixtureSite({ name: 'stopkill' });
    await addBulk(site, { dbMb: 64, files: 15000, mediaMb: 48, randomDb: true });
    bucket = await makeBucket();
    work = mkdtempSync(join(TEST_HOME, 'sk-'));
  });
  after(async () => {
    await site.cleanup();
    await removeBucket(bucket);
    rmSync(work, { recursive: true, force: true });
  });

  const args = (dataDir: string): string[] => ['backup', '--site', site.dir, '--to', `s3://${bucket}`, '--json', '--data-dir', dataDir, '--limit-upload', '12M'];
  const runDirs = (dataDir: string): string[] => (existsSync(join(dataDir, 'tmp')) ? readdirSync(join(dataDir, 'tmp')) : []);

  /** True once the stage is really under way (for create_bundle: the upload has bytes in flight). */
  function inStage(e: Record<string, unknown>, stage: string): boolean {
    if (e.type !== 'progress' || e.stage !== stage) return false;
    if (stage === 'create_bundle') return /uploaded [1-9]/.test(String(e.stage_detail));
    if (stage === 'backup_db') return /Dumping database .*\(/.test(String(e.stage_detail));
    return true;
  }

  for (const stage of STAGES) {
    it(`SIGINT in ${stage}: stopped within 2 s, cleaned up`, async () => {
      const dataDir = join(work, `stop-${stage}`);
      let signalledAt = 0;
      let exitedAt = 0;
      const run = await runCli(args(dataDir), {
        env: s3Env(),
        onEvent: (e, child: ChildProcess) => {
          if (signalledAt || !inStage(e, stage)) return;
          signalledAt = performance.now();
          child.once('exit', () => (exitedAt = performance.now()));
          child.kill('SIGINT');
        },
      });
      assert.ok(signalledAt, `the run reached ${stage}`);
      assert.equal(run.code, 130, run.stderr);
      assert.ok(exitedAt - signalledAt < 2000, `stopping took ${Math.round(exitedAt - signalledAt)} ms`);
      const progress = run.events.filter((e) => e.type === 'progress');
      assert.equal(progress.at(-1)?.status, 'stopped');
      assert.equal(progress.at(-1)?.stage, 'cleanup');
      assert.deepEqual(runDirs(dataDir), []);
      assert.deepEqual(await pendingUploads(bucket), []);
      assert.deepEqual(await listKeys(bucket), []);
    });
  }

  for (const stage of STAGES) {
    it(`kill -9 in ${stage}: children die, the next run cleans up and succeeds`, async () => {
      const dataDir = join(work, `kill-${stage}`);
      let children: number[] = [];
      let killed = false;
      await runCli(args(dataDir), {
        env: s3Env(),
        onEvent: (e, child) => {
          if (!killed && inStage(e, stage)) {
            killed = true;
            children = descendants(child.pid as number);
            child.kill('SIGKILL');
          }
        },
      });
      assert.ok(killed, `the run reached ${stage}`);
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(children.filter(alive), [], 'no child process outlives the killed run');
      assert.equal(runDirs(dataDir).length, 1, 'the killed run left its temp dir');
      const pendingBefore = await pendingUploads(bucket);
      if (stage === 'create_bundle' || stage === 'upload_remote') assert.equal(pendingBefore.length, 1, 'the killed run left an incomplete upload');

      const next = await runCli(args(dataDir).filter((a) => a !== '--limit-upload' && a !== '12M'), { env: s3Env() });
      assert.equal(next.code, 0, next.stderr);
      assert.deepEqual(runDirs(dataDir), []);
      assert.deepEqual(await pendingUploads(bucket), []);
      const key = resultOf(next).key as string;
      assert.deepEqual(await listKeys(bucket), [key]);
      await removeObjects();
    });
  }

  async function removeObjects(): Promise<void> {
    const { DeleteObjectCommand } = await import('@aws-sdk/client-s3');
    const { s3 } = await import('../helpers/s3.ts');
    for (const k of await listKeys(bucket)) await s3().send(new DeleteObjectCommand({ Bucket: bucket, Key: k }));
  }
});
