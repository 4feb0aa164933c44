import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { WpbError } from '../../src/errors.ts';
import { readSiteConfig } from '../../src/engine/site.ts';
import { findWpConfig, parseDbHost, parseWpConfig } from '../../src/wordpress/wp-config.ts';

// php-cli is installed by scripts/test-services.sh (npm test): these tests never skip.
const root = mkdtempSync(join(tmpdir(), 'wpb-wp-config-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;

/** A fresh site directory holding the given files. */
function site(files: Record<string, string>): string {
  const dir = join(root, `site${++dirCount}`);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    if (name.endsWith('/')) mkdirSync(join(dir, name), { recursive: true });
    else writeFileSync(join(dir, name), content);
  }
  return dir;
}

/** A wp-config.php laid out like WordPress's wp-config-sample.php, with the given DB lines. */
function wpConfig(dbLines: string, extra = ''): string {
  return `<?php
/**
 * The base configuration for WordPress
 *
 * @link https://wordpress.org/documentation/article/editing-wp-config-php/
 *
 * @package WordPress
 */

// ** Database settings - You can get this info from your web host ** //
${dbLines}

/** Database charset to use in creating database tables. */
define( 'DB_CHARSET', 'utf8mb4' );

/** The database collate type. Don't change this if in doubt. */
define( 'DB_COLLATE', '' );

define( 'AUTH_KEY',         'q/*X#5{]aK^@u~j&8' );
define( 'SECURE_AUTH_KEY',  '*/ v$7"|pT//Z%' );
define( 'LOGGED_IN_KEY',    'put your unique phrase here' );

$table_prefix = 'wp_';

define( 'WP_DEBUG', false );
${extra}
/* That's all, stop editing! Happy publishing. */

/** Absolute path to the WordPress directory. */
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}

/** Sets up WordPress vars and included files. */
require_once ABSPATH . 'wp-settings.php';
`;
}

function dbLines(password: string, host = `'localhost'`): string {
  return `define( 'DB_NAME', 'wordpress_db' );\ndefine( 'DB_USER', 'wp_user' );\ndefine( 'DB_PASSWORD', ${password} );\ndefine( 'DB_HOST', ${host} );`;
}

/** What PHP itself sees after including the file: the DB constants and $table_prefix, as hex. */
function phpSees(file: string): Record<string, string> {
  const code = `include $argv[1]; $o = []; foreach (['DB_NAME', 'DB_USER', 'DB_PASSWORD', 'DB_HOST', 'DB_CHARSET', 'DB_COLLATE'] as $c) $o[$c] = bin2hex(constant($c)); $o['table_prefix'] = bin2hex($table_prefix); echo json_encode($o);`;
  return JSON.parse(execFileSync('php', ['-r', code, '--', file], { encoding: 'utf8' })) as Record<string, string>;
}

function hex(s: string): string {
  return Buffer.from(s, 'utf8').toString('hex');
}

function assertBadInput(fn: () => Promise<unknown> | unknown, message: RegExp, hint?: RegExp) {
  const check = (err: unknown) => {
    assert.ok(err instanceof WpbError, String(err));
    assert.equal(err.kind, 'bad_input');
    assert.match(err.message, message);
    if (hint) assert.match(err.hint ?? '', hint);
    return true;
  };
  return assert.rejects(async () => fn(), check);
}

describe('passwords agree byte for byte with PHP', () => {
  const passwords: [string, string][] = [
    ['single quote', `'it\\'s'`],
    ['double quotes', `'say "hi"'`],
    ['dollar signs', `'pa$$word$x{$y}'`],
    ['backslashes', `'C:\\\\path\\to\\\\x'`],
    ["\\\\' sequence", `'a\\\\\\'b'`],
    ['trailing backslash', `'secret\\\\'`],
    ['two trailing backslashes', `'secret\\\\\\\\'`],
    ['lone backslash before the end quote', `'x\\ '`],
    ['unicode', `'pässwörd-🔑-密码-пароль'`],
    ['comment markers', `'a#b//c/*d*/e?>f'`],
    ['all ASCII symbols', `'!@#%^&*()-_=+[]{};:",.<>/?|~\`'`],
    ['double-quoted with escapes', `"p\\$ss \\"w\\" \\\\ \\t \\x41\\101\\u{1F511}"`],
    ['double-quoted unknown escapes', `"\\q\\{\\'"`],
    ['double-quoted with single quote', `"it's"`],
    ['concatenated', `'abc' . "def" . 123`],
    ['nowdoc', `<<<'PW'\n  raw $x \\n \\\\\n  PW`],
    ['heredoc', `<<<PW\n  line \\x41\n  PW`],
    ['real newline and tab', `'line1\nline2\tend'`],
    ['integer', `12345`],
    ['empty', `''`],
  ];
  for (const [label, literal] of passwords) {
    test(label, async () => {
      const dir = site({ 'wp-config.php': wpConfig(dbLines(literal)), 'wp-settings.php': '<?php\n' });
      const php = phpSees(join(dir, 'wp-config.php'));
      const cfg = await readSiteConfig(dir);
      assert.equal(hex(cfg.dbPassword), php.DB_PASSWORD);
      assert.equal(hex(cfg.dbName), php.DB_NAME);
      assert.equal(hex(cfg.dbUser), php.DB_USER);
      assert.equal(hex(cfg.tablePrefix), php.table_prefix);
      assert.equal(hex(cfg.charset), php.DB_CHARSET);
      assert.equal(hex(cfg.collate), php.DB_COLLATE);
    });
  }
});

// wpdb::parse_db_host() from WordPress, used as the reference for parseDbHost().
const PARSE_DB_HOST_PHP = `
function parse_db_host( $host ) {
	$socket = null; $is_ipv6 = false;
	$socket_pos = strpos( $host, ':/' );
	if ( false !== $socket_pos ) { $socket = substr( $host, $socket_pos + 1 ); $host = substr( $host, 0, $socket_pos ); }
	if ( substr_count( $host, ':' ) > 1 ) { $pattern = '#^(?:\\[)?(?P<host>[0-9a-fA-F:]+)(?:\\]:(?P<port>[\\d]+))?#'; $is_ipv6 = true; }
	else { $pattern = '#^(?P<host>[^:/]*)(?::(?P<port>[\\d]+))?#'; }
	$matches = array();
	if ( 1 !== preg_match( $pattern, $host, $matches ) ) return false;
	$host = ! empty( $matches['host'] ) ? $matches['host'] : '';
	$port = ! empty( $matches['port'] ) ? abs( (int) $matches['port'] ) : null;
	return array( $host, $port, $socket, $is_ipv6 );
}`;

describe('DB_HOST', () => {
  const forms = [
    'localhost',
    'db',
    'db:3307',
    'db:/path/to.sock',
    'localhost:/var/run/mysqld/mysqld.sock',
    ':/tmp/mysql.sock',
    '[::1]:3306',
    '[::1]',
    '::1',
    '127.0.0.1',
    '127.0.0.1:3306',
    'db.example.com:3306',
    '[2001:db8::5]:33060',
    '[::1]:3306:/tmp/s.sock',
    'db:notaport',
    'db:0',
    '',
  ];

  test('parseDbHost agrees with WordPress parse_db_host() run by PHP', () => {
    const code = `${PARSE_DB_HOST_PHP}\n$o = []; foreach (json_decode($argv[1]) as $h) { $r = parse_db_host($h); $o[] = $r ? [$r[0], $r[1], $r[2]] : false; } echo json_encode($o);`;
    const php = JSON.parse(execFileSync('php', ['-r', code, '--', JSON.stringify(forms)], { encoding: 'utf8' })) as [string, number | null, string | null][];
    forms.forEach((raw, i) => {
      const [host, port, socket] = php[i] ?? [];
      const ours = parseDbHost(raw);
      assert.deepEqual([ours.host ?? '', ours.port ?? null, ours.socket ?? null], [host, port, socket], raw);
      assert.equal(ours.raw, raw);
    });
  });

  test('the forms users write', () => {
    assert.deepEqual(parseDbHost('localhost'), { raw: 'localhost', host: 'localhost' });
    assert.deepEqual(parseDbHost('db:3307'), { raw: 'db:3307', host: 'db', port: 3307 });
    assert.deepEqual(parseDbHost('db:/path/to.sock'), { raw: 'db:/path/to.sock', host: 'db', socket: '/path/to.sock' });
    assert.deepEqual(parseDbHost(':/tmp/mysql.sock'), { raw: ':/tmp/mysql.sock', socket: '/tmp/mysql.sock' });
    assert.deepEqual(parseDbHost('[::1]:3306'), { raw: '[::1]:3306', host: '::1', port: 3306 });
    assert.deepEqual(parseDbHost('[::1]'), { raw: '[::1]', host: '::1' });
    assert.deepEqual(parseDbHost('db.example.com:3306'), { raw: 'db.example.com:3306', host: 'db.example.com', port: 3306 });
  });

  test('every form read from a wp-config.php is what PHP sees', async () => {
    for (const raw of forms) {
      const dir = site({ 'wp-config.php': wpConfig(dbLines(`'pw'`, `'${raw}'`)), 'wp-settings.php': '<?php\n' });
      const cfg = await readSiteConfig(dir);
      assert.equal(hex(cfg.dbHost.raw), phpSees(join(dir, 'wp-config.php')).DB_HOST, raw);
      assert.deepEqual(cfg.dbHost, parseDbHost(raw));
    }
  });
});

describe('findWpConfig', () => {
  test('the site directory itself', async () => {
    const dir = site({ 'wp-config.php': '<?php', 'wp-settings.php': '' });
    assert.equal(await findWpConfig(dir), join(dir, 'wp-config.php'));
  });

  test("the parent directory's wp-config.php, as WordPress allows", async () => {
    const parent = site({ 'wp-config.php': wpConfig(dbLines(`'pw'`)), 'public_html/wp-settings.php': '', 'public_html/wp-content/': '' });
    const dir = join(parent, 'public_html');
    assert.equal(await findWpConfig(dir), join(parent, 'wp-config.php'));
    const cfg = await readSiteConfig(dir);
    assert.equal(cfg.file, join(parent, 'wp-config.php'));
    assert.equal(cfg.dbName, 'wordpress_db');
  });

  test('not the parent one when the parent is a WordPress install of its own', async () => {
    const parent = site({ 'wp-config.php': '<?php', 'wp-settings.php': '', 'blog/wp-settings.php': '' });
    await assertBadInput(() => findWpConfig(join(parent, 'blog')), /belongs to the WordPress install in/, /directory that holds wp-config\.php/);
  });

  test('none: names both places looked at', async () => {
    const dir = site({ 'wp-settings.php': '' });
    await assertBadInput(() => findWpConfig(dir), new RegExp(`No wp-config.php in ${dir} or in ${root}`), /Pass the directory that holds wp-config\.php or wp-settings\.php/);
  });

  test('a missing or non-directory site path', async () => {
    await assertBadInput(() => findWpConfig(join(root, 'nope')), /nope does not exist/);
    const dir = site({ 'file.txt': '' });
    await assertBadInput(() => findWpConfig(join(dir, 'file.txt')), /is not a directory/);
  });
});

describe('readSiteConfig', () => {
  test('a typical wp-config.php', async () => {
    const dir = site({ 'wp-config.php': wpConfig(dbLines(`'pw'`, `'db.internal:3307'`)), 'wp-settings.php': '' });
    assert.deepEqual(await readSiteConfig(dir), {
      file: join(dir, 'wp-config.php'),
      dbName: 'wordpress_db',
      dbUser: 'wp_user',
      dbPassword: 'pw',
      dbHost: { raw: 'db.internal:3307', host: 'db.internal', port: 3307 },
      charset: 'utf8mb4',
      collate: '',
      tablePrefix: 'wp_',
    });
  });

  test('commented-out defines are ignored', () => {
    const src = `<?php
// define( 'DB_NAME', 'old_db' );
# define( 'DB_PASSWORD', 'old' );
/*
define( 'DB_HOST', 'old-host' );
*/
define( 'DB_NAME', 'new_db' ); // define( 'DB_NAME', 'trailing' );
define( 'DB_PASSWORD', 'new' );
define( 'DB_HOST', 'new-host' );`;
    const cfg = parseWpConfig(src, 'wp-config.php');
    assert.equal(cfg.dbName, 'new_db');
    assert.equal(cfg.dbPassword, 'new');
    assert.equal(cfg.dbHost.raw, 'new-host');
  });

  test('define with a third argument, odd spacing and case', () => {
    const src = `<?php\nDEFINE(\n\t"DB_NAME",\n\t'db',\n\ttrue\n);\ndefine('DB_USER','u',false);define ( 'DB_PASSWORD' , 'p' ) ;`;
    const cfg = parseWpConfig(src, 'wp-config.php');
    assert.deepEqual([cfg.dbName, cfg.dbUser, cfg.dbPassword], ['db', 'u', 'p']);
  });

  test('defaults as in WordPress when settings are missing', () => {
    const cfg = parseWpConfig(`<?php define('DB_NAME', 'db');`, 'wp-config.php');
    assert.deepEqual({ ...cfg, file: undefined }, { file: undefined, dbName: 'db', dbUser: '', dbPassword: '', dbHost: { raw: '' }, charset: 'utf8', collate: '', tablePrefix: 'wp_' });
  });

  test('const and a custom table prefix', () => {
    const cfg = parseWpConfig(`<?php\nconst DB_NAME = 'db';\n$table_prefix = 'Site2_';`, 'wp-config.php');
    assert.equal(cfg.dbName, 'db');
    assert.equal(cfg.tablePrefix, 'Site2_');
  });

  test('getenv() is an error naming the file, line and constant', async () => {
    const dir = site({ 'wp-config.php': wpConfig(dbLines(`getenv( 'DB_PASSWORD' )`)) });
    const file = join(dir, 'wp-config.php');
    await assertBadInput(() => readSiteConfig(dir), new RegExp(`^${file}:13: DB_PASSWORD is set with getenv\\(\\), which wpbackup cannot evaluate$`), /without running it/);
  });

  const unevaluable: [string, string, RegExp][] = [
    ['$_ENV', `define('DB_NAME', 'db');\ndefine('DB_USER', $_ENV['DB_USER']);`, /^wp-config\.php:3: DB_USER is set with \$_ENV\['DB_USER'\], which/],
    ['$_SERVER', `define('DB_NAME', $_SERVER['DB_NAME']);`, /^wp-config\.php:2: DB_NAME is set with \$_SERVER\['DB_NAME'\]/],
    ['a constant', `define('DB_NAME', 'db');\ndefine('DB_HOST', MY_HOST);`, /DB_HOST is set with the constant MY_HOST/],
    ['interpolation', `define('DB_NAME', "db_$env");`, /DB_NAME is set with the variable \$env inside a double-quoted string/],
    ['an if/else', `if (x()) { define('DB_NAME', 'a'); } else { define('DB_NAME', 'b'); }`, /wp-config\.php:2: DB_NAME is set with an if\/else \(defined differently on lines 2 and 2/],
    ['the prefix', `define('DB_NAME', 'db');\n$table_prefix = getenv('PREFIX') ?: 'wp_';`, /wp-config\.php:3: \$table_prefix is set with getenv\(\)/],
    ['the charset', `define('DB_NAME', 'db');\ndefine('DB_CHARSET', CHARSET);`, /DB_CHARSET is set with the constant CHARSET/],
  ];
  for (const [label, body, message] of unevaluable) {
    test(`unevaluable: ${label}`, () => assertBadInput(() => parseWpConfig(`<?php\n${body}`, 'wp-config.php'), message));
  }

  test('DB_NAME missing, with and without an include that may set it', async () => {
    await assertBadInput(() => parseWpConfig(wpConfig(''), 'wp-config.php'), /^wp-config\.php: DB_NAME is not defined$/, /Add define\( 'DB_NAME'/);
    const withInclude = wpConfig('', "require_once __DIR__ . '/../config/application.php';");
    await assertBadInput(() => parseWpConfig(withInclude, 'wp-config.php'), /DB_NAME is not defined/, /included on line \d+ \(__DIR__ \. '\/\.\.\/config\/application\.php'\)/);
  });

  test('DB_NAME empty', () => assertBadInput(() => parseWpConfig(`<?php define('DB_NAME', '');`, 'wp-config.php'), /wp-config\.php:1: DB_NAME is empty/));

  test('invalid table prefixes are refused as WordPress refuses them', async () => {
    for (const prefix of ['wp-', 'wp prefix', 'wp_$', 'wp_é']) {
      await assertBadInput(() => parseWpConfig(`<?php define('DB_NAME', 'db');\n$table_prefix = '${prefix}';`, 'wp-config.php'), /wp-config\.php:2: \$table_prefix ".*" has characters WordPress does not allow/, /letters, digits and underscores/);
    }
  });

  test('a PHP syntax error names the line', () => assertBadInput(() => parseWpConfig(`<?php\ndefine('DB_NAME', 'db);`, '/x/wp-config.php'), /^\/x\/wp-config\.php:2: unterminated single-quoted string$/));

  test('an unreadable wp-config.php', async () => {
    const dir = site({ 'wp-config.php/': '' }); // a directory: unreadable even for root
    await assertBadInput(() => readSiteConfig(dir), /Cannot read .*wp-config\.php: not a regular file/, /Make wp-config\.php a regular file/);
  });

  test('noise typical of real files does not disturb the reading', () => {
    const src = `<?php
if ( file_exists( dirname( __FILE__ ) . '/local-config.php' ) ) {
	include( dirname( __FILE__ ) . '/local-config.php' );
	define( 'WP_LOCAL_DEV', true );
} else {
	define( 'DB_NAME', 'production_db' );
	define( 'DB_USER', 'production_user' );
	define( 'DB_PASSWORD', 'production_password' );
	define( 'DB_HOST', 'localhost' );
}
define( 'WP_HOME', 'https://' . $_SERVER['HTTP_HOST'] );
define( 'WP_MEMORY_LIMIT', '256M' );
defined( 'WP_DEBUG' ) || define( 'WP_DEBUG', false );
if ( isset( $_SERVER['HTTP_X_FORWARDED_PROTO'] ) && $_SERVER['HTTP_X_FORWARDED_PROTO'] === 'https' ) {
	$_SERVER['HTTPS'] = 'on';
}
$table_prefix = 'wp_';
if ( !defined('ABSPATH') )
	define('ABSPATH', dirname(__FILE__) . '/');
require_once(ABSPATH . 'wp-settings.php');
?>
`;
    const cfg = parseWpConfig(src, 'wp-config.php');
    assert.deepEqual([cfg.dbName, cfg.dbUser, cfg.dbPassword, cfg.dbHost.raw], ['production_db', 'production_user', 'production_password', 'localhost']);
  });
});
