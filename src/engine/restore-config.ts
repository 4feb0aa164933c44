import { phpString } from '../wordpress/demo-site.ts';
import { parseWpConfig } from '../wordpress/wp-config.ts';
import type { NamedDb } from './restore-db.ts';

// A site restored into a database the user named gets the archive's wp-config.php (its salts,
// table prefix and other settings) with DB_NAME, DB_USER, DB_PASSWORD and DB_HOST changed to
// that database, so the restored site uses the database it was restored into and never the
// source site's. The result is parsed again; if it does not read back as the named database
// (defines written in a way wpbackup cannot rewrite), undefined: the caller installs nothing.

/** PHP source as latin1 text, so bytes that are not UTF-8 survive the edit unchanged. */
export function pointConfigAt(source: Buffer, db: NamedDb): Buffer | undefined {
  const values: [string, string][] = [
    ['DB_NAME', db.name],
    ['DB_USER', db.user],
    ['DB_PASSWORD', db.password],
    ['DB_HOST', db.host ?? 'localhost'],
  ];
  let php = source.toString('latin1');
  for (const [name, value] of values) {
    const literal = Buffer.from(phpString(value), 'utf8').toString('latin1');
    const define = `define( '${name}', ${literal} )`;
    const re = new RegExp(`define\\s*\\(\\s*(['"])${name}\\1\\s*,\\s*(?:'(?:[^'\\\\]|\\\\.)*'|"(?:[^"\\\\]|\\\\.)*")\\s*\\)`, 'g');
    let found = 0;
    php = php.replace(re, () => {
      found++;
      return define;
    });
    if (!found) php = php.replace(/<\?php\b/, (open) => `${open}\n${define};`);
  }
  const out = Buffer.from(php, 'latin1');
  try {
    const c = parseWpConfig(out, 'wp-config.php');
    const ok = c.dbName === db.name && c.dbUser === db.user && c.dbPassword === db.password && c.dbHost.raw === (db.host ?? 'localhost');
    return ok ? out : undefined;
  } catch {
    return undefined;
  }
}
