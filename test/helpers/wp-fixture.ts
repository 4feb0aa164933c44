import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createDemoSite, runWpPhp } from '../../src/wordpress/demo-site.ts';
import { createDatabase, createDbUser, dropDatabase, dropDbUser, uniqueName } from './mysql.ts';
import { services, TEST_HOME } from './services.ts';

// A real WordPress site plus the awkward things backups meet on real hosts. Paths in `files`
// are relative to the site dir, so they apply to a restored copy too.

export interface FixtureFiles {
  /** A binary file with a non-ASCII (NFC) name. */
  unicode: string;
  /** A relative symlink to a file inside wp-content. */
  symlink: string;
  /** Where `symlink` points, relative to the symlink's directory. */
  symlinkTarget: string;
  emptyDir: string;
  /** Mode 000: root reads it anyway unless run through withoutDacOverride(). */
  unreadable: string;
  /** wp-content/cache: a top-level cache dir backups may skip. */
  cacheDir: string;
  wflogsDir: string;
  /** A file under plugins/.../cache, which backups must keep. */
  nestedCache: string;
  /** Already-compressed media by name (stored as is, not compressed), one in a mode 0555 dir. */
  media: string[];
}

export interface FixtureMeta {
  postId: number;
  key: string;
  /** The value as stored with update_post_meta (and as option `fixture_option`). */
  value: unknown;
}

export interface FixtureSite {
  dir: string;
  dbName: string;
  dbUser: string;
  dbPassword: string;
  tablePrefix: string;
  siteUrl: string;
  wpVersion: string;
  files: FixtureFiles;
  meta: FixtureMeta;
  cleanup(): Promise<void>;
}

const TABLE_PREFIX = 'wpfx_';

/** Multibyte text, quotes, backslashes and every JSON type, to catch charset and escaping bugs. */
export const FIXTURE_META_VALUE = {
  title: 'Grüße aus Köln — 日本語テキスト 🎉',
  list: ['é', 'ß', '中文', 'emoji 😀'],
  quoted: 'it\'s "quoted", a \\ backslash and $dollar',
  whitespace: 'line1\nline2\ttab',
  n: 42,
  ratio: 1.5,
  flag: true,
  none: null,
  nested: { clé: { deep: ['ü', 1] } },
};

export async function createFixtureSite(opts: { name?: string } = {}): Promise<FixtureSite> {
  const id = uniqueName(opts.name ?? 'fx');
  // Each character is one that breaks naive quoting in SQL, PHP, shell or option files.
  const dbPassword = `p'w"d$x\\y-${randomBytes(6).toString('hex')}`;
  const dir = join(TEST_HOME, 'sites', id);
  const siteUrl = `http://${id.replace(/_/g, '-')}.wpbackup.test`;
  const cleanup = async (): Promise<void> => {
    await dropDbUser(id);
    await dropDatabase(id);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await createDatabase(id);
    await createDbUser(id, dbPassword, id);
    const { host, port } = services().mysql;
    const site = await createDemoSite({ dir, db: { host, port, name: id, user: id, password: dbPassword }, siteUrl, title: 'Fixture site ✓', tablePrefix: TABLE_PREFIX, posts: 3, media: 2 });
    const meta = await addTrickyRows(dir, siteUrl);
    const files = await addTrickyFiles(dir);
    return { dir, dbName: id, dbUser: id, dbPassword, tablePrefix: TABLE_PREFIX, siteUrl, wpVersion: site.wpVersion, files, meta, cleanup };
  } catch (err) {
    await cleanup().catch(() => {});
    throw err;
  }
}

