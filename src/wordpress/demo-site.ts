import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

// Builds a real, self-contained WordPress site from Debian's `wordpress` package, for demos,
// benchmarks and tests. Debian splits the install across /usr/share/wordpress (core),
// /etc/wordpress (config, .htaccess) and /var/lib/wordpress (wp-content, all symlinks back
// into /usr/share); a backup of such a site would follow symlinks out of it. So everything
// is copied as real files and the site gets its own classic wp-config.php, like a site
// unpacked from wordpress.org on a shared host.

export const DEBIAN_WORDPRESS_CORE = '/usr/share/wordpress';

export interface DemoSiteDb {
  host: string;
  port?: number;
  /** When set, WordPress connects through this socket and host/port are ignored. */
  socket?: string;
  name: string;
  user: string;
  password: string;
}

export interface DemoSiteOptions {
  /** Created if missing; must be empty. */
  dir: string;
  /** The database and its user must already exist; the database must be empty. */
  db: DemoSiteDb;
  siteUrl: string;
  title?: string;
  adminEmail?: string;
  tablePrefix?: string;
  posts?: number;
  /** How many incompressible binary files go to wp-content/uploads/YYYY/MM (default 3). */
  media?: number;
  /** Bytes per media file (default 128 KiB). */
  mediaBytes?: number;
  adminUser?: string;
  /** Random when not given; returned either way. */
  adminPassword?: string;
  /** WordPress core to copy (default Debian's). */
  core?: string;
}

export interface DemoSite {
  dir: string;
  wpVersion: string;
  adminUser: string;
  adminPassword: string;
}

export async function createDemoSite(opts: DemoSiteOptions): Promise<DemoSite> {
  const tablePrefix = opts.tablePrefix ?? 'wp_';
  if (!/^[A-Za-z0-9_]+$/.test(tablePrefix)) throw new Error(`Invalid table prefix ${JSON.stringify(tablePrefix)}: use letters, digits and _`);
  await prepareDir(opts.dir);
  await copyCore(opts.core ?? DEBIAN_WORDPRESS_CORE, opts.dir);
  await writeFile(join(opts.dir, 'wp-config.php'), wpConfig(opts.db, tablePrefix), { mode: 0o640 });
  const media = await writeMedia(opts.dir, opts.media ?? 3, opts.mediaBytes ?? 128 * 1024);
  const siteUrl = opts.siteUrl.replace(/\/+$/, '');
  const adminUser = opts.adminUser ?? 'admin';
  const adminPassword = opts.adminPassword ?? randomBytes(18).toString('base64url');
  const params = {
    title: opts.title ?? 'wpbackup demo',
    adminUser,
    adminPassword,
    adminEmail: opts.adminEmail ?? 'admin@example.com',
    siteUrl,
    posts: opts.posts ?? 5,
    media,
  };
  const result = (await runWpPhp(opts.dir, INSTALL_PHP, params, { installing: true, siteUrl })) as { version: string };
  return { dir: opts.dir, wpVersion: result.version, adminUser, adminPassword };
}

async function prepareDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  if ((await readdir(dir)).length > 0) throw new Error(`${dir} is not empty; a demo site needs an empty directory`);
}

// Debian's wp-config.php reads /etc/wordpress, and its wp-content and .htaccess live
// elsewhere: the site gets its own of each. Symlinks that point nowhere are skipped.
const OWN_FILES = new Set(['wp-config.php', 'wp-content', '.htaccess']);

async function copyCore(core: string, dir: string): Promise<void> {
  if (!existsSync(join(core, 'wp-includes', 'version.php'))) {
    throw new Error(`No WordPress core at ${core}: install Debian's wordpress package (apt-get install wordpress)`);
  }
  await cp(core, dir, {
    recursive: true,
    dereference: true,
    filter: (src) => !OWN_FILES.has(relative(core, src)) && existsSync(src),
  });
  await copyWpContent(join(core, 'wp-content'), join(dir, 'wp-content'));
  await writeFile(join(dir, '.htaccess'), HTACCESS, { mode: 0o644 });
}

// Debian's languages (wordpress-l10n, ~30 MB of .mo files) are left out: the site is English.
async function copyWpContent(from: string, to: string): Promise<void> {
  for (const sub of ['themes', 'plugins']) {
    await cp(join(from, sub), join(to, sub), { recursive: true, dereference: true, filter: (src) => existsSync(src) });
  }
  await mkdir(join(to, 'uploads'), { recursive: true, mode: 0o755 });
  await writeFile(join(to, 'index.php'), '<?php\n// Silence is golden.\n', { mode: 0o644 });
}

