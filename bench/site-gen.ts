import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, futimesSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createDemoSite } from '../src/wordpress/demo-site.ts';
import { createDatabase, createDbUser, defaultsFile, dropDatabase, dropDbUser, literal, sql } from '../test/helpers/mysql.ts';
import { services } from '../test/helpers/services.ts';
import { planManyFiles, planMillion } from './site-shapes.ts';

// A benchmark site: a real WordPress install (createDemoSite, its own database and DB user)
// grown to a given size with realistic rows (long post_content, revisions, serialized
// postmeta, comments, transients) inserted in big multi-row INSERTs, and a wp-content of
// mostly incompressible media plus theme and plugin code. Cached under BENCH_HOME keyed by
// the shape and size, so a kept site is reused by the next run. Shapes other than the default
// (bench/site-shapes.ts) plan their files differently; the rows are made the same way.

export const BENCH_HOME = process.env.WPBACKUP_BENCH_HOME ?? '/var/tmp/wpbackup-bench';
// Sizes are decimal, like the engine's formatBytes: 1 MB = 10^6 bytes.
const MB = 1_000_000;
const KB = 1000;
/** Bump when the generator changes so old cached sites are rebuilt. */
const GEN_VERSION = 1;
const PREFIX = 'wp_';

export const SHAPES = ['default', 'many-files', 'million'] as const;
export type Shape = (typeof SHAPES)[number];

export interface SiteSpec {
  shape: Shape;
  dbMb: number;
  filesMb: number;
  files: number;
}

export interface BenchSite {
  key: string;
  /** The WordPress root. */
  dir: string;
  siteUrl: string;
  dbName: string;
  dbUser: string;
  dbPassword: string;
  dbHost: string;
  dbPort: number;
  /** Bytes of row data sent as INSERT values (close to the dump size). */
  sqlBytes: number;
  rows: Record<string, number>;
  wpContentBytes: number;
  wpContentFiles: number;
  genSeconds: number;
  createdAt: string;
}

export function siteKey(s: SiteSpec): string {
  // The default shape keeps its key from before there were shapes, so its cached sites stay valid.
  const size = `db${s.dbMb}-files${s.filesMb}x${s.files}-v${GEN_VERSION}`;
  return s.shape === 'default' ? size : `${s.shape}-${size}`;
}

function stateFile(key: string): string {
  return join(BENCH_HOME, 'sites', key, 'state.json');
}

type Log = (msg: string) => void;

/** The cached site for spec, or a new one. */
export async function ensureSite(spec: SiteSpec, opts: { regen?: boolean; log: Log }): Promise<{ site: BenchSite; reused: boolean }> {
  const key = siteKey(spec);
  const file = stateFile(key);
  if (!opts.regen && existsSync(file)) {
    const site = JSON.parse(readFileSync(file, 'utf8')) as BenchSite;
    if (await stillThere(site)) return { site, reused: true };
    opts.log(`cached site ${key} is incomplete; rebuilding it`);
  }
  await removeSiteByKey(key);
  return { site: await generate(spec, key, opts.log), reused: false };
}

async function stillThere(site: BenchSite): Promise<boolean> {
  if (!existsSync(join(site.dir, 'wp-config.php'))) return false;
  try {
    const n = await sql(`SELECT COUNT(*) FROM ${PREFIX}posts`, site.dbName);
    return Number(n) > 0;
  } catch {
    return false;
  }
}

function dbNames(key: string): { db: string; user: string } {
  const h = createHash('sha256').update(key).digest('hex').slice(0, 8);
  return { db: `wpbench_${h}`, user: `wpbench_${h}` };
}

export async function removeSiteByKey(key: string): Promise<void> {
  const { db, user } = dbNames(key);
  await dropDbUser(user);
  await dropDatabase(db);
  await rm(join(BENCH_HOME, 'sites', key), { recursive: true, force: true });
}

export async function removeSite(site: BenchSite): Promise<void> {
  await removeSiteByKey(site.key);
}

