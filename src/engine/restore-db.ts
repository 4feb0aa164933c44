import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { badInput, kindOf, WpbError } from '../errors.ts';
import { parseDbHost } from '../wordpress/wp-config.ts';
import { startChild } from './child.ts';
import { classifyDbError, findProgram, query, sqlIdent, writeDefaultsFile, type DbTarget } from './mysql.ts';

// The database side of a restore: which database (the site's own wp-config.php, or one named
// by the user, never the archive's), whether it is empty, and the import itself, through the
// client in --binary-mode (and --sandbox where the client has it), of a dump sql-guard.ts
// checked on its way out of the archive.

/** A database named on the command line, for a site that has no wp-config.php of its own. */
export interface NamedDb {
  name: string;
  user: string;
  password: string;
  /** DB_HOST syntax: host, host:port, or localhost:/path/to/socket. Default localhost. */
  host?: string;
}

export function namedDbTarget(db: NamedDb): DbTarget {
  const h = parseDbHost(db.host ?? 'localhost');
  return { name: db.name, user: db.user, password: db.password, host: h.host, port: h.port, socket: h.socket };
}

/** The WordPress sites (siteurl) whose options tables are in the database; best effort. */
async function siteUrls(defaults: string, db: DbTarget): Promise<string[]> {
  try {
    const tables = await query(defaults, db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE table_schema = DATABASE() AND TABLE_NAME LIKE '%\\_options' LIMIT 3;");
    const urls: string[] = [];
    for (const [t] of tables) {
      const rows = await query(defaults, db, `SELECT option_value FROM ${sqlIdent(t as string)} WHERE option_name = 'siteurl' LIMIT 1;`).catch(() => []);
      if (rows[0]?.[0]) urls.push(rows[0][0]);
    }
    return urls;
  } catch {
    return [];
  }
}

/**
 * Logs in as the restore will and refuses a database that already has tables (unless forced),
 * saying whose site they are. Runs before anything is downloaded.
 */
export async function checkDatabase(dir: string, db: DbTarget, o: { force?: boolean; named: boolean }): Promise<void> {
  const defaults = await writeDefaultsFile(dir, db, 'check.cnf');
  try {
    const rows = await query(defaults, db, 'SELECT COUNT(*) FROM information_schema.TABLES WHERE table_schema = DATABASE();');
    const n = Number(rows[0]?.[0] ?? 0);
    if (n === 0 || o.force) return;
    const urls = await siteUrls(defaults, db);
    const whose = urls.length ? ` of a WordPress site (siteurl ${urls.join(', ')})` : '';
    throw badInput(`Database '${db.name}' already has ${n} tables${whose}: refusing to restore over them`, 'Restore into an empty database, or pass --force to overwrite the tables the backup holds');
  } catch (err) {
    // The client's hints name wp-config.php; a named database came from options.
    if (o.named && err instanceof WpbError && kindOf(err) === 'bad_input' && !/already has/.test(err.message)) {
      throw badInput(err.message, 'Check --db-name, --db-user, --db-host and the password given with --db-password-file or --db-password-stdin', err);
    }
    throw err;
  } finally {
    await rm(defaults, { force: true });
  }
}

/** Whether each client has --sandbox, asked once per process. */
const sandboxKnown = new Map<string, boolean>();

/**
 * --binary-mode: the client runs no commands but DELIMITER; --sandbox where the client has it;
 * --local-infile=0: LOAD DATA LOCAL INFILE in the dump must not make the client (root) send
 * a local file such as /etc/shadow to the server, whatever an option file says.
 */
export async function importFlags(client: string): Promise<string[]> {
  let sandbox = sandboxKnown.get(client);
  if (sandbox === undefined) {
    const help = await promisify(execFile)(client, ['--no-defaults', '--help'], { maxBuffer: 4 << 20 }).then((r) => r.stdout, () => '');
    sandbox = /^\s*--sandbox\b/m.test(help);
    sandboxKnown.set(client, sandbox);
  }
  return sandbox ? ['--binary-mode', '--local-infile=0', '--sandbox'] : ['--binary-mode', '--local-infile=0'];
}

/**
 * Imports `dump`, which the client reads itself, as `mysql < database.sql` would. The caller
 * vouches for the file: extraction scanned exactly these bytes (sql-guard.ts, through
 * tar-guard.ts) and checked their sha256, and it sits in the private staging dir, held by
 * descriptor, which only this process can write.
 */
export async function importDb(dir: string, db: DbTarget, dump: string, signal?: AbortSignal): Promise<void> {
  const client = await findProgram('client');
  const flags = await importFlags(client);
  const defaults = await writeDefaultsFile(dir, db, 'import.cnf');
  let file: FileHandle | undefined;
  try {
    file = await open(dump, constants.O_RDONLY | constants.O_NOFOLLOW);
    const child = startChild(client, [`--defaults-extra-file=${defaults}`, '--default-character-set=utf8mb4', ...flags, `--database=${db.name}`], { signal, stdio: [file.fd, 'ignore', 'pipe'] });
    // The client has its own copy of the descriptor now.
    await file.close();
    file = undefined;
    await child.done.catch((err: unknown) => {
      throw signal?.aborted ? err : classifyDbError(child.stderrTail(), db, err);
    });
  } finally {
    await file?.close();
    await rm(defaults, { force: true });
  }
}
