import { powerSizes, WORDS, YEARS, type PlannedFile, type Rng } from './site-gen.ts';

// The file plans of the site shapes other than the default (a few thousand mostly large media
// files): sites shaped by the cost per file, as real WordPress sites are.
//   many-files  uploads as WordPress makes them: every original with the 5-10 resized copies
//               its registered image sizes give (name-150x150.jpg, name-300x200.jpg, ...), sizes
//               roughly proportional to the pixel count; plus plugins and themes with tens of
//               thousands of small PHP/JS/CSS files
//   million     1,000,000 tiny files (0-200 bytes), for peak RSS against the number of files

const KB = 1000;

/** WordPress core's, WooCommerce's and a theme's registered sizes: [max width, max height, crop]. */
const IMAGE_SIZES: readonly [number, number, boolean][] = [
  [150, 150, true], // thumbnail
  [300, 300, false], // medium
  [768, 0, false], // medium_large
  [1024, 1024, false], // large
  [1536, 1536, false], // 1536x1536
  [2048, 2048, false], // 2048x2048
  [100, 100, true], // woocommerce_gallery_thumbnail
  [300, 300, true], // woocommerce_thumbnail
  [600, 0, false], // woocommerce_single
  [1200, 675, true], // the theme's post-thumbnail
];
const ORIGINAL_WIDTHS = [1200, 1200, 1280, 1600, 1600, 1920, 1920, 2048, 2560];
const ASPECTS = [3 / 2, 3 / 2, 4 / 3, 16 / 9, 2 / 3, 1];
/** A JPEG's fixed part (markers, quantisation and Huffman tables, some EXIF): bytes every file has. */
const IMAGE_HEADER = 2000;
/** Originals are kept at a higher quality than the copies WordPress re-encodes. */
const ORIGINAL_WEIGHT = 2;

const MANY_PLUGINS = [
  'woocommerce', 'wordpress-seo', 'elementor', 'elementor-pro', 'contact-form-7', 'akismet', 'jetpack', 'wordfence', 'wp-rocket',
  'advanced-custom-fields-pro', 'wpforms-lite', 'updraftplus', 'redirection', 'wp-mail-smtp', 'mailchimp-for-wp', 'really-simple-ssl',
  'woocommerce-payments', 'woocommerce-gateway-stripe', 'classic-editor', 'duplicate-post', 'tablepress', 'the-events-calendar',
  'wpml-multilingual-cms', 'gravityforms', 'query-monitor', 'litespeed-cache', 'smush', 'google-site-kit', 'polylang', 'mailpoet',
];
const MANY_THEMES = ['astra', 'astra-child', 'generatepress', 'twentytwentyfour', 'storefront'];
const CODE_DIRS = ['includes', 'includes/admin', 'includes/blocks', 'src/Internal', 'src/Admin/Settings', 'vendor/composer', 'vendor/symfony/polyfill', 'assets/js', 'assets/css', 'assets/js/frontend', 'languages', 'templates', 'templates/emails', 'packages/blocks/build'];

function slug(rng: Rng): string {
  return `${rng.pick(WORDS.slice(100, 300))}-${rng.pick(WORDS.slice(100, 300))}`.replace(/[^a-z-]/g, '');
}

function uploadDir(rng: Rng): { dir: string; mtimeMs: number } {
  const year = rng.pick(YEARS);
  const month = rng.int(1, 12);
  return { dir: `uploads/${year}/${String(month).padStart(2, '0')}`, mtimeMs: Date.UTC(year, month - 1, rng.int(1, 28)) };
}

/** The copies WordPress makes of a w x h original: every size smaller than it, as it scales them. */
function copies(w: number, h: number): [number, number][] {
  const out = new Map<string, [number, number]>();
  for (const [mw, mh, crop] of IMAGE_SIZES) {
    let size: [number, number] | undefined;
    if (crop) {
      if (w >= mw && h >= mh && (w > mw || h > mh)) size = [mw, mh];
    } else {
      const s = Math.min(mw / w, mh ? mh / h : Infinity);
      if (s < 1) size = [Math.round(w * s), Math.round(h * s)];
    }
    if (size) out.set(`${size[0]}x${size[1]}`, size);
  }
  return [...out.values()];
}