// --- Deterministic randomness (layout and text); media bytes come from the CSPRNG ---

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    // mulberry32
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(a: readonly T[]): T {
    return a[Math.floor(this.next() * a.length)] as T;
  }
  /** Skewed towards the start of the list, like word frequencies. */
  zipf<T>(a: readonly T[]): T {
    const u = this.next();
    return a[Math.floor(u * u * u * a.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  hex(n: number): string {
    let s = '';
    while (s.length < n) s += Math.floor(this.next() * 0x100000000).toString(16).padStart(8, '0');
    return s.slice(0, n);
  }
}

export const WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part ' +
  'garden recipe travel camera coffee design summer winter kitchen mountain river city market festival music photo review guide tips simple best easy quick healthy family weekend holiday local fresh season light morning evening story history museum beach trail bike running yoga bread cheese wine chocolate tomato basil olive pasta salad soup dinner breakfast lunch plugin theme update release feature support customer product price order shipping cart checkout account password security backup server hosting domain email newsletter event workshop class lesson student teacher school book author chapter novel poem website blog post page comment category tag archive search menu widget sidebar footer header image gallery video audio podcast episode interview community member project team client office meeting report plan budget strategy growth marketing sales brand content social network friend neighbour village county state country world planet ocean forest flower tree bird animal dog cat horse weather rain snow sun wind cloud storm ' +
  "it's don't can't won't we're they're isn't you'll café naïve Grüße façade jalapeño São Zürich résumé crème brûlée 日本 中文 😀"
).split(' ');
const NAMES = ['Anna', 'Ben', 'Chloé', 'David', 'Emma', 'Felix', 'Greta', 'Hiro', 'Ines', 'Jonas', 'Kofi', 'Lena', 'Mateo', 'Noor', 'Olga', 'Pavel', 'Quinn', 'Rosa', 'Sven', 'Tariq', 'Uma', 'Viktor', 'Wen', 'Ximena', 'Yusuf', 'Zoë'];
const SURNAMES = ['Smith', 'Müller', "O'Brien", 'García', 'Kowalski', 'Nakamura', 'Okafor', 'Rossi', 'Dubois', 'Jensen', 'Silva', 'Novak', 'Haddad', 'Larsen', 'Nguyen'];
const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0',
];

class Text {
  private readonly rng: Rng;
  private readonly sentences: string[] = [];
  constructor(rng: Rng, pool = 120_000) {
    this.rng = rng;
    for (let i = 0; i < pool; i++) this.sentences.push(this.makeSentence());
  }
  private makeSentence(): string {
    const n = this.rng.int(6, 20);
    const w: string[] = [];
    for (let i = 0; i < n; i++) w.push(this.rng.zipf(WORDS));
    const first = w[0] ?? 'the';
    w[0] = first.charAt(0).toUpperCase() + first.slice(1);
    if (this.rng.chance(0.08)) w.splice(this.rng.int(1, n - 1), 0, `"${this.rng.pick(WORDS)}"`);
    return w.join(' ') + this.rng.pick(['.', '.', '.', '!', '?', ' \\o/.', '...']);
  }
  sentence(): string {
    return this.rng.pick(this.sentences);
  }
  sentences_(n: number): string {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.sentence());
    return out.join(' ');
  }
  words(n: number): string {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.rng.zipf(WORDS));
    return out.join(' ');
  }
  title(): string {
    return this.words(this.rng.int(3, 9)).replace(/(^|\s)(\S)/g, (_m, s: string, c: string) => s + c.toUpperCase());
  }
  /** Gutenberg block markup of about `bytes` bytes. */
  postContent(bytes: number, images: string[]): string {
    const parts: string[] = [];
    let size = 0;
    while (size < bytes) {
      const r = this.rng.next();
      let block: string;
      if (r < 0.08) block = `<!-- wp:heading -->\n<h2 class="wp-block-heading">${this.title()}</h2>\n<!-- /wp:heading -->`;
      else if (r < 0.13 && images.length) {
        const src = this.rng.pick(images);
        const id = this.rng.int(1000, 99999);
        block = `<!-- wp:image {"id":${id},"sizeSlug":"large","linkDestination":"none"} -->\n<figure class="wp-block-image size-large"><img src="${src}" alt="${this.words(4)}" class="wp-image-${id}"/><figcaption class="wp-element-caption">${this.sentence()}</figcaption></figure>\n<!-- /wp:image -->`;
      } else if (r < 0.18) {
        const items = Array.from({ length: this.rng.int(3, 7) }, () => `<li>${this.words(this.rng.int(3, 12))}</li>`).join('');
        block = `<!-- wp:list -->\n<ul class="wp-block-list">${items}</ul>\n<!-- /wp:list -->`;
      } else block = `<!-- wp:paragraph -->\n<p>${this.sentences_(this.rng.int(2, 7))}</p>\n<!-- /wp:paragraph -->`;
      parts.push(block);
      size += block.length + 2;
    }
    return parts.join('\n\n');
  }
}

/** PHP's serialize(), with byte lengths for strings as PHP counts them. */
export function phpSerialize(v: unknown): string {
  if (v === null || v === undefined) return 'N;';
  if (typeof v === 'boolean') return `b:${v ? 1 : 0};`;
  if (typeof v === 'number') return Number.isInteger(v) ? `i:${v};` : `d:${v};`;
  if (typeof v === 'string') return `s:${Buffer.byteLength(v)}:"${v}";`;
  if (Array.isArray(v)) return `a:${v.length}:{${v.map((x, i) => `i:${i};${phpSerialize(x)}`).join('')}}`;
  const e = Object.entries(v as Record<string, unknown>);
  return `a:${e.length}:{${e.map(([k, x]) => `${phpSerialize(k)}${phpSerialize(x)}`).join('')}}`;
}

function sqlDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

// --- The file plan: sizes and names first, so attachments in the DB match the files ---

