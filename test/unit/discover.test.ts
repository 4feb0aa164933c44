import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { sitesScan, sitesTable } from '../../src/cli/commands/sites.ts';
import { WpbError } from '../../src/errors.ts';
import { nameSites, scanSites, type FoundSite } from '../../src/wordpress/discover.ts';
import { readWpVersion } from '../../src/wordpress/version.ts';

const tmp = mkdtempSync(join(tmpdir(), 'wpb-discover-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const VERSION_PHP = `<?php
/**
 * WordPress Version
 *
 * Contains version information for the current WordPress release.
 *
 * @package WordPress
 * @since 1.2.0
 */

/**
 * The WordPress version string.
 *
 * Holds the current version number for WordPress core. Used to bust caches
 * and to enable development mode for scripts when running from the /src directory.
 *
 * @global string $wp_version
 */
$wp_version = '6.5.2';

/**
 * Holds the WordPress DB revision, increments when changes are made to the WordPress DB schema.
 *
 * @global int $wp_db_version
 */
$wp_db_version = 57155;

$tinymce_version = '49110-20201110';
$required_php_version = '7.0.0';
$required_mysql_version = '5.5.5';
`;

function config(dbName: string, extra = ''): string {
  return `<?php\ndefine( 'DB_NAME', '${dbName}' );\ndefine( 'DB_USER', 'u' );\ndefine( 'DB_PASSWORD', 'SECRET-PW-${dbName}' );\ndefine( 'DB_HOST', 'localhost' );\n${extra}\nrequire_once ABSPATH . 'wp-settings.php';\n`;
}

function write(path: string, content = ''): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
}

/** WordPress core files (and wp-content) in dir, with wp-config.php unless config is null. */
function wordpress(dir: string, cfg: string | null, version = '6.5.2'): void {
  write(join(dir, 'wp-settings.php'), '<?php\n');
  write(join(dir, 'wp-includes', 'version.php'), VERSION_PHP.replace('6.5.2', version));
  mkdirSync(join(dir, 'wp-content', 'plugins'), { recursive: true });
  if (cfg !== null) write(join(dir, 'wp-config.php'), cfg);
}

// The tree every scan test uses.
const www = join(tmp, 'www');
before(() => {
  wordpress(join(www, 'example.com', 'public_html'), config('example', "$table_prefix = 'ex_';"));
  wordpress(join(www, 'html'), config('main'), '6.4.3');
  wordpress(join(www, 'broken.org'), config('broken').replace("'broken'", "getenv('DB')"));
  // wp-config.php one level up, as WordPress allows.
  write(join(www, 'parentcfg.net', 'wp-config.php'), config('parentcfg'));
  wordpress(join(www, 'parentcfg.net', 'public_html'), null);
  // Core in a subdirectory: found twice, listed once at the outer directory.
  write(join(www, 'split.io', 'wp-config.php'), config('split'));
  mkdirSync(join(www, 'split.io', 'wp-content'), { recursive: true });
  wordpress(join(www, 'split.io', 'wp'), null, '6.3.1');
  // Never sites: inside wp-content, node_modules, .git, and deeper than the limit.
  write(join(www, 'example.com', 'public_html', 'wp-content', 'plugins', 'p', 'wp-settings.php'));
  write(join(www, 'tools', 'node_modules', 'x', 'wp-settings.php'));
  write(join(www, 'repo', '.git', 'x', 'wp-settings.php'));
  wordpress(join(www, 'a', 'b', 'c', 'd', 'e', 'deep'), config('deep'));
  // A symlink loop and a symlinked alias of a site.
  symlinkSync(www, join(www, 'example.com', 'loop'));
  symlinkSync(join(www, 'html'), join(www, 'alias'));
  symlinkSync(join(tmp, 'nowhere'), join(www, 'dangling'));
});

describe('scanSites', () => {
  test('finds the sites, sorted by path, each with its settings', async () => {
    const sites = await scanSites([www], { hostname: 'web1' });
    assert.deepEqual(
      sites.map((s) => [s.name, s.path.slice(www.length + 1), s.dbName ?? null, s.tablePrefix ?? null, s.wpVersion ?? null]),
      [
        ['alias', 'alias', 'main', 'wp_', '6.4.3'], // symlinks are walked first: a stable alias beats a release dir
        ['broken.org', 'broken.org', null, null, '6.5.2'],
        ['example.com', 'example.com/public_html', 'example', 'ex_', '6.5.2'],
        ['parentcfg.net', 'parentcfg.net/public_html', 'parentcfg', 'wp_', '6.5.2'],
        ['split.io', 'split.io', 'split', 'wp_', '6.3.1'],
      ],
    );
  });

  test('a site whose wp-config.php cannot be read is listed with the reason', async () => {
    const broken = (await scanSites([www], { hostname: 'web1' })).find((s) => s.name === 'broken.org');
    assert.match(broken?.error ?? '', /wp-config\.php:2: DB_NAME is set with getenv\(\), which wpbackup cannot evaluate/);
  });

  test('the parent wp-config.php and DB host are reported', async () => {
    const site = (await scanSites([www])).find((s) => s.dbName === 'parentcfg');
    assert.equal(site?.configFile, join(www, 'parentcfg.net', 'wp-config.php'));
    assert.equal(site?.dbHost, 'localhost');
  });

  test('depth is limited', async () => {
    const deep = join(www, 'a', 'b', 'c', 'd', 'e', 'deep');
    assert.ok(!(await scanSites([www])).some((s) => s.path === deep));
    assert.ok((await scanSites([www], { maxDepth: 6 })).some((s) => s.path === deep));
    assert.deepEqual(await scanSites([www], { maxDepth: 0 }), []);
  });

  test('a site directory itself as the root, and overlapping roots list each site once', async () => {
    const html = join(www, 'html');
    const sites = await scanSites([html, www, html], { hostname: 'web1' });
    assert.deepEqual(sites.filter((s) => s.dbName === 'main').map((s) => [s.name, s.path]), [[basename(tmp), html]]);
  });

  test('no sites is an empty list', async () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty, { recursive: true });
    assert.deepEqual(await scanSites([empty]), []);
  });

  test('a missing root or a file is bad input', async () => {
    await assert.rejects(scanSites([join(tmp, 'missing')]), (err: unknown) => err instanceof WpbError && err.kind === 'bad_input' && /missing does not exist/.test(err.message));
    write(join(tmp, 'file.txt'));
    await assert.rejects(scanSites([join(tmp, 'file.txt')]), (err: unknown) => err instanceof WpbError && /is not a directory/.test(err.message));
  });

  test('links the site controls are not read through: another site\'s wp-config.php, a linked version.php', async () => {
    const root = join(tmp, 'links');
    wordpress(join(root, 'victim.com'), config('victim'));
    wordpress(join(root, 'thief.com'), null);
    symlinkSync(join(root, 'victim.com', 'wp-config.php'), join(root, 'thief.com', 'wp-config.php'));
    rmSync(join(root, 'thief.com', 'wp-includes', 'version.php'));
    symlinkSync(join(root, 'victim.com', 'wp-includes', 'version.php'), join(root, 'thief.com', 'wp-includes', 'version.php'));
    const thief = (await scanSites([root])).find((s) => s.name === 'thief.com');
    assert.equal(thief?.dbName, undefined);
    assert.equal(thief?.wpVersion, undefined);
    assert.match(thief?.error ?? '', /wp-config\.php is a link to .*victim\.com.*outside the site: not read/);
    assert.doesNotMatch(JSON.stringify(thief), /SECRET-PW/);
  });

  test('a stop request ends the scan', async () => {
    await assert.rejects(scanSites([www], { signal: AbortSignal.abort() }), (err: unknown) => err instanceof WpbError && err.kind === 'stopped');
  });
});

describe('readWpVersion', () => {
  test('reads $wp_version from wp-includes/version.php', async () => {
    assert.equal(await readWpVersion(join(www, 'example.com', 'public_html')), '6.5.2');
  });

  test('missing or unreadable version.php is bad input', async () => {
    await assert.rejects(readWpVersion(join(www, 'split.io')), (err: unknown) => err instanceof WpbError && err.kind === 'bad_input' && /version\.php: ENOENT/.test(err.message));
    write(join(tmp, 'odd', 'wp-includes', 'version.php'), "<?php\n$wp_version = get_version();\n");
    await assert.rejects(readWpVersion(join(tmp, 'odd')), /no plain \$wp_version/);
  });
});

describe('site names', () => {
  function names(paths: string[], hostname = 'web1'): string[] {
    const sites: FoundSite[] = paths.map((path) => ({ name: '', path }));
    nameSites(sites, hostname);
    return sites.map((s) => s.name);
  }

  test('from the meaningful part of the path', () => {
    assert.deepEqual(
      names(['/var/www/example.com/public_html', '/var/www/vhosts/plesk.com/httpdocs', '/home/alice/public_html', '/home/u/domains/da.org/public_html', '/srv/www/blog', '/home/runcloud/webapps/shop']),
      ['example.com', 'plesk.com', 'alice', 'da.org', 'blog', 'shop'],
    );
  });

  test('the hostname when the path says nothing', () => {
    assert.deepEqual(names(['/var/www/html']), ['web1']);
    assert.deepEqual(names(['/var/www/html'], ''), ['site']);
  });

  test('clashing names take in outer segments, then numbers', () => {
    assert.deepEqual(names(['/var/www/a.com/public_html/blog', '/var/www/b.com/public_html/blog', '/var/www/c.com']), ['a.com-blog', 'b.com-blog', 'c.com']);
    assert.deepEqual(names(['/var/www/html', '/srv/www/public_html']), ['web1', 'web1-2']);
  });
});

describe('wpbackup sites scan', () => {
  async function run(args: string[]): Promise<{ code: number; out: string }> {
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on('data', (c: Buffer) => chunks.push(c));
    const flags = args.filter((a) => a.startsWith('--'));
    const values = Object.fromEntries(flags.map((f) => [f.slice(2), true]));
    const ctx = { stdout, stderr: new PassThrough(), env: {}, signal: new AbortController().signal };
    const code = await sitesScan.run(values, args.filter((a) => !a.startsWith('--')), ctx);
    return { code, out: Buffer.concat(chunks).toString('utf8') };
  }

  test('a table with a note for each site with an error, and no passwords', async () => {
    const { code, out } = await run([www]);
    assert.equal(code, 0);
    const lines = out.split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+PATH\s+DB\s+PREFIX\s+VERSION$/);
    const header = lines[0] ?? '';
    const row = lines.find((l) => l.startsWith('example.com')) ?? '';
    assert.equal(row.indexOf(join(www, 'example.com')), header.indexOf('PATH'), 'columns line up');
    assert.match(row, /example@localhost\s+ex_\s+6\.5\.2$/);
    assert.match(out, /1 site\(s\) could not be read:\n {2}broken\.org: .*getenv\(\)/);
    assert.doesNotMatch(out, /SECRET-PW/);
  });

  test('--json', async () => {
    const { code, out } = await run([www, '--json']);
    assert.equal(code, 0);
    const sites = JSON.parse(out) as FoundSite[];
    assert.equal(sites.length, 5);
    assert.equal(sites.find((s) => s.dbName === 'example')?.tablePrefix, 'ex_');
    assert.doesNotMatch(out, /SECRET-PW/);
  });

  test('no sites found is still success', async () => {
    const empty = join(tmp, 'empty2');
    mkdirSync(empty, { recursive: true });
    assert.deepEqual(await run([empty]), { code: 0, out: `No WordPress sites found under ${empty}\n` });
    assert.deepEqual(await run([empty, '--json']), { code: 0, out: '[]\n' });
  });

  test('sitesTable fills missing values with -', () => {
    assert.equal(sitesTable([{ name: 'x', path: '/x', error: 'boom' }]), 'NAME  PATH  DB  PREFIX  VERSION\nx     /x    -   -       -\n\n1 site(s) could not be read:\n  x: boom\n');
  });
});