const HTACCESS = `# BEGIN WordPress
<IfModule mod_rewrite.c>
RewriteEngine On
RewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]
RewriteBase /
RewriteRule ^index\\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.php [L]
</IfModule>
# END WordPress
`;

/** A PHP single-quoted string literal: only \ and ' are special there. */
export function phpString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function dbHostValue(db: DemoSiteDb): string {
  if (db.socket) return `localhost:${db.socket}`;
  return db.port ? `${db.host}:${db.port}` : db.host;
}

function wpConfig(db: DemoSiteDb, tablePrefix: string): string {
  const define = (name: string, value: string): string => `define( ${phpString(name)}, ${phpString(value)} );`;
  const salts = ['AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT'];
  return [
    '<?php',
    '// Written by wpbackup createDemoSite.',
    define('DB_NAME', db.name),
    define('DB_USER', db.user),
    define('DB_PASSWORD', db.password),
    define('DB_HOST', dbHostValue(db)),
    define('DB_CHARSET', 'utf8mb4'),
    define('DB_COLLATE', ''),
    '',
    ...salts.map((name) => define(name, randomBytes(48).toString('base64'))),
    '',
    `$table_prefix = ${phpString(tablePrefix)};`,
    '',
    "define( 'WP_DEBUG', false );",
    "define( 'AUTOMATIC_UPDATER_DISABLED', true );",
    "define( 'DISABLE_WP_CRON', true );",
    '',
    "if ( ! defined( 'ABSPATH' ) ) {",
    "\tdefine( 'ABSPATH', __DIR__ . '/' );",
    '}',
    "require_once ABSPATH . 'wp-settings.php';",
    '',
  ].join('\n');
}

interface MediaFile {
  rel: string;
  size: number;
}