export interface PlannedFile {
  rel: string; // relative to wp-content
  size: number;
  /** tiny: a few random bytes, written without generating text. */
  kind: 'media' | 'text' | 'tiny';
  mime?: string;
  mtimeMs: number;
  /** A resized copy (or a file with no attachment row): no row of its own in the database. */
  copy?: boolean;
  /** An original image: its pixels and the copies WordPress made of it (for its attachment metadata). */
  image?: { width: number; height: number; sizes: { file: string; rel: string; width: number; height: number }[] };
}

export const YEARS = [2015, 2016, 2017, 2018, 2019, 2020, 2021, 2022, 2023, 2024, 2025];
const THEMES = ['flavor-starter', 'northwind-pro', 'astra-child'];
const PLUGINS = ['woo-extra-fields', 'seo-booster', 'contact-form-plus', 'gallery-lightbox', 'cache-helper', 'events-calendar-lite', 'social-share-buttons', 'members-area'];

function planFiles(spec: SiteSpec, rng: Rng): PlannedFile[] {
  if (spec.shape === 'many-files') return planManyFiles(spec.files, spec.filesMb * MB, rng);
  if (spec.shape === 'million') return planMillion(spec.files, rng);
  const total = spec.filesMb * MB;
  const textCount = Math.max(20, Math.round(spec.files * 0.25));
  const mediaCount = Math.max(1, spec.files - textCount);
  const files: PlannedFile[] = [];
  const used = new Set<string>();
  const unique = (rel: string): string => {
    let r = rel;
    for (let i = 2; used.has(r); i++) r = rel.replace(/(\.[a-z0-9]+)$/, `-${i}$1`);
    used.add(r);
    return r;
  };
  // Theme and plugin code: 1-80 KB, most small.
  const textBytesBudget = Math.min(total * 0.05, textCount * 12 * KB);
  const textSizes = powerSizes(rng, textCount, textBytesBudget, 512, 80 * KB);
  const old = Date.UTC(2023, 0, 1);
  for (const size of textSizes) {
    const inTheme = rng.chance(0.4);
    const base = inTheme ? `themes/${rng.pick(THEMES)}` : `plugins/${rng.pick(PLUGINS)}`;
    const ext = rng.pick(['php', 'php', 'php', 'js', 'css', 'json', 'pot']);
    const dir = ext === 'php' ? rng.pick(['', 'inc', 'includes', 'template-parts', 'admin', 'src/Blocks']) : ext === 'pot' ? 'languages' : `assets/${ext === 'json' ? 'data' : ext}`;
    const name = `${ext === 'php' && dir !== '' ? 'class-' : ''}${rng.pick(WORDS.slice(100, 300))}-${rng.pick(WORDS.slice(100, 300))}.${ext}`;
    files.push({ rel: unique([base, dir, name].filter(Boolean).join('/')), size, kind: 'text', mtimeMs: old + rng.int(0, 300) * 86400_000 });
  }
  const textBytes = textSizes.reduce((s, n) => s + n, 0);
  // Media: 50 KB - 20 MB, heavily skewed to small files (thumbnails) with a tail of videos.
  const mediaSizes = powerSizes(rng, mediaCount, Math.max(mediaCount * 1024, total - textBytes), 50 * KB, 20 * MB);
  for (const size of mediaSizes) {
    const year = rng.pick(YEARS);
    const month = String(rng.int(1, 12)).padStart(2, '0');
    const slug = `${rng.pick(WORDS.slice(100, 300))}-${rng.pick(WORDS.slice(100, 300))}`.replace(/[^a-z-]/g, '');
    let name: string;
    let mime: string;
    if (size >= 8 * MB) [name, mime] = [`${slug}-${rng.int(1, 999)}.mp4`, 'video/mp4'];
    else if (size >= 2 * MB) [name, mime] = [`IMG_${rng.int(1000, 9999)}.jpg`, 'image/jpeg'];
    else if (size >= 512 * KB) [name, mime] = rng.chance(0.15) ? [`${slug}.pdf`, 'application/pdf'] : rng.chance(0.3) ? [`${slug}.png`, 'image/png'] : [`${slug}.jpg`, 'image/jpeg'];
    else {
      const [w, h] = rng.pick([[150, 150], [300, 200], [768, 512], [1024, 683], [300, 300]]) as [number, number];
      const ext = rng.pick(['jpg', 'jpg', 'png', 'webp']);
      [name, mime] = [`${slug}-${w}x${h}.${ext}`, ext === 'jpg' ? 'image/jpeg' : `image/${ext}`];
    }
    files.push({ rel: unique(`uploads/${year}/${month}/${name}`), size, kind: 'media', mime, mtimeMs: Date.UTC(year, Number(month) - 1, rng.int(1, 28)) });
  }
  return files;
}

