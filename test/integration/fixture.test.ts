import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql, sqlAs } from '../helpers/mysql.ts';
import { services } from '../helpers/services.ts';
import { createFixtureSite, type FixtureSite, withoutDacOverride } from '../helpers/wp-fixture.ts';

// Proves the fixture is a real WordPress site with the awkward content the backup tests rely on.

/** Runs `php -r code` in the site dir with `input` on stdin. */
function php(site: FixtureSite, code: string, input = ''): string {
  const res = spawnSync('php', ['-d', 'display_errors=stderr', '-d', 'error_reporting=E_ALL&~E_DEPRECATED', '-r', code], { cwd: site.dir, input, encoding: 'utf8' });
  assert.equal(res.status, 0, `php failed: ${res.stderr}`);
  return res.stdout;
}

describe('WordPress fixture site', () => {
  let site: FixtureSite;
  before(async () => {
    site = await createFixtureSite({ name: 'fixture_test' });
  });
  after(async () => {
    await site?.cleanup();
  });

  it('is installed in its database', async () => {
    const siteurl = await sql(`SELECT option_value FROM ${site.tablePrefix}options WHERE option_name = 'siteurl'`, site.dbName);
    assert.equal(siteurl, site.siteUrl);
    const posts = Number(await sql(`SELECT COUNT(*) FROM ${site.tablePrefix}posts WHERE post_type = 'post' AND post_status = 'publish'`, site.dbName));
    assert.ok(posts >= 4, `expected at least 4 published posts, got ${posts}`);
    const comments = Number(await sql(`SELECT COUNT(*) FROM ${site.tablePrefix}comments`, site.dbName));
    assert.ok(comments >= 4);
    const attachments = Number(await sql(`SELECT COUNT(*) FROM ${site.tablePrefix}posts WHERE post_type = 'attachment'`, site.dbName));
    assert.equal(attachments, 2);
  });

  it('is self-contained: real files, its own wp-config.php', async () => {
    const config = await readFile(join(site.dir, 'wp-config.php'), 'utf8');
    assert.match(config, /define\( 'DB_NAME', 'fixture_test_/);
    assert.doesNotMatch(config, /\/etc\/wordpress/);
    for (const rel of ['wp-content', 'wp-content/themes/twentytwentythree', 'wp-includes/js/underscore.min.js', '.htaccess']) {
      assert.ok(!(await lstat(join(site.dir, rel))).isSymbolicLink(), `${rel} is a symlink`);
    }
  });

  it('loads through wp-load.php with the awkward DB password', () => {
    const version = php(site, "$_SERVER['HTTP_HOST'] = 'localhost'; define('WP_USE_THEMES', false); require 'wp-load.php'; echo get_bloginfo('version');");
    assert.match(version, /^\d+\.\d+(\.\d+)?$/);
    assert.equal(version, site.wpVersion);
  });

  it('lets the site user log in with its password and see only its database', async () => {
    const login = { user: site.dbUser, password: site.dbPassword, host: services().mysql.host, port: services().mysql.port };
    assert.match(site.dbPassword, /'/);
    assert.match(site.dbPassword, /"/);
    assert.match(site.dbPassword, /\$/);
    assert.match(site.dbPassword, /\\/);
    const dbs = (await sqlAs(login, 'SHOW DATABASES')).split('\n');
    assert.deepEqual(dbs.filter((d) => d !== 'information_schema'), [site.dbName]);
  });

  it('keeps serialized postmeta that PHP unserializes to the original value', async () => {
    const hex = await sql(`SELECT HEX(meta_value) FROM ${site.tablePrefix}postmeta WHERE post_id = ${site.meta.postId} AND meta_key = '${site.meta.key}'`, site.dbName);
    const serialized = Buffer.from(hex, 'hex').toString('utf8');
    assert.match(serialized, /^a:\d+:\{/);
    const json = php(site, 'echo json_encode(unserialize(stream_get_contents(STDIN)), JSON_THROW_ON_ERROR);', serialized);
    assert.deepEqual(JSON.parse(json), site.meta.value);
  });

  it('has the awkward files', async () => {
    const f = site.files;
    assert.ok((await stat(join(site.dir, f.unicode))).isFile());
    assert.ok((await readdir(join(site.dir, 'wp-content/uploads/2024/01'))).includes('café-日本-ü.bin'));
    assert.ok((await lstat(join(site.dir, f.symlink))).isSymbolicLink());
    assert.equal(await readlink(join(site.dir, f.symlink)), f.symlinkTarget);
    assert.ok((await stat(join(site.dir, f.symlink))).isFile(), 'symlink target exists');
    assert.deepEqual(await readdir(join(site.dir, f.emptyDir)), []);
    assert.ok((await readdir(join(site.dir, f.cacheDir))).length > 0);
    assert.ok((await readdir(join(site.dir, f.wflogsDir))).length > 0);
    assert.ok((await stat(join(site.dir, f.nestedCache))).isFile());
  });

  it('has media with incompressible bytes in uploads/YYYY/MM', async () => {
    const now = new Date();
    const month = join(site.dir, 'wp-content/uploads', String(now.getUTCFullYear()), String(now.getUTCMonth() + 1).padStart(2, '0'));
    const media = await readdir(month);
    assert.equal(media.length, 2);
    const zstd = spawnSync('zstd', ['-c', '-3', join(month, media[0] as string)]);
    assert.equal(zstd.status, 0);
    assert.ok(zstd.stdout.length > 128 * 1024 * 0.99, 'media should not compress');
  });

  it('has a file that root cannot read under withoutDacOverride', async () => {
    const file = join(site.dir, site.files.unreadable);
    assert.equal((await stat(file)).mode & 0o777, 0);
    assert.equal(spawnSync('cat', [file]).status, 0, 'plain root reads mode-000 files');
    const [cmd, ...args] = withoutDacOverride(['cat', file]);
    const res = spawnSync(cmd as string, args, { encoding: 'utf8' });
    assert.notEqual(res.status, 0);
    assert.match(res.stderr, /Permission denied/);
  });
});

describe('fixture cleanup', () => {
  it('drops the database and the user and removes the dir', async () => {
    const site = await createFixtureSite();
    await site.cleanup();
    assert.equal(existsSync(site.dir), false);
    assert.equal(await sql(`SHOW DATABASES LIKE '${site.dbName}'`), '');
    assert.equal(await sql(`SELECT COUNT(*) FROM mysql.user WHERE User = '${site.dbUser}'`), '0');
  });
});
