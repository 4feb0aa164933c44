import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addBulk } from '../helpers/bulk.ts';
import { runCli, s3Env, type CliRun } from '../helpers/cli.ts';
import { createRestoreTarget } from '../helpers/restore-target.ts';
import { listKeys, makeBucket, pendingUploads, removeBucket } from '../helpers/s3.ts';
import { TEST_HOME } from '../helpers/services.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';

// Each mistake a user can make: a clear message naming the thing and the fix, the right
// exit code, no stack trace, and nothing left behind (no temp dir, no object, no upload).

describe('bad input', () => {
  let site: FixtureSite;
  let bucket: string;
  let work: string;
  let dataDir: string;
  before(async () => {
    site = await createFixtureSite({ name: 'badinput' });
    bucket = await makeBucket();
    work = mkdtempSync(join(TEST_HOME, 'bad-'));
    dataDir = join(work, 'data');
  });
  after(async () => {
    await site.cleanup();
    await removeBucket(bucket);
    rmSync(work, { recursive: true, force: true });
  });

  /** A copy of the site's config files in a new site dir, with wp-config.php edited. */
  function siteWithConfig(name: string, edit: (php: string) => string): string {
    const dir = join(work, name);
    mkdirSync(join(dir, 'wp-content'), { recursive: true });
    writeFileSync(join(dir, 'wp-config.php'), edit(readFileSync(join(site.dir, 'wp-config.php'), 'utf8')));
    return dir;
  }

  async function backup(sitePath: string, to = `s3://${bucket}`, env: NodeJS.ProcessEnv = s3Env(), extra: string[] = []): Promise<CliRun> {
    return runCli(['backup', '--site', sitePath, '--to', to, '--data-dir', dataDir, ...extra], { env });
  }

  async function assertClean(run: CliRun, code: number, message: RegExp): Promise<void> {
    assert.equal(run.code, code, `exit code; stderr: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
    assert.deepEqual(existsSync(join(dataDir, 'tmp')) ? readdirSync(join(dataDir, 'tmp')) : [], [], 'no temp dir left');
    assert.deepEqual(await listKeys(bucket), [], 'no object stored');
    assert.deepEqual(await pendingUploads(bucket), [], 'no incomplete upload');
  }

  it('no wp-config.php', async () => {
    const dir = join(work, 'empty-site');
    mkdirSync(join(dir, 'wp-content'), { recursive: true });
    await assertClean(await backup(dir), 2, /wp-config\.php/);
  });

  it('a site directory that does not exist', async () => {
    await assertClean(await backup(join(work, 'nope')), 2, /does not exist.*--site/);
  });

  it('wrong database password', async () => {
    const dir = siteWithConfig('wrong-pass', (php) => php.replace(/define\( 'DB_PASSWORD', .*\);/, "define( 'DB_PASSWORD', 'wrong' );"));
    await assertClean(await backup(dir), 2, /refused user .*DB_USER and DB_PASSWORD in wp-config\.php/);
  });

  it('database server down', async () => {
    const dir = siteWithConfig('db-down', (php) => php.replace(/define\( 'DB_HOST', .*\);/, "define( 'DB_HOST', '127.0.0.1:1' );"));
    await assertClean(await backup(dir), 2, /Cannot connect to the database server at 127\.0\.0\.1:1.*DB_HOST/);
  });

  it('unknown bucket', async () => {
    await assertClean(await backup(site.dir, 's3://no-such-bucket-wpb'), 2, /no-such-bucket-wpb/);
  });

  it('wrong S3 credentials', async () => {
    await assertClean(await backup(site.dir, `s3://${bucket}`, { ...s3Env(), AWS_SECRET_ACCESS_KEY: 'not-the-secret' }), 2, /AWS_SECRET_ACCESS_KEY|credentials/);
  });

  it('missing S3 credentials', async () => {
    const { AWS_ACCESS_KEY_ID: _a, AWS_SECRET_ACCESS_KEY: _s, ...env } = s3Env();
    await assertClean(await backup(site.dir, `s3://${bucket}`, env), 2, /AWS_ACCESS_KEY_ID/);
  });

  it('S3 unreachable', async () => {
    const run = await backup(site.dir, `s3://${bucket}`, { ...s3Env(), AWS_ENDPOINT_URL: 'http://127.0.0.1:1' });
    assert.ok(run.code === 1 || run.code === 2, `exit ${run.code}`);
    await assertClean(run, run.code as number, /127\.0\.0\.1:1|AWS_ENDPOINT_URL/);
  });

  it('an unsupported destination', async () => {
    await assertClean(await backup(site.dir, 'ftp://example.com/x'), 2, /ftp:\/\/.*s3:\/\//s);
  });

  it('bad flags', async () => {
    await assertClean(await runCli(['backup', '--site', site.dir, '--bogus']), 2, /bogus.*--help/s);
    await assertClean(await runCli(['backup', '--to', 'x']), 2, /--site is required/);
    await assertClean(await backup(site.dir, `s3://${bucket}`, s3Env(), ['--level', '99']), 2, /--level/);
    await assertClean(await backup(site.dir, `s3://${bucket}`, s3Env(), ['--limit-upload', 'fast']), 2, /--limit-upload/);
    await assertClean(await runCli(['frobnicate']), 2, /Unknown command.*--help/s);
  });

  it('a hostile site name stays one safe path segment', async () => {
    const dest = join(work, 'hostile');
    const run = await runCli(['backup', '--site', site.dir, '--to', dest, '--data-dir', dataDir, '--name', '../../../etc/cron.d/x\n'], {});
    assert.equal(run.code, 0, run.stderr);
    const [node] = readdirSync(dest);
    const [siteDir] = readdirSync(join(dest, node as string));
    const files = readdirSync(join(dest, node as string, siteDir as string));
    assert.equal(files.length, 1);
    assert.match(files[0] as string, /^etc-cron\.d-x_\d{8}_\d{6}\.tar\.zst$/);
    assert.deepEqual(readdirSync(dest), [node], 'nothing written outside the layout');
  });

  it('disk full on the temp dir', async () => {
    const bulky = await createFixtureSite({ name: 'diskfull' });
    const tmpfs = join(work, 'tmpfs');
    mkdirSync(tmpfs);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', tmpfs]);
    try {
      // Random rows: the dump is compressed as it is written, and must still not fit.
      await addBulk(bulky, { dbMb: 2, files: 0, mediaMb: 0, randomDb: true });
      const run = await runCli(['backup', '--site', bulky.dir, '--to', `s3://${bucket}`, '--data-dir', dataDir, '--temp-dir', tmpfs], { env: s3Env() });
      await assertClean(run, 2, /ran out of space.*--temp-dir/s);
      assert.deepEqual(readdirSync(tmpfs), [], 'the tmpfs is empty again');
    } finally {
      execFileSync('umount', [tmpfs]);
      await bulky.cleanup();
    }
  });

  it('restore: a missing archive, a bad URL, an expired link', async () => {
    const target = join(work, 'restore-target');
    await assertClean(await runCli(['restore', join(work, 'missing.tar.zst'), '--site', target]), 2, /does not exist/);
    await assertClean(await runCli(['restore', 'gopher://x/y', '--site', target]), 2, /Unsupported archive location/);
    await assertClean(await runCli(['restore', `s3://${bucket}/nope.tar.zst`, '--site', target], { env: s3Env() }), 2, /no archive at/);
    cpSync(join(site.dir, 'wp-config.php'), join(work, 'not-an-archive.tar.zst'));
    // A site without wp-config.php needs its database named: the archive's is never used.
    await assertClean(await runCli(['restore', join(work, 'not-an-archive.tar.zst'), '--site', target]), 2, /no wp-config\.php, so the database to restore into must be named/);
    const empty = await createRestoreTarget(site.tablePrefix);
    try {
      const junk = await runCli(['restore', join(work, 'not-an-archive.tar.zst'), '--site', empty.dir]);
      assert.equal(junk.code, 1);
      assert.match(junk.stderr, /zstd/);
      assert.deepEqual(readdirSync(join(empty.dir, '..')).filter((n) => n.startsWith('.wpbackup-restore')), [], 'no staging dir left');
    } finally {
      await empty.cleanup();
    }
    assert.deepEqual(readdirSync(work).filter((n) => n.startsWith('.wpbackup-restore')), [], 'no staging dir left');
  });
});