/** n sizes in [lo, hi] summing to total: lo + (hi-lo)·u^k, k chosen for the mean, then scaled. */
export function powerSizes(rng: Rng, n: number, total: number, lo: number, hi: number): number[] {
  const mean = total / n;
  let min = lo;
  let max = hi;
  if (mean <= min * 1.05) min = Math.max(1, Math.floor(mean / 2));
  if (mean >= max) max = Math.ceil(mean * 2);
  const k = (max - min) / (mean - min) - 1;
  const extra = Array.from({ length: n }, () => (max - min) * rng.next() ** k);
  const sumExtra = extra.reduce((s, x) => s + x, 0) || 1;
  const f = (total - n * min) / sumExtra;
  return extra.map((x) => Math.max(1, Math.min(max, Math.round(min + x * f))));
}

// --- Writing the files ---

function codeText(rng: Rng, text: Text, ext: string, bytes: number): string {
  const out: string[] = [];
  let size = 0;
  const id = (): string => rng.pick(WORDS.slice(100, 300)).replace(/[^a-z]/g, '') || 'item';
  if (ext === 'php') out.push(`<?php\n/**\n * ${text.sentence()}\n *\n * @package ${id()}\n */\n\nif ( ! defined( 'ABSPATH' ) ) {\n\texit;\n}\n`);
  while (size < bytes) {
    let chunk: string;
    const a = id();
    const b = id();
    const c = id();
    if (ext === 'php') chunk = `\n/**\n * ${text.sentence()}\n *\n * @param array $${a} ${text.words(5)}.\n * @return string\n */\nfunction wpx_${a}_${b}( $${a}, $${c} = null ) {\n\tif ( empty( $${a} ) ) {\n\t\treturn wpx_get_${b}( $${c} );\n\t}\n\t$${b} = apply_filters( 'wpx_${a}_${b}', $${a}, $${c} );\n\t// ${text.sentence()}\n\treturn esc_html__( '${text.words(4).replace(/'/g, '')}', 'wpx' ) . $${b};\n}\n`;
    else if (ext === 'css') chunk = `\n.${a}-${b} .${c} {\n\tmargin: ${rng.int(0, 40)}px ${rng.int(0, 40)}px;\n\tcolor: #${rng.hex(6)};\n\tfont-size: ${rng.int(10, 32)}px;\n}\n`;
    else if (ext === 'js') chunk = `\nexport function ${a}${b.charAt(0).toUpperCase()}${b.slice(1)}(${c}) {\n  const el = document.querySelector('.${a}-${b}');\n  if (!el) return null; // ${text.sentence()}\n  el.addEventListener('click', () => ${c}.${a}(${rng.int(0, 999)}));\n  return el;\n}\n`;
    else if (ext === 'json') chunk = `${JSON.stringify({ [a]: text.words(6), [b]: rng.int(0, 1e6), [c]: [text.sentence()] })},\n`;
    else chunk = `\n#: src/${a}.php:${rng.int(1, 900)}\nmsgid "${text.sentence().replace(/"/g, '')}"\nmsgstr ""\n`;
    out.push(chunk);
    size += chunk.length;
  }
  return out.join('').slice(0, bytes);
}

const MAGIC: Record<string, Buffer> = {
  'image/jpeg': Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00]),
  'image/png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  'video/mp4': Buffer.from([0, 0, 0, 0x20, 0x66, 0x74, 0x79, 0x70, 0x69, 0x73, 0x6f, 0x6d]),
  'application/pdf': Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'latin1'),
};

/**
 * Writes the planned files with sync calls (a thread-pool round trip per call would make
 * 200,000 files take minutes), yielding to the event loop every 50 ms so the rows keep
 * flowing to MariaDB meanwhile.
 */
async function writeFiles(wpContent: string, plan: PlannedFile[], rng: Rng, text: Text, log: Log): Promise<void> {
  const buf = Buffer.allocUnsafe(4 * MB);
  const madeDirs = new Set<string>();
  let done = 0;
  let lastLog = Date.now();
  let lastYield = Date.now();
  const totalBytes = plan.reduce((s, f) => s + f.size, 0);
  for (const [i, f] of plan.entries()) {
    const abs = join(wpContent, f.rel);
    const dir = dirname(abs);
    if (!madeDirs.has(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      madeDirs.add(dir);
    }
    const fd = openSync(abs, 'w', 0o644);
    try {
      if (f.kind === 'text') writeSync(fd, codeText(rng, text, f.rel.split('.').pop() ?? 'php', f.size));
      else {
        let left = f.size;
        let first = true;
        while (left > 0) {
          const n = Math.min(left, buf.length);
          randomFillSync(buf, 0, n);
          const magic = first ? MAGIC[f.mime ?? ''] : undefined;
          if (magic && n > magic.length) magic.copy(buf);
          first = false;
          writeSync(fd, buf, 0, n);
          left -= n;
        }
      }
      const t = new Date(f.mtimeMs);
      futimesSync(fd, t, t);
    } finally {
      closeSync(fd);
    }
    done += f.size;
    if (Date.now() - lastYield > 50) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      lastYield = Date.now();
    }
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      log(`  files: ${i + 1} of ${plan.length}, ${(done / MB).toFixed(0)} of ${(totalBytes / MB).toFixed(0)} MB written`);
    }
  }
}

