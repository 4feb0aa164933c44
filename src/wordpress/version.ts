import { join, resolve } from 'node:path';
import { openBeneath } from '../engine/safe-open.ts';
import { badInput } from '../errors.ts';
import { parsePhpLiterals } from './php-literal.ts';

const MAX_VERSION_BYTES = 1n << 20n;

/**
 * $wp_version from wp-includes/version.php, opened without following any link below the site:
 * the scan runs as root and a site's owner controls its files. Throws bad_input when it cannot be read.
 */
export async function readWpVersion(sitePath: string): Promise<string> {
  const file = join(resolve(sitePath), 'wp-includes', 'version.php');
  const opened = await openBeneath(resolve(sitePath), 'wp-includes/version.php');
  if (!opened.fh) throw badInput(`Cannot read ${file}: ${opened.code ?? opened.reason}`, 'Pass the WordPress root directory (the one with wp-includes)');
  let source: Buffer;
  try {
    // The site's owner controls the file: no reading gigabytes for a version string.
    if (opened.stats.size > MAX_VERSION_BYTES) throw badInput(`${file} is larger than ${MAX_VERSION_BYTES} bytes`, 'Is this a WordPress core file? Reinstall core if it was modified');
    source = await opened.fh.readFile();
  } finally {
    await opened.fh.close();
  }
  const def = parsePhpLiterals(source, file).variables.get('wp_version');
  if (!def?.ok) throw badInput(`${file}: no plain $wp_version = '...'; found`, 'Is this a WordPress core file? Reinstall core if it was modified');
  return def.text;
}