// Random bytes so compression cannot shrink them, like real JPEGs and videos. WordPress files
// uploads by the current month in the site's timezone, which is UTC on a fresh install.
async function writeMedia(dir: string, count: number, bytes: number): Promise<MediaFile[]> {
  const now = new Date();
  const month = `${now.getUTCFullYear()}/${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
  const files: MediaFile[] = [];
  for (let i = 1; i <= count; i++) {
    const rel = `${month}/demo-media-${i}.bin`;
    await mkdir(join(dir, 'wp-content', 'uploads', month), { recursive: true, mode: 0o755 });
    await writeFile(join(dir, 'wp-content', 'uploads', rel), randomBytes(bytes), { mode: 0o644 });
    files.push({ rel, size: bytes });
  }
  return files;
}

const INSTALL_PHP = `
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
if (is_blog_installed()) throw new RuntimeException('WordPress is already installed in database ' . DB_NAME);
$installed = wp_install($params['title'], $params['adminUser'], $params['adminEmail'], true, '', wp_slash($params['adminPassword']));
update_option('siteurl', $params['siteUrl']);
update_option('home', $params['siteUrl']);
$author = (int) $installed['user_id'];
$posts = [];
for ($i = 1; $i <= $params['posts']; $i++) {
  $id = wp_insert_post(wp_slash([
    'post_title' => "Demo post $i",
    'post_content' => "<!-- wp:paragraph --><p>Demo post number $i, made by wpbackup.</p><!-- /wp:paragraph -->",
    'post_status' => 'publish',
    'post_author' => $author,
  ]), true);
  if (is_wp_error($id)) throw new RuntimeException($id->get_error_message());
  update_post_meta($id, '_wpbackup_demo', wp_slash(['index' => $i, 'tags' => ['alpha', 'beta'], 'nested' => ['ratio' => $i / 4, 'ok' => true]]));
  wp_insert_comment(wp_slash([
    'comment_post_ID' => $id,
    'comment_author' => 'Demo Visitor',
    'comment_author_email' => 'visitor@example.com',
    'comment_content' => "A comment on post $i.",
    'comment_approved' => 1,
  ]));
  $posts[] = $id;
}
$uploads = wp_upload_dir();
foreach ($params['media'] as $n => $m) {
  $id = wp_insert_attachment(wp_slash([
    'post_title' => 'Demo media ' . ($n + 1),
    'post_mime_type' => 'application/octet-stream',
    'guid' => $uploads['baseurl'] . '/' . $m['rel'],
    'post_status' => 'inherit',
  ]), $uploads['basedir'] . '/' . $m['rel'], $posts[0] ?? 0, true);
  if (is_wp_error($id)) throw new RuntimeException($id->get_error_message());
  wp_update_attachment_metadata($id, ['filesize' => $m['size']]);
}
$result = ['version' => get_bloginfo('version'), 'posts' => $posts];
`;

export interface WpPhpOptions {
  /** Defines WP_INSTALLING, needed before the tables exist. */
  installing?: boolean;
  /** Sets $_SERVER's host so WordPress code that reads it behaves as under a web server. */
  siteUrl?: string;
}

const RESULT_MARK = '@@WPBACKUP_RESULT@@';

/**
 * Runs PHP code inside a loaded WordPress (wp-load.php) with php-cli, at global scope as
 * WordPress expects. The code sees `$params` (decoded from JSON) and sets `$result`, which
 * comes back through JSON. The script goes in on stdin, so nothing in it shows in ps.
 * Outgoing HTTP and mail are disabled so an install never waits on the network.
 */
export async function runWpPhp(dir: string, code: string, params: unknown = null, opts: WpPhpOptions = {}): Promise<unknown> {
  const script = wpPhpScript(dir, code, params, opts);
  const { stdout, stderr, status } = await runPhp(script, dir);
  const line = stdout.split('\n').findLast((l) => l.startsWith(RESULT_MARK));
  if (status !== 0 || line === undefined) {
    throw new Error(`php failed in ${dir} (exit ${status}): ${plainText(stderr) || plainText(stdout) || 'no output'}`);
  }
  return JSON.parse(line.slice(RESULT_MARK.length)) as unknown;
}

// WordPress reports a dead database as a whole HTML page on stdout.
function plainText(output: string): string {
  const text = output.replace(/<(script|style)[^]*?<\/\1>/gi, ' ').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

function wpPhpScript(dir: string, code: string, params: unknown, opts: WpPhpOptions): string {
  const host = opts.siteUrl ? new URL(opts.siteUrl).host : 'localhost';
  const encoded = Buffer.from(JSON.stringify({ params, dir, host })).toString('base64');
  return `<?php
error_reporting(E_ALL & ~E_DEPRECATED & ~E_USER_DEPRECATED);
$wpbackup = json_decode(base64_decode('${encoded}'), true);
$params = $wpbackup['params'];
$_SERVER['HTTP_HOST'] = $_SERVER['SERVER_NAME'] = $wpbackup['host'];
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$wp_filter = [
  'pre_http_request' => [10 => [['function' => function () { return new WP_Error('wpbackup_offline', 'HTTP is disabled'); }, 'accepted_args' => 1]]],
  'pre_wp_mail' => [10 => [['function' => function () { return true; }, 'accepted_args' => 1]]],
];
${opts.installing ? installDefines(opts.siteUrl) : ''}
require $wpbackup['dir'] . '/wp-load.php';
$result = null;
${code}
echo "\\n${RESULT_MARK}" . json_encode($result, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR) . "\\n";
`;
}

// Without these, wp_install guesses the URL from the CLI script's path for the first posts'
// guids, and WP_CONTENT_URL (so attachment guids) is fixed at load time, before the options exist.
function installDefines(siteUrl?: string): string {
  const urls = siteUrl
    ? [`define('WP_SITEURL', ${phpString(siteUrl)});`, `define('WP_HOME', ${phpString(siteUrl)});`, `define('WP_CONTENT_URL', ${phpString(`${siteUrl}/wp-content`)});`]
    : [];
  return ["define('WP_INSTALLING', true);", ...urls].join('\n');
}

function runPhp(script: string, cwd: string): Promise<{ stdout: string; stderr: string; status: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('php', ['-d', 'display_errors=stderr', '-d', 'memory_limit=512M'], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-16384)));
    child.once('error', (err) => reject(new Error(`Cannot run php: ${err.message} (apt-get install php-cli php-mysql)`, { cause: err })));
    child.once('close', (status) => resolve({ stdout, stderr, status }));
    // A php that died at once fails through 'error' or its status, not as an unheard EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(script);
  });
}