// --- Rows: multi-row INSERTs streamed into one mariadb client ---

class SqlSink {
  private readonly child;
  private readonly batches = new Map<string, { head: string; rows: string[]; bytes: number }>();
  private sinceCommit = 0;
  private stderr = '';
  private readonly done: Promise<number | null>;
  bytes = 0;
  readonly rows: Record<string, number> = {};

  constructor(site: { user: string; password: string; host: string; port: number; db: string }) {
    const file = defaultsFile({ user: site.user, password: site.password, host: site.host, port: site.port });
    this.child = spawn('mariadb', [`--defaults-extra-file=${file}`, '--batch', '--default-character-set=utf8mb4', `--database=${site.db}`], { stdio: ['pipe', 'ignore', 'pipe'] });
    this.child.stderr.setEncoding('utf8').on('data', (s: string) => (this.stderr = (this.stderr + s).slice(-4000)));
    this.done = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('close', resolve);
    });
    this.child.stdin.on('error', () => {}); // the exit code reports it
    this.child.stdin.write('SET autocommit=0, unique_checks=0, foreign_key_checks=0;\n');
  }

  async row(table: string, columns: string, values: string): Promise<void> {
    let b = this.batches.get(table);
    if (!b) {
      b = { head: `INSERT INTO ${PREFIX}${table} (${columns}) VALUES\n`, rows: [], bytes: 0 };
      this.batches.set(table, b);
    }
    b.rows.push(values);
    b.bytes += values.length + 2;
    this.bytes += values.length + 2;
    this.rows[table] = (this.rows[table] ?? 0) + 1;
    if (b.bytes >= 2 * MB) await this.flush(table);
  }

  private async flush(table: string): Promise<void> {
    const b = this.batches.get(table);
    if (!b || b.rows.length === 0) return;
    let stmt = b.head + b.rows.join(',\n') + ';\n';
    this.sinceCommit += b.bytes;
    b.rows = [];
    b.bytes = 0;
    if (this.sinceCommit >= 64 * MB) {
      stmt += 'COMMIT;\n';
      this.sinceCommit = 0;
    }
    if (!this.child.stdin.write(stmt)) await Promise.race([once(this.child.stdin, 'drain'), this.done]);
  }

  async end(): Promise<void> {
    for (const t of [...this.batches.keys()]) await this.flush(t);
    this.child.stdin.end('COMMIT;\n');
    const code = await this.done;
    if (code !== 0) throw new Error(`loading rows failed (mariadb exit ${code}): ${this.stderr.trim()}`);
  }
}

const POST_COLS = 'ID, post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt, post_status, comment_status, ping_status, post_password, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, post_parent, guid, menu_order, post_type, post_mime_type, comment_count';
const COMMENT_COLS = 'comment_ID, comment_post_ID, comment_author, comment_author_email, comment_author_url, comment_author_IP, comment_date, comment_date_gmt, comment_content, comment_karma, comment_approved, comment_agent, comment_type, comment_parent, user_id';

interface PostRow {
  id: number;
  author: number;
  date: number;
  content: string;
  title: string;
  excerpt?: string;
  status: string;
  name: string;
  parent?: number;
  guid: string;
  type: string;
  mime?: string;
  comments?: number;
}

function postValues(p: PostRow): string {
  const d = sqlDate(p.date);
  const m = sqlDate(p.date + 86400_000);
  return `(${p.id},${p.author},'${d}','${d}',${literal(p.content)},${literal(p.title)},${literal(p.excerpt ?? '')},'${p.status}','open','open','',${literal(p.name)},'','','${m}','${m}','',${p.parent ?? 0},${literal(p.guid)},0,'${p.type}','${p.mime ?? ''}',${p.comments ?? 0})`;
}

async function meta(sink: SqlSink, postId: number, key: string, value: string): Promise<void> {
  await sink.row('postmeta', 'post_id, meta_key, meta_value', `(${postId},${literal(key)},${literal(value)})`);
}

