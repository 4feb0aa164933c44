import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, symlinkSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readSiteConfig } from '../../src/engine/site.ts';
import { MAIN, resultOf, runCli } from '../helpers/cli.ts';
import { layout, writeArchive } from '../helpers/hostile-archive.ts';
import { sql } from '../helpers/mysql.ts';
import { createRestoreTarget, type RestoreTarget } from '../helpers/restore-target.ts';
import { services, TEST_HOME } from '../helpers/services.ts';

// A restore must never aim at the wrong database. The archive's wp-config.php names the
// database of the live site it came from; a new, empty directory must not make the restore
// use it. The database is named on the command line, and checked (login, no tables) before
// a single byte is downloaded: the archive is served over HTTP here, counting requests.

describe('which database a restore goes into', () => {
  let work: string;
  let live: RestoreTarget;
  const others: RestoreTarget[] = [];
  let server: Server;
  let url: string;
  let downloads = 0;
  let dbHost: string;

  before(async () => {
    work = mkdtempSync(join(TEST_HOME, 'restore-db-'));
    dbHost = `${services().mysql.host}:${services().mysql.port}`;
    // The live source site: its database has a WordPress options table.
    live = await createRestoreTarget('wp_');
    await sql("CREATE TABLE wp_options (option_id int NOT NULL AUTO_INCREMENT PRIMARY KEY, option_name varchar(191) NOT NULL, option_value longtext NOT NULL); INSERT INTO wp_options (option_name, option_value) VALUES ('siteurl', 'https://live.example')", live.dbName);
    const liveConfig = readFileSync(join(live.dir, 'wp-config.php'), 'utf8').replace("$table_prefix", "define( 'AUTH_KEY', 'kept-salt' );\n$table_prefix");
    const archive = join(work, 'live.tar.zst');
    writeArchive(archive, layout([], { wpConfig: liveConfig }));
    server = createServer((req, res) => {
      downloads++;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      createReadStream(archive).pipe(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/live.tar.zst`;
  });
  after(async () => {
    server.close();
    await live.cleanup();
    for (const t of others) await t.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  async function emptyDb(): Promise<RestoreTarget> {
    const t = await createRestoreTarget('wp_', { withConfig: false });
    others.push(t);
    return t;
  }

  function passwordFile(password: string, mode = 0o600): string {
    const file = join(work, `pw-${Math.random().toString(36).slice(2)}`);
    writeFileSync(file, `${password}\n`, { mode });
    return file;
  }

  const liveTables = (): Promise<string> => sql(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${live.dbName}'`);

  function newSite(): string {
    const dir = join(work, `site-${Math.random().toString(36).slice(2)}`);
    return dir;
  }

  it("refuses a site without wp-config.php and no database named, instead of using the archive's (the live site's)", async () => {
    const before = downloads;
    const site = newSite();
    const run = await runCli(['restore', url, '--site', site]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /has no wp-config\.php, so the database to restore into must be named/);
    assert.match(run.stderr, /--db-name, --db-user and --db-password-file/);
    assert.equal(downloads, before, 'nothing downloaded');
    assert.equal(await liveTables(), '1', "the live site's database is untouched");
    assert.ok(!existsSync(join(site, 'wp-content')));
    assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('.wpbackup-restore')), []);
  });

  it('refuses a named database that holds a WordPress site, saying which, before downloading (even with the right login)', async () => {
    const before = downloads;
    const run = await runCli(['restore', url, '--site', newSite(), '--db-name', live.dbName, '--db-user', live.dbUser, '--db-host', dbHost, '--db-password-file', passwordFile(live.dbPassword)]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, new RegExp(`Database '${live.dbName}' already has 1 tables of a WordPress site \\(siteurl https://live\\.example\\): refusing`));
    assert.match(run.stderr, /--force/);
    assert.equal(downloads, before, 'nothing downloaded');
  });

  it("refuses a target whose wp-config.php links to another site's config, even with --force, before downloading", async () => {
    const before = downloads;
    const site = newSite();
    mkdirSync(site);
    symlinkSync(join(live.dir, 'wp-config.php'), join(site, 'wp-config.php'));
    const run = await runCli(['restore', url, '--site', site, '--force']);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /wp-config\.php is a link to .*outside the site/);
    assert.equal(downloads, before, 'nothing downloaded');
    assert.equal(await liveTables(), '1', "the other site's database is untouched");
  });

  it('checks the login before downloading, and names the options to fix', async () => {
    const t = await emptyDb();
    const before = downloads;
    const run = await runCli(['restore', url, '--site', newSite(), '--db-name', t.dbName, '--db-user', t.dbUser, '--db-host', dbHost, '--db-password-file', passwordFile('wrong')]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, new RegExp(`refused user '${t.dbUser}'`));
    assert.match(run.stderr, /Check --db-name, --db-user, --db-host and the password/);
    assert.equal(downloads, before, 'nothing downloaded');
  });

  it('takes no password file that others can read, and no half-named database', async () => {
    const t = await emptyDb();
    const open = await runCli(['restore', url, '--site', newSite(), '--db-name', t.dbName, '--db-user', t.dbUser, '--db-password-file', passwordFile(t.dbPassword, 0o644)]);
    assert.equal(open.code, 2);
    assert.match(open.stderr, /has mode 644: others can read it\. chmod 600/);
    const noPassword = await runCli(['restore', url, '--site', newSite(), '--db-name', t.dbName, '--db-user', t.dbUser]);
    assert.equal(noPassword.code, 2);
    assert.match(noPassword.stderr, /never taken from the command line/);
    const own = await runCli(['restore', url, '--site', live.dir, '--db-name', t.dbName, '--db-user', t.dbUser, '--db-password-file', passwordFile(t.dbPassword)]);
    assert.equal(own.code, 2);
    assert.match(own.stderr, /has a wp-config\.php .*database '.*'\): --db-name and the other --db-\* options are only for a site without one/);
  });

  it('restores into the named empty database and installs a wp-config.php that points at it', async () => {
    const t = await emptyDb();
    const site = newSite();
    const run = await runCli(['restore', url, '--site', site, '--json', '--db-name', t.dbName, '--db-user', t.dbUser, '--db-host', dbHost, '--db-password-file', passwordFile(t.dbPassword)]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(resultOf(run).database, t.dbName);
    assert.equal(await sql("SELECT option_value FROM wp_options WHERE option_name = 'siteurl'", t.dbName), 'https://source.example');
    const config = await readSiteConfig(site);
    assert.deepEqual([config.dbName, config.dbUser, config.dbPassword, config.dbHost.raw], [t.dbName, t.dbUser, t.dbPassword, dbHost]);
    assert.match(readFileSync(join(site, 'wp-config.php'), 'utf8'), /define\( 'AUTH_KEY', 'kept-salt' \);/, "the archive's other settings are kept");
    assert.doesNotMatch(readFileSync(join(site, 'wp-config.php'), 'utf8'), new RegExp(live.dbName), 'the live database is named nowhere');
    assert.equal(await liveTables(), '1', "the live site's database is untouched");
    assert.match((resultOf(run).warnings as string[]).join('\n'), new RegExp(`installed the archive's wp-config.php with DB_NAME, DB_USER, DB_PASSWORD and DB_HOST set to database '${t.dbName}'`));
  });

  it('takes the password from stdin with --db-password-stdin', async () => {
    const t = await emptyDb();
    const site = newSite();
    const args = [MAIN, 'restore', url, '--site', site, '--db-name', t.dbName, '--db-user', t.dbUser, '--db-host', dbHost, '--db-password-stdin'];
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.resume();
    child.stdin.end(`${t.dbPassword}\n`);
    const [code] = (await once(child, 'close')) as [number];
    assert.equal(code, 0, stderr);
    assert.equal((await readSiteConfig(site)).dbPassword, t.dbPassword);
    assert.equal(await sql("SELECT COUNT(*) FROM wp_options", t.dbName), '2');
  });
});
