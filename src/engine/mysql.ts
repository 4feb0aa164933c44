import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput, failure, WpbError } from '../errors.ts';
import { startChild, which } from './child.ts';

// Talking to MariaDB/MySQL through its own client programs. Credentials go in a 0600
// option file passed with --defaults-extra-file, never on the command line.

export interface DbTarget {
  name: string;
  user: string;
  password: string;
  host?: string;
  port?: number;
  socket?: string;
}

/** Quotes a value for a MySQL option file: inside double quotes, \\ and \" are escapes. */
export function optionValue(v: string): string {
  const escaped = v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
  return `"${escaped}"`;
}

export async function writeDefaultsFile(dir: string, db: DbTarget, fileName = 'client.cnf'): Promise<string> {
  const lines = ['[client]', `user=${optionValue(db.user)}`, `password=${optionValue(db.password)}`];
  if (db.socket) lines.push(`socket=${optionValue(db.socket)}`);
  if (db.host) lines.push(`host=${optionValue(db.host)}`);
  if (db.port) lines.push(`port=${db.port}`);
  // 'localhost' with a port means TCP to the user, but the client would use the socket.
  if (db.host && db.port && !db.socket) lines.push('protocol=TCP');
  const file = join(dir, fileName);
  await writeFile(file, lines.join('\n') + '\n', { mode: 0o600 });
  return file;
}

export async function findProgram(kind: 'dump' | 'client'): Promise<string> {
  const names = kind === 'dump' ? ['mariadb-dump', 'mysqldump'] : ['mariadb', 'mysql'];
  const found = await which(names);
  if (!found) throw badInput(`Neither ${names.join(' nor ')} is installed`, `Install the MariaDB/MySQL client (apt-get install mariadb-client)`);
  return found;
}

/** Escapes a name for use inside backquotes in SQL. */
export function sqlIdent(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** Escapes a string literal for SQL (the client is in default sql_mode, so backslashes escape). */
export function sqlString(s: string): string {
  return "'" + s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\0/g, '\\0') + "'";
}

/** Turns a client's stderr into an error a user can act on. */
export function classifyDbError(stderr: string, db: DbTarget, cause?: unknown): WpbError {
  const where = db.socket ? `socket ${db.socket}` : `${db.host ?? 'localhost'}${db.port ? `:${db.port}` : ''}`;
  if (/Access denied for user/i.test(stderr)) {
    return badInput(`The database server at ${where} refused user '${db.user}' for database '${db.name}'`, 'Check DB_USER and DB_PASSWORD in wp-config.php', cause);
  }
  if (/Unknown database/i.test(stderr)) {
    return badInput(`Database '${db.name}' does not exist on ${where}`, 'Check DB_NAME in wp-config.php, or create the database', cause);
  }
  if (/Can't connect|Unknown (MySQL|MariaDB) server host|Lost connection|Connection refused/i.test(stderr)) {
    return badInput(`Cannot connect to the database server at ${where}`, 'Is MariaDB/MySQL running? Check DB_HOST in wp-config.php', cause);
  }
  const line = stderr.trim().split('\n').slice(-2).join(' ');
  return failure(`Database error on ${where}: ${line || 'unknown error'}`, cause);
}

/**
 * Runs SQL through the client with the statement on stdin (no SQL on argv either) and
 * returns the tab-separated rows.
 */
export function query(defaultsFile: string, db: DbTarget, sql: string, signal?: AbortSignal): Promise<string[][]> {
  return queryAs({ defaultsFile }, db, sql, signal);
}

/**
 * How one job's client programs run: as whom, and how they reach the defaults file. Running
 * as a site's owner they cannot open root's 0600 file by its path, so it is owned by them,
 * sits in root's 0700 run dir (no path leads to it for anyone else) and is handed over as
 * an inherited descriptor, named /dev/fd/3.
 */
export interface ClientRun {
  defaultsFile: string;
  as?: { uid: number; gid: number; env: NodeJS.ProcessEnv; defaultsFd: number };
}

/** The defaults option and the spawn options for a client program run as `run` says. */
export function clientSpawn(run: ClientRun, stdio: ('pipe' | 'ignore')[]): { defaultsArg: string; spawn: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv; stdio: ('pipe' | 'ignore' | number)[] } } {
  if (!run.as) return { defaultsArg: `--defaults-extra-file=${run.defaultsFile}`, spawn: { stdio } };
  const { uid, gid, env, defaultsFd } = run.as;
  return { defaultsArg: '--defaults-extra-file=/dev/fd/3', spawn: { uid, gid, env, stdio: [...stdio, defaultsFd] } };
}

/** query(), run as `run` says. */
export async function queryAs(run: ClientRun, db: DbTarget, sql: string, signal?: AbortSignal): Promise<string[][]> {
  const client = await findProgram('client');
  const { defaultsArg, spawn } = clientSpawn(run, ['pipe', 'pipe', 'pipe']);
  const child = startChild(client, [defaultsArg, '--batch', '--skip-column-names', '--default-character-set=utf8mb4', `--database=${db.name}`], { signal, ...spawn });
  let out = '';
  child.proc.stdout?.setEncoding('utf8');
  child.proc.stdout?.on('data', (s: string) => (out += s));
  // A client that could not connect exits without reading it: that fails through its exit
  // status and stderr (classifyDbError), not as an EPIPE nobody listens for.
  child.proc.stdin?.on('error', () => {});
  child.proc.stdin?.end(sql);
  try {
    await child.done;
  } catch (err) {
    if (err instanceof WpbError && err.kind === 'stopped') throw err;
    throw classifyDbError(child.stderrTail(), db, err);
  }
  return out.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
}