async function writeRows(sink: SqlSink, spec: SiteSpec, plan: PlannedFile[], siteUrl: string, rng: Rng, text: Text, log: Log): Promise<void> {
  const target = spec.dbMb * MB;
  const start = Date.UTC(2015, 0, 1);
  const span = Date.UTC(2025, 6, 1) - start;
  const when = (): number => start + Math.floor(rng.next() * span);
  const users: number[] = [];
  // Users and their meta.
  for (let i = 0; i < 40; i++) {
    const id = 100 + i;
    users.push(id);
    const first = rng.pick(NAMES);
    const last = rng.pick(SURNAMES);
    const login = `${first}${last}${i}`.toLowerCase().replace(/[^a-z0-9]/g, '');
    await sink.row('users', 'ID, user_login, user_pass, user_nicename, user_email, user_url, user_registered, user_activation_key, user_status, display_name', `(${id},${literal(login)},${literal(`$P$B${rng.hex(30)}`)},${literal(login)},${literal(`${login}@example.com`)},'',${literal(sqlDate(when()))},'',0,${literal(`${first} ${last}`)})`);
    const um: [string, string][] = [
      ['nickname', login], ['first_name', first], ['last_name', last], ['description', text.sentences_(2)],
      [`${PREFIX}capabilities`, phpSerialize({ [rng.pick(['author', 'editor', 'subscriber', 'contributor'])]: true })],
      [`${PREFIX}user_level`, String(rng.int(0, 7))], ['session_tokens', phpSerialize({ [rng.hex(64)]: { expiration: 1760000000 + rng.int(0, 1e6), ip: `203.0.113.${rng.int(1, 254)}`, ua: rng.pick(AGENTS), login: 1750000000 } })],
    ];
    for (const [k, v] of um) await sink.row('usermeta', 'user_id, meta_key, meta_value', `(${id},${literal(k)},${literal(v)})`);
  }
  // Terms.
  const termTaxIds: number[] = [];
  for (let i = 0; i < 80; i++) {
    const id = 100 + i;
    const name = text.title().slice(0, 40);
    const slug = `${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}-${id}`;
    await sink.row('terms', 'term_id, name, slug, term_group', `(${id},${literal(name)},${literal(slug)},0)`);
    await sink.row('term_taxonomy', 'term_taxonomy_id, term_id, taxonomy, description, parent, count', `(${id},${id},'${i < 25 ? 'category' : 'post_tag'}',${literal(rng.chance(0.3) ? text.sentence() : '')},0,0)`);
    termTaxIds.push(id);
  }
  // Options: transients with cached feeds, widget and plugin settings (about 3% of the rows).
  const optionBudget = sink.bytes + target * 0.03;
  for (let i = 0; sink.bytes < optionBudget; i++) {
    let name: string;
    let value: string;
    if (i % 3 === 0) {
      name = `_transient_feed_${rng.hex(32)}`;
      const items = Array.from({ length: rng.int(5, 25) }, () => ({ title: text.title(), link: `https://news.example.org/${rng.hex(8)}`, description: text.sentences_(rng.int(3, 12)), pubDate: sqlDate(when()), guid: rng.hex(16) }));
      value = phpSerialize({ child: { '': { rss: [{ data: '', attribs: { '': { version: '2.0' } }, child: { '': { channel: [{ child: { '': { item: items } } }] } } }] } } });
    } else if (i % 3 === 1) {
      name = `_transient_timeout_feed_${rng.hex(32)}`;
      value = String(1760000000 + rng.int(0, 1e6));
    } else {
      name = `${rng.pick(PLUGINS).replace(/-/g, '_')}_settings_${i}`;
      value = phpSerialize({ enabled: rng.chance(0.5), mode: rng.pick(['auto', 'manual']), labels: Array.from({ length: rng.int(3, 30) }, () => text.words(rng.int(2, 6))), limits: { max: rng.int(1, 1000), ratio: rng.int(1, 99) / 7 }, notice: text.sentence() });
    }
    await sink.row('options', 'option_name, option_value, autoload', `(${literal(name)},${literal(value)},'${i % 3 === 2 ? 'yes' : 'no'}')`);
  }
  // Attachments for the media files.
  let nextId = 1000;
  const imageUrls: string[] = [];
  const attachmentIds: number[] = [];
  const sizeOf = new Map(plan.filter((f) => f.copy).map((f) => [f.rel, f.size]));
  for (const f of plan) {
    if (f.kind !== 'media' || f.copy) continue;
    const id = nextId++;
    const file = f.rel.slice('uploads/'.length);
    const url = `${siteUrl}/wp-content/${f.rel}`;
    if (f.mime?.startsWith('image/')) imageUrls.push(url);
    attachmentIds.push(id);
    const title = (f.rel.split('/').pop() ?? 'file').replace(/\.[a-z0-9]+$/, '');
    await sink.row('posts', POST_COLS, postValues({ id, author: rng.pick(users), date: f.mtimeMs, content: '', title, excerpt: rng.chance(0.3) ? text.sentence() : '', status: 'inherit', name: `${title}-${id}`.toLowerCase(), guid: url, type: 'attachment', mime: f.mime }));
    await meta(sink, id, '_wp_attached_file', file);
    const base = file.replace(/\.[a-z0-9]+$/, '');
    const md = f.image
      ? {
          width: f.image.width, height: f.image.height, file, filesize: f.size,
          sizes: Object.fromEntries(f.image.sizes.map((c) => [`${c.width}x${c.height}`, { file: c.file, width: c.width, height: c.height, 'mime-type': f.mime, filesize: sizeOf.get(c.rel) ?? 0 }])),
        }
      : f.mime?.startsWith('image/')
      ? {
          width: rng.int(800, 6000), height: rng.int(600, 4000), file, filesize: f.size,
          sizes: Object.fromEntries(['thumbnail', 'medium', 'medium_large', 'large', '1536x1536'].map((s, j) => [s, { file: `${base.split('/').pop()}-${150 * (j + 1)}x${100 * (j + 1)}.jpg`, width: 150 * (j + 1), height: 100 * (j + 1), 'mime-type': f.mime, filesize: rng.int(5000, 400000) }])),
          image_meta: { aperture: '2.8', credit: '', camera: rng.pick(['Canon EOS R6', 'iPhone 15 Pro', 'NIKON Z 6_2', '']), caption: '', created_timestamp: String(Math.floor(f.mtimeMs / 1000)), copyright: '', focal_length: String(rng.int(18, 200)), iso: String(rng.pick([100, 200, 400, 800])), shutter_speed: '0.004', title: '', orientation: '1', keywords: [] },
        }
      : { filesize: f.size, mime_type: f.mime, length: rng.int(5, 600), length_formatted: `${rng.int(0, 9)}:${String(rng.int(0, 59)).padStart(2, '0')}`, width: 1920, height: 1080, fileformat: 'mp4', dataformat: 'quicktime', audio: { dataformat: 'mp4', codec: 'ISO/IEC 14496-3 AAC', sample_rate: 48000, channels: 2, bits_per_sample: 16, lossless: false, channelmode: 'stereo' } };
    await meta(sink, id, '_wp_attachment_metadata', phpSerialize(md));
    if (rng.chance(0.4)) await meta(sink, id, '_wp_attachment_image_alt', text.words(rng.int(2, 8)));
  }
  // Posts with revisions, meta and comments, until the target is reached.
  let commentId = 1000;
  let lastLog = Date.now();
  while (sink.bytes < target) {
    const id = nextId++;
    const author = rng.pick(users);
    const date = when();
    const title = text.title();
    const slug = `${title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}-${id}`;
    const content = text.postContent(Math.round(1500 + 30000 * rng.next() ** 2.2), imageUrls);
    const nComments = rng.chance(0.4) ? 0 : rng.int(1, 14);
    const isPage = rng.chance(0.08);
    await sink.row('posts', POST_COLS, postValues({ id, author, date, content, title, excerpt: rng.chance(0.3) ? text.sentences_(2) : '', status: rng.chance(0.93) ? 'publish' : 'draft', name: slug, guid: `${siteUrl}/?p=${id}`, type: isPage ? 'page' : 'post', comments: nComments }));
    // Revisions: earlier versions of the same content, as WordPress keeps them.
    const revisions = rng.chance(0.5) ? 0 : rng.int(1, 3);
    for (let r = 1; r <= revisions; r++) {
      const rid = nextId++;
      const cut = Math.floor(content.length * (0.6 + 0.4 * rng.next()));
      await sink.row('posts', POST_COLS, postValues({ id: rid, author, date: date - r * 3600_000, content: content.slice(0, cut), title, status: 'inherit', name: `${id}-revision-v${r}`, parent: id, guid: `${siteUrl}/?p=${rid}`, type: 'revision' }));
    }
    await meta(sink, id, '_edit_lock', `${Math.floor(date / 1000)}:${author}`);
    await meta(sink, id, '_edit_last', String(author));
    if (attachmentIds.length && rng.chance(0.7)) await meta(sink, id, '_thumbnail_id', String(rng.pick(attachmentIds)));
    if (rng.chance(0.6)) {
      await meta(sink, id, '_yoast_wpseo_metadesc', text.sentences_(2));
      await meta(sink, id, '_yoast_wpseo_focuskw', text.words(2));
    }
    if (isPage) await meta(sink, id, '_wp_page_template', rng.pick(['default', 'templates/full-width.php', 'page-landing.php']));
    if (rng.chance(0.25)) {
      await meta(sink, id, '_product_attributes', phpSerialize(Object.fromEntries(Array.from({ length: rng.int(1, 6) }, (_, j) => [`pa_${rng.pick(WORDS.slice(100, 300))}${j}`, { name: `pa_${j}`, value: text.words(rng.int(1, 5)), position: j, is_visible: 1, is_variation: rng.int(0, 1), is_taxonomy: 1 }]))));
    }
    if (rng.chance(0.1)) {
      // A page builder's layout: JSON in postmeta, often larger than the post itself.
      const widgets = Array.from({ length: rng.int(10, 60) }, () => ({ id: rng.hex(7), elType: 'widget', settings: { title: text.title(), editor: `<p>${text.sentences_(rng.int(1, 5))}</p>`, align: rng.pick(['left', 'center']), typography_font_size: { unit: 'px', size: rng.int(12, 40) } }, elements: [], widgetType: rng.pick(['heading', 'text-editor', 'image', 'button']) }));
      await meta(sink, id, '_elementor_data', JSON.stringify([{ id: rng.hex(7), elType: 'section', settings: {}, elements: [{ id: rng.hex(7), elType: 'column', settings: { _column_size: 100 }, elements: widgets }] }]));
      await meta(sink, id, '_elementor_page_settings', phpSerialize({ hide_title: 'yes', background_color: `#${rng.hex(6)}` }));
    }
    const terms = new Set<number>();
    for (let t = rng.int(1, 4); t > 0; t--) terms.add(rng.pick(termTaxIds));
    for (const t of terms) await sink.row('term_relationships', 'object_id, term_taxonomy_id, term_order', `(${id},${t},0)`);
    for (let c = 0; c < nComments; c++) {
      const cid = commentId++;
      const first = rng.pick(NAMES);
      const cd = sqlDate(date + rng.int(1, 200) * 3600_000);
      const spam = rng.chance(0.15);
      await sink.row('comments', COMMENT_COLS, `(${cid},${id},${literal(`${first} ${rng.pick(SURNAMES)}`)},${literal(`${first.toLowerCase()}${rng.int(1, 999)}@example.net`)},${literal(rng.chance(0.3) ? `https://${rng.pick(WORDS.slice(100, 300))}.example.com` : '')},'198.51.100.${rng.int(1, 254)}','${cd}','${cd}',${literal(text.sentences_(rng.int(1, 6)))},0,'${spam ? 'spam' : '1'}',${literal(rng.pick(AGENTS))},'comment',0,0)`);
      if (spam || rng.chance(0.2)) {
        await sink.row('commentmeta', 'comment_id, meta_key, meta_value', `(${cid},'akismet_history',${literal(phpSerialize({ time: 1700000000 + rng.int(0, 1e7), event: spam ? 'check-spam' : 'check-ham', user: '' }))})`);
      }
    }
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      log(`  rows: ${(sink.bytes / MB).toFixed(0)} of ${spec.dbMb} MB inserted`);
    }
  }
}

