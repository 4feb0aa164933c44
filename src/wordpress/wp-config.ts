// Finds and reads a site's wp-config.php without running PHP: the database settings and the
// table prefix, checked the way WordPress checks them, with errors that name the line to fix.

import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { badInput } from '../errors.ts';
import { parsePhpLiterals, type PhpDefinition, type PhpLiterals } from './php-literal.ts';

export interface DbHost {
  /** Undefined when DB_HOST names no host (e.g. ':/tmp/mysql.sock'): the client default, localhost. */
  host?: string;
  port?: number;
  socket?: string;
  /** DB_HOST as written. */
  raw: string;
}

export interface WpConfig {
  /** The wp-config.php that was read (it may be in the site's parent directory). */
  file: string;
  dbName: string;
  dbUser: string;
  dbPassword: string;
  dbHost: DbHost;
  /** DB_CHARSET, or 'utf8' when the file does not set it. */
  charset: string;
  /** DB_COLLATE, or '' (the server's default for the charset). */
  collate: string;
  /** $table_prefix, or 'wp_' when the file does not set it. */
  tablePrefix: string;
}

const SITE_HINT = 'Pass the directory that holds wp-config.php or wp-settings.php';
const LITERAL_HINT = 'wpbackup reads wp-config.php without running it, so the value must be a plain quoted string there';

/** Which wp-config.php WordPress in sitePath loads: its own, else the parent's (see wp-load.php). */
export async function findWpConfig(sitePath: string): Promise<string> {
  const dir = resolve(sitePath);
  const st = await statOrUndefined(dir);
  if (!st) throw badInput(`${dir} does not exist`, SITE_HINT);
  if (!st.isDirectory()) throw badInput(`${dir} is not a directory`, SITE_HINT);
  const own = join(dir, 'wp-config.php');
  if (await statOrUndefined(own)) return own;
  const parent = dirname(dir);
  const up = join(parent, 'wp-config.php');
  // WordPress skips the parent's wp-config.php when the parent is itself a WordPress install.
  if (parent !== dir && (await statOrUndefined(up))) {
    if (!(await statOrUndefined(join(parent, 'wp-settings.php')))) return up;
    throw badInput(`No wp-config.php in ${dir}; ${up} belongs to the WordPress install in ${parent}, which has its own wp-settings.php`, SITE_HINT);
  }
  throw badInput(`No wp-config.php in ${dir} or in ${parent}`, SITE_HINT);
}

/** Missing (like PHP's file_exists) is undefined; any other failure, e.g. permissions, is an error. */
async function statOrUndefined(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw badInput(`Cannot check ${path}: ${code ?? String(err)}`, 'Run wpbackup as a user that can read the site, e.g. its owner or root', err);
  }
}

/** The settings in a wp-config.php's source; `file` is only used in messages and the result. */
export function parseWpConfig(source: string | Uint8Array, file: string): WpConfig {
  const php = parsePhpLiterals(source, file);
  const dbName = required(php, file, 'DB_NAME');
  return {
    file,
    dbName,
    // WordPress itself falls back to '' for unset DB_USER / DB_PASSWORD / DB_HOST.
    dbUser: optional(php, file, 'DB_USER', ''),
    dbPassword: optional(php, file, 'DB_PASSWORD', ''),
    dbHost: parseDbHost(optional(php, file, 'DB_HOST', '')),
    charset: optional(php, file, 'DB_CHARSET', 'utf8'),
    collate: optional(php, file, 'DB_COLLATE', ''),
    tablePrefix: tablePrefix(php, file),
  };
}

function required(php: PhpLiterals, file: string, name: string): string {
  const def = php.constants.get(name);
  if (!def) throw badInput(`${file}: ${name} is not defined`, missingHint(php, name));
  const value = literalText(def, file, `${name} is set with`);
  if (!value) throw badInput(`${file}:${def.line}: ${name} is empty`, `Set ${name} to your database's name`);
  return value;
}

function optional(php: PhpLiterals, file: string, name: string, fallback: string): string {
  const def = php.constants.get(name);
  return def ? literalText(def, file, `${name} is set with`) : fallback;
}

function literalText(def: PhpDefinition, file: string, what: string): string {
  if (def.ok) return def.text;
  throw badInput(`${file}:${def.line}: ${what} ${def.reason}, which wpbackup cannot evaluate`, LITERAL_HINT);
}

/** When a setting is missing, say if an include might be where it comes from. */
function missingHint(php: PhpLiterals, name: string): string {
  const inc = php.includes.find((i) => !/wp-settings\.php'\)?$/.test(i.text));
  if (inc) return `It may come from the file included on line ${inc.line} (${inc.text}); wpbackup only reads define() calls with plain values in wp-config.php itself`;
  return `Add define( '${name}', '...' ); to wp-config.php, or ${SITE_HINT.toLowerCase()}`;
}

function tablePrefix(php: PhpLiterals, file: string): string {
  const def = php.variables.get('table_prefix');
  if (!def) return 'wp_';
  const prefix = literalText(def, file, '$table_prefix is set with');
  // The same check as wpdb::set_prefix(); WordPress refuses to start otherwise.
  if (/[^A-Za-z0-9_]/.test(prefix)) {
    throw badInput(`${file}:${def.line}: $table_prefix ${JSON.stringify(prefix)} has characters WordPress does not allow`, 'A table prefix may contain only letters, digits and underscores');
  }
  return prefix;
}

/**
 * Splits DB_HOST exactly like wpdb::parse_db_host(): a socket after ':/', then either an IPv6
 * address (two or more colons, optionally [bracketed]:port) or host[:port].
 */
export function parseDbHost(raw: string): DbHost {
  let rest = raw;
  let socket: string | undefined;
  const socketAt = rest.indexOf(':/');
  if (socketAt >= 0) {
    socket = rest.slice(socketAt + 1);
    rest = rest.slice(0, socketAt);
  }
  const ipv6 = (rest.match(/:/g) ?? []).length > 1;
  const m = ipv6 ? /^\[?(?<host>[0-9a-fA-F:]+)(?:\]:(?<port>\d+))?/.exec(rest) : /^(?<host>[^:/]*)(?::(?<port>\d+))?/.exec(rest);
  if (!m) return { raw, host: raw }; // WordPress then hands DB_HOST to mysqli unchanged
  const out: DbHost = { raw };
  if (m.groups?.host && m.groups.host !== '0') out.host = m.groups.host;
  // PHP's empty() treats '0' as unset; absint() keeps the rest.
  const port = Number(m.groups?.port ?? 0);
  if (port) out.port = port;
  if (socket) out.socket = socket;
  return out;
}
