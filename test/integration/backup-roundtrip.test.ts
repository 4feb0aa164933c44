import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStorage } from '../../src/storage/open.ts';
import { resultOf, runCli, s3Env } from '../helpers/cli.ts';
import { defaultsFile, sql, sqlAs, tableChecksums } from '../helpers/mysql.ts';
import { createRestoreTarget } from '../helpers/restore-target.ts';
import { listKeys, makeBucket, pendingUploads, removeBucket } from '../helpers/s3.ts';
import { services, TEST_HOME } from '../helpers/services.ts';
import { diffTrees, snapshotTree } from '../helpers/tree.ts';
import { createFixtureSite, withoutDacOverride, type FixtureSite } from '../helpers/wp-fixture.ts';

// Back up a real WordPress site, restore it into a fresh database and directory, and find
// zero differences in every table and every file.

const EXCLUDED_BY_DEFAULT = new Set(['cache', 'wflogs']);

describe('backup and restore round trip', () => {
  let site: FixtureSite;
  let bucket: string;
  let work: string;
  const dataDir = (): string => join(work, 'data');

  before(async () => {
    site = await createFixtureSite({ name: 'roundtrip' });
    // Made by the site's own user, as plugins do: their DEFINER must not break a restore elsewhere.
    const p = site.tablePrefix;
    const own = { user: site.dbUser, password: site.dbPassword, host: services().mysql.host, port: services().mysql.port };
    await sqlAs(own, `CREATE TRIGGER ${p}trim_title BEFORE INSERT ON ${p}posts FOR EACH ROW SET NEW.post_title = TRIM(NEW.post_title)`, site.dbName);
    await sqlAs(own, `CREATE VIEW ${p}published AS SELECT ID, post_title FROM ${p}posts WHERE post_status = 'publish'`, site.dbName);
    await sqlAs(own, `CREATE PROCEDURE ${p}count_posts() SELECT COUNT(*) FROM ${p}posts`, site.dbName);
    bucket = await makeBucket();
    work = mkdtempSync(join(TEST_HOME, 'rt-'));
  });
  after(async () => {
    await site.cleanup();
    await removeBucket(bucket);
    rmSync(work, { recursive: true, force: true });
  });

  async function backup(dest: string, extra: string[] = [], prefix?: string[]): Promise<{ key: string; location: string; code: number | null; manifest: Record<string, unknown>; run: Awaited<ReturnType<typeof runCli>> }> {
    const run = await runCli(['backup', '--site', site.dir, '--to', dest, '--json', '--data-dir', dataDir(), ...extra], { env: s3Env(), prefix });
    const r = resultOf(run);
    return { key: r.key as string, location: r.location as string, code: run.code, manifest: r.manifest as Record<string, unknown>, run };
  }

  const objects = (db: string): Promise<string> =>
    sql(`SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '${db}' UNION ALL SELECT CONCAT('view ', TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '${db}' UNION ALL SELECT CONCAT('routine ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '${db}' ORDER BY 1`);

  async function assertRestoredEqual(targetDir: string, targetDb: string, login?: { user: string; password: string }): Promise<void> {
    assert.deepEqual(await tableChecksums(targetDb), await tableChecksums(site.dbName));
    assert.equal(await objects(targetDb), await objects(site.dbName));
    assert.equal((await objects(targetDb)).split('\n').length, 3);
    if (login) {
      // The restored trigger fires for the new site's own user (it failed with the old DEFINER).
      const own = { ...login, host: services().mysql.host, port: services().mysql.port };
      await sqlAs(own, `INSERT INTO ${site.tablePrefix}posts (post_title, post_content, post_excerpt, to_ping, pinged, post_content_filtered) VALUES ('  padded  ', '', '', '', '', '')`, targetDb);
      assert.equal(await sqlAs(own, `SELECT post_title FROM ${site.tablePrefix}posts ORDER BY ID DESC LIMIT 1`, targetDb), 'padded');
      await sqlAs(own, `DELETE FROM ${site.tablePrefix}posts ORDER BY ID DESC LIMIT 1`, targetDb);
    }
    const source = snapshotTree(join(site.dir, 'wp-content'), (rel) => EXCLUDED_BY_DEFAULT.has(rel));
    const restored = snapshotTree(join(targetDir, 'wp-content'));
    assert.deepEqual(diffTrees(source, restored), []);
    assert.ok(source.has(site.files.unicode.replace(/^wp-content\//, '')), 'the unicode file was compared');
    assert.ok(source.has(site.files.nestedCache.replace(/^wp-content\//, '')), 'a cache dir below the top level is kept');
  }

  it('backs up to S3 under <node>/<site>/<name>_<date>_<time>.tar.zst and restores with zero differences', async () => {
    const b = await backup(`s3://${bucket}/fleet`);
    assert.equal(b.code, 0, b.run.stderr);
    assert.match(b.key, /^[0-9a-f-]{36}\/[0-9a-f-]{36}\/[A-Za-z0-9._-]+_\d{8}_\d{6}\.tar\.zst$/);
    assert.deepEqual(await listKeys(bucket), [`fleet/${b.key}`]);
    assert.deepEqual(await pendingUploads(bucket), []);
    const stages = [...new Set(b.run.events.filter((e) => e.type === 'progress').map((e) => e.stage))];
    assert.deepEqual(stages, ['backup_db', 'backup_files', 'create_bundle', 'upload_remote', 'cleanup']);
    const last = b.run.events.filter((e) => e.type === 'progress').at(-1);
    assert.equal(last?.status, 'completed');
    assert.equal(last?.progress, 100);
    assert.ok(b.run.events.some((e) => /^Database dumped \(\d/.test(String(e.stage_detail))), 'stage_detail reports the dump size');
    const stored = (b.manifest.wp_content as { stored_as_is: { files: number; bytes: number } }).stored_as_is;
    assert.ok(stored.files >= site.files.media.length, `the fixture's media was stored as is (${stored.files} files)`);

    const target = await createRestoreTarget(site.tablePrefix);
    try {
      const r = await runCli(['restore', b.location, '--site', target.dir], { env: s3Env() });
      assert.equal(r.code, 0, r.stderr);
      await assertRestoredEqual(target.dir, target.dbName, { user: target.dbUser, password: target.dbPassword });
    } finally {
      await target.cleanup();
    }
  });

  it('backs up to a local directory with the same layout, and keeps the site uuid stable', async () => {
    const dest = join(work, 'local');
    const first = await backup(dest);
    assert.equal(first.code, 0, first.run.stderr);
    const second = await backup(dest, ['--name', 'second', '--compress-all']);
    assert.deepEqual((second.manifest.wp_content as { stored_as_is: unknown }).stored_as_is, { files: 0, bytes: 0 }, '--compress-all stores nothing as is');
    assert.equal(first.key.split('/').slice(0, 2).join('/'), second.key.split('/').slice(0, 2).join('/'));
    assert.equal(readdirSync(join(dest, ...first.key.split('/').slice(0, 2))).length, 2);
    assert.equal(readdirSync(join(dataDir(), 'tmp')).length, 0, 'no temp dir left');

    const target = await createRestoreTarget(site.tablePrefix);
    try {
      const r = await runCli(['restore', join(dest, first.key), '--site', target.dir]);
      assert.equal(r.code, 0, r.stderr);
      await assertRestoredEqual(target.dir, target.dbName);
      const again = await runCli(['restore', join(dest, first.key), '--site', target.dir]);
      assert.equal(again.code, 2, 'a non-empty database is refused without --force');
      assert.match(again.stderr, /already has \d+ tables.*--force/);
      const forced = await runCli(['restore', join(dest, first.key), '--site', target.dir, '--force']);
      assert.equal(forced.code, 0, forced.stderr);
      await assertRestoredEqual(target.dir, target.dbName);
    } finally {
      await target.cleanup();
    }
  });

  it("restores by the spec's manual procedure unchanged: wget, zstd -d, tar -xf, mysql, rsync", async () => {
    const b = await backup(`s3://${bucket}`);
    assert.equal(b.code, 0, b.run.stderr);
    const url = await openStorage(`s3://${bucket}`, { env: s3Env() }).presignGet(b.key, 3600);
    const target = await createRestoreTarget(site.tablePrefix);
    const dir = mkdtempSync(join(work, 'manual-'));
    try {
      const sh = (cmd: string, args: string[], input?: Buffer): void => void execFileSync(cmd, args, { cwd: dir, input, stdio: [input ? 'pipe' : 'ignore', 'ignore', 'pipe'] });
      sh('wget', ['-q', '-O', 'backup.tar.zst', url]);
      sh('zstd', ['-q', '-d', 'backup.tar.zst']);
      sh('tar', ['-xf', 'backup.tar']);
      // `mysql -u user -p db_name < database.sql`, with the password from a file, not a prompt.
      const cnf = defaultsFile({ user: target.dbUser, password: target.dbPassword });
      execFileSync('mysql', [`--defaults-extra-file=${cnf}`, target.dbName], { input: execFileSync('cat', [join(dir, 'database.sql')], { maxBuffer: 1 << 30 }) });
      sh('rsync', ['-a', 'wp-content/', `${target.dir}/wp-content/`]);
      await assertRestoredEqual(target.dir, target.dbName, { user: target.dbUser, password: target.dbPassword });
      assert.deepEqual(readdirSync(dir).sort(), ['.htaccess', 'backup.tar', 'backup.tar.zst', 'database.sql', 'manifest.json', 'wp-config.php', 'wp-content'].filter((f) => f !== '.htaccess' || readdirSync(dir).includes(f)).sort());
    } finally {
      await target.cleanup();
    }
  });

  it("warns when the target's table prefix differs from the backup's", async () => {
    const dest = join(work, 'prefix');
    const b = await backup(dest);
    const target = await createRestoreTarget('other_');
    try {
      const r = await runCli(['restore', join(dest, b.key), '--site', target.dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`\\$table_prefix 'other_' but the backup's tables use '${site.tablePrefix}'`));
    } finally {
      await target.cleanup();
    }
  });

  it('reports an unreadable file, leaves it out, and exits 3', async () => {
    const dest = join(work, 'unreadable');
    const b = await backup(dest, [], withoutDacOverride([]));
    assert.equal(b.code, 3, b.run.stderr);
    const wp = b.manifest.wp_content as { unreadable: { path: string }[] };
    assert.deepEqual(wp.unreadable.map((u) => u.path), [site.files.unreadable]);
    const listing = execFileSync('tar', ['-I', 'zstd', '-tf', join(dest, b.key)], { encoding: 'utf8' });
    assert.ok(!listing.includes(site.files.unreadable), 'the unreadable file is not in the archive');
    assert.ok(listing.includes(site.files.unicode), 'the other files are');
  });

  it('never shows the database password or the S3 secret on any command line', async () => {
    await sql('CREATE TABLE IF NOT EXISTS argv_probe (id INT AUTO_INCREMENT PRIMARY KEY, v LONGTEXT)', site.dbName);
    await sql('INSERT INTO argv_probe (v) SELECT REPEAT(MD5(RAND()), 256) FROM seq_1_to_20000', site.dbName);
    const secrets = [site.dbPassword, s3Env().AWS_SECRET_ACCESS_KEY as string];
    const seen = new Set<string>();
    let leaks: string[] = [];
    let running = true;
    const scan = async (): Promise<void> => {
      while (running) {
        for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
          let cmd = '';
          try {
            cmd = execFileSync('cat', [`/proc/${pid}/cmdline`], { encoding: 'utf8' });
          } catch {
            continue;
          }
          if (/mariadb-dump|mysqldump|zstd|main\.ts/.test(cmd)) seen.add(cmd.split('\0')[0]?.split('/').pop() ?? '');
          leaks = leaks.concat(secrets.filter((s) => cmd.includes(s)).map(() => cmd.replace(/\0/g, ' ')));
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const scanning = scan();
    const b = await backup(`s3://${bucket}/argv`);
    running = false;
    await scanning;
    assert.equal(b.code, 0, b.run.stderr);
    assert.ok(seen.has('mariadb-dump') || seen.has('mysqldump'), `the dump was seen running: ${[...seen].join(', ')}`);
    assert.deepEqual(leaks, []);
    writeFileSync(join(work, 'seen.txt'), [...seen].join('\n'));
  });
});