// wp_insert_post, update_post_meta and wp_insert_comment unslash their input, so it is slashed
// first or backslashes would be lost.
const TRICKY_ROWS_PHP = `
$id = wp_insert_post(wp_slash([
  'post_title' => 'Ünïcödé — 日本語 🎉',
  'post_content' => "Quotes ' and \\" and a \\\\ backslash, äöü.",
  'post_status' => 'publish',
]), true);
if (is_wp_error($id)) throw new RuntimeException($id->get_error_message());
update_post_meta($id, $params['key'], wp_slash($params['value']));
update_option('fixture_option', $params['value']);
wp_insert_comment(wp_slash([
  'comment_post_ID' => $id,
  'comment_author' => 'Zoë Æsir',
  'comment_author_email' => 'zoe@example.com',
  'comment_content' => 'Kommentar mit Umlauten äöü und Emoji 👍',
  'comment_approved' => 1,
]));
$result = $id;
`;

async function addTrickyRows(dir: string, siteUrl: string): Promise<FixtureMeta> {
  const key = '_fixture_meta';
  const postId = (await runWpPhp(dir, TRICKY_ROWS_PHP, { key, value: FIXTURE_META_VALUE }, { siteUrl })) as number;
  return { postId, key, value: FIXTURE_META_VALUE };
}

async function put(dir: string, rel: string, data: string | Buffer): Promise<void> {
  await mkdir(dirname(join(dir, rel)), { recursive: true });
  await writeFile(join(dir, rel), data);
}

async function addTrickyFiles(dir: string): Promise<FixtureFiles> {
  const files: FixtureFiles = {
    unicode: 'wp-content/uploads/2024/01/café-日本-ü.bin',
    symlink: 'wp-content/uploads/latest.bin',
    symlinkTarget: '2024/01/photo-original.bin',
    emptyDir: 'wp-content/upgrade',
    unreadable: 'wp-content/uploads/private/locked.bin',
    cacheDir: 'wp-content/cache',
    wflogsDir: 'wp-content/wflogs',
    nestedCache: 'wp-content/plugins/some-plugin/cache/keep.txt',
    media: ['wp-content/uploads/2024/01/photo.jpg', 'wp-content/uploads/2024/01/photo-150x150.JPG', 'wp-content/uploads/2024/02/clip-été.mp4', 'wp-content/uploads/2023/locked-dir/scan.png'],
  };
  await put(dir, files.unicode, randomBytes(64 * 1024));
  await put(dir, 'wp-content/uploads/2024/01/photo-original.bin', randomBytes(256 * 1024));
  await symlink(files.symlinkTarget, join(dir, files.symlink));
  await mkdir(join(dir, files.emptyDir), { recursive: true });
  // Sizes around the stored frame's 128 KiB blocks and the tar writer's 1 MiB buffers.
  for (const [i, size] of [300 * 1024, 9000, 1024 * 1024 + 17, 128 * 1024].entries()) await put(dir, files.media[i] as string, randomBytes(size));
  await chmod(join(dir, 'wp-content/uploads/2023/locked-dir'), 0o555);
  await put(dir, files.unreadable, randomBytes(4096));
  await chmod(join(dir, files.unreadable), 0o000);
  await put(dir, `${files.cacheDir}/page/index.html`, '<html>cached page</html>\n');
  await put(dir, `${files.cacheDir}/object-cache.bin`, randomBytes(32 * 1024));
  await put(dir, `${files.wflogsDir}/rules.php`, '<?php exit(); ?>{"rules":[]}\n');
  await put(dir, `${files.wflogsDir}/attack-data.php`, `<?php exit(); ?>${randomBytes(1024).toString('base64')}\n`);
  await put(dir, 'wp-content/plugins/some-plugin/some-plugin.php', '<?php\n/*\nPlugin Name: Some Plugin\n*/\n');
  await put(dir, files.nestedCache, 'a cache dir below wp-content/plugins, not the top-level one: keep me\n');
  return files;
}

/**
 * Prefixes a command so that it runs without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: as
 * root it then gets "permission denied" on mode-000 files like an ordinary user would, while
 * keeping uid 0 and every other capability. Needs CAP_SETPCAP (root has it).
 */
export function withoutDacOverride(argv: string[]): string[] {
  const caps = '-dac_override,-dac_read_search';
  return ['setpriv', `--inh-caps=${caps}`, `--bounding-set=${caps}`, '--', ...argv];
}