/** Bytes and regular files under dir (sync calls: a million files would take long one await at a time). */
function tree(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const t = tree(p);
      bytes += t.bytes;
      files += t.files;
    } else if (e.isFile()) {
      bytes += lstatSync(p).size;
      files++;
    }
  }
  return { bytes, files };
}

async function generate(spec: SiteSpec, key: string, log: Log): Promise<BenchSite> {
  const started = performance.now();
  const home = join(BENCH_HOME, 'sites', key);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const dir = join(home, 'site');
  const { db, user } = dbNames(key);
  const password = `${randomBytes(12).toString('base64url')}'"\\x`;
  const { host, port } = services().mysql;
  const siteUrl = `http://bench-${key}.wpbackup.test`;
  log(`generating site ${key} (${spec.shape} shape): database ${db}, ~${spec.dbMb} MB of rows, ${spec.files} files of ${spec.filesMb} MB in wp-content`);
  await createDatabase(db);
  await createDbUser(user, password, db);
  await createDemoSite({ dir, db: { host, port, name: db, user, password }, siteUrl, title: `wpbackup bench ${key}`, posts: 5, media: 2 });
  const seed = createHash('sha256').update(key).digest().readUInt32LE(0);
  const plan = planFiles(spec, new Rng(seed));
  const textRng = new Rng(seed ^ 0x5bd1e995);
  const text = new Text(textRng);
  const sink = new SqlSink({ user, password, host, port, db });
  // The rows go to MariaDB while the files are written: different resources.
  const rowsDone = writeRows(sink, spec, plan, siteUrl, new Rng(seed ^ 0x1234567), text, log).then(() => sink.end());
  const filesDone = writeFiles(join(dir, 'wp-content'), plan, new Rng(seed ^ 0x7654321), new Text(new Rng(seed ^ 0xabcdef), 5000), log);
  await Promise.all([rowsDone, filesDone]);
  log('  flushing to disk');
  await new Promise<void>((resolve) => spawn('sync', { stdio: 'ignore' }).once('close', () => resolve()));
  await sql(`ANALYZE TABLE ${PREFIX}posts, ${PREFIX}postmeta, ${PREFIX}comments, ${PREFIX}options`, db);
  const t = tree(join(dir, 'wp-content'));
  const site: BenchSite = {
    key, dir, siteUrl, dbName: db, dbUser: user, dbPassword: password, dbHost: host, dbPort: port,
    sqlBytes: sink.bytes, rows: sink.rows, wpContentBytes: t.bytes, wpContentFiles: t.files,
    genSeconds: (performance.now() - started) / 1000, createdAt: new Date().toISOString(),
  };
  await writeFile(stateFile(key), JSON.stringify(site, null, 2) + '\n', { mode: 0o600 });
  log(`  site ready in ${site.genSeconds.toFixed(0)} s: ${(site.sqlBytes / MB).toFixed(0)} MB of rows, wp-content ${t.files} files ${(t.bytes / MB).toFixed(0)} MB`);
  return site;
}