/** Theme and plugin code: `count` files of 200 B - 60 KB, most of them small. */
function planCode(rng: Rng, count: number, budget: number): PlannedFile[] {
  const sizes = powerSizes(rng, count, budget, 200, 60 * KB);
  const old = Date.UTC(2024, 0, 1);
  const files: PlannedFile[] = [];
  for (const [i, size] of sizes.entries()) {
    const base = rng.chance(0.1) ? `themes/${rng.pick(MANY_THEMES)}` : `plugins/${rng.pick(MANY_PLUGINS)}`;
    const dir = rng.pick(CODE_DIRS);
    const ext = dir.startsWith('assets/js') || dir.startsWith('packages') ? 'js' : dir === 'assets/css' ? 'css' : dir === 'languages' ? 'pot' : rng.chance(0.9) ? 'php' : 'json';
    files.push({ rel: `${base}/${dir}/${ext === 'php' ? 'class-' : ''}${slug(rng)}-${i.toString(36)}.${ext}`, size, kind: 'text', mtimeMs: old + rng.int(0, 600) * 86400_000 });
  }
  return files;
}

/** The many-files shape: 15% code, the rest uploads in groups of an original and its copies. */
export function planManyFiles(files: number, totalBytes: number, rng: Rng): PlannedFile[] {
  const codeCount = Math.max(20, Math.round(files * 0.15));
  const code = planCode(rng, codeCount, Math.min(totalBytes * 0.2, codeCount * 4 * KB));
  const codeBytes = code.reduce((s, f) => s + f.size, 0);
  const media: (PlannedFile & { weight: number })[] = [];
  const used = new Set<string>();
  while (media.length < files - codeCount) {
    const w = rng.pick(ORIGINAL_WIDTHS);
    const h = Math.round(w / rng.pick(ASPECTS));
    const { dir, mtimeMs } = uploadDir(rng);
    let base = `${dir}/${slug(rng)}`;
    for (let n = 2; used.has(base); n++) base = `${dir}/${slug(rng)}-${n}`;
    used.add(base);
    const ext = rng.chance(0.85) ? 'jpg' : rng.chance(0.6) ? 'png' : 'webp';
    const mime = ext === 'jpg' ? 'image/jpeg' : `image/${ext}`;
    const sizes = copies(w, h).map(([cw, ch]) => ({ file: `${base}-${cw}x${ch}.${ext}`, width: cw, height: ch }));
    media.push({ rel: `${base}.${ext}`, size: 0, kind: 'media', mime, mtimeMs, weight: w * h * ORIGINAL_WEIGHT, image: { width: w, height: h, sizes: [] } });
    const original = media[media.length - 1] as PlannedFile & { weight: number };
    for (const c of sizes) {
      media.push({ rel: c.file, size: 0, kind: 'media', mime, mtimeMs, weight: c.width * c.height, copy: true });
      original.image?.sizes.push({ file: c.file.split('/').pop() as string, rel: c.file, width: c.width, height: c.height });
    }
  }
  // Bytes roughly proportional to pixels, scaled to the budget, with some spread.
  const budget = Math.max(media.length * IMAGE_HEADER * 2, totalBytes - codeBytes);
  const totalWeight = media.reduce((s, f) => s + f.weight, 0);
  const perWeight = (budget - media.length * IMAGE_HEADER) / totalWeight;
  for (const f of media) f.size = Math.round(IMAGE_HEADER + f.weight * perWeight * (0.75 + 0.5 * rng.next()));
  return [...code, ...media.map(({ weight: _w, ...f }) => f)];
}

/** The million shape: tiny files (0-200 bytes), 60% of them named like uploads, the rest code. */
export function planMillion(files: number, rng: Rng): PlannedFile[] {
  const out: PlannedFile[] = [];
  const old = Date.UTC(2024, 0, 1);
  for (let i = 0; i < files; i++) {
    const size = rng.int(0, 200);
    if (rng.chance(0.6)) {
      const { dir, mtimeMs } = uploadDir(rng);
      out.push({ rel: `${dir}/${slug(rng)}-${i.toString(36)}-150x150.jpg`, size, kind: 'tiny', mtimeMs, copy: true });
    } else {
      // About 500 files a directory, as in a big vendor tree.
      const d = Math.floor(i / 1200);
      out.push({ rel: `plugins/${MANY_PLUGINS[d % MANY_PLUGINS.length]}/vendor/pkg-${d}/src/${slug(rng)}-${i.toString(36)}.php`, size, kind: 'tiny', mtimeMs: old + rng.int(0, 600) * 86400_000 });
    }
  }
  return out;
}
