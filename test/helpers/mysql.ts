import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { services } from './services.ts';

// MariaDB for tests, through the mysql client with credentials in 0600 option files (never
// argv) and SQL on stdin. The admin account comes from services(); sqlAs() logs in as any
// user, e.g. a site's own DB user with an awkward password.

export interface MysqlLogin {
  user: string;
  password: string;
  host?: string;
  port?: number;
  socket?: string;
}

let privateDir: string | undefined;
const optionFiles = new Map<string, string>();

function scratchDir(): string {
  if (!privateDir) {
    const dir = mkdtempSync(join(tmpdir(), 'wpb-test-mysql-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    privateDir = dir;
  }
  return privateDir;
}

/** A MySQL option-file value: double quotes, with \\ \" \n escapes the client understands. */
export function optionValue(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t')}"`;
}

/** A 0600 [client] option file for `login`, written once per process. */
export function defaultsFile(login: MysqlLogin): string {
  const lines = ['[client]', `user=${optionValue(login.user)}`, `password=${optionValue(login.password)}`];
  if (login.socket) lines.push(`socket=${optionValue(login.socket)}`, 'protocol=SOCKET');
  else lines.push(`host=${optionValue(login.host ?? '127.0.0.1')}`, `port=${login.port ?? 3306}`, 'protocol=TCP');
  const content = lines.join('\n') + '\n';
  let file = optionFiles.get(content);
  if (!file) {
    file = join(scratchDir(), `client-${optionFiles.size}.cnf`);
    writeFileSync(file, content, { mode: 0o600 });
    optionFiles.set(content, file);
  }
  return file;
}

function adminLogin(): MysqlLogin {
  const { host, port, user, password } = services().mysql;
  return { host, port, user, password };
}

/** Runs the client in batch mode with `input` on stdin; resolves with raw stdout. */
function runClient(login: MysqlLogin, args: string[], input: string): Promise<Buffer> {
  const argv = [`--defaults-extra-file=${defaultsFile(login)}`, '--batch', '--skip-column-names', '--default-character-set=utf8mb4', ...args];
  return new Promise((resolve, reject) => {
    const child = spawn('mariadb', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`mariadb as ${login.user} failed (exit ${code}): ${err.trim()}\nSQL: ${input.slice(0, 500)}`));
    });
    child.stdin.end(input);
  });
}

function dbArgs(db?: string): string[] {
  return db ? [`--database=${db}`] : [];
}

/**
 * Runs SQL as the test admin and returns the rows as tab-separated lines, without column
 * names or the final newline. Values are in batch-mode escaping (\t, \n, \\, \0).
 */
export async function sql(query: string, db?: string): Promise<string> {
  return sqlAs(adminLogin(), query, db);
}

export async function sqlAs(login: MysqlLogin, query: string, db?: string): Promise<string> {
  const out = await runClient(login, dbArgs(db), query);
  return out.toString('utf8').replace(/\n$/, '');
}

/** Backquotes an identifier. */
export function ident(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** A string literal for MariaDB's default sql_mode, where backslash escapes. */
export function literal(s: string): string {
  return "'" + s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\0/g, '\\0') + "'";
}

export async function createDatabase(name: string): Promise<void> {
  await sql(`CREATE DATABASE ${ident(name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci`);
}

export async function dropDatabase(name: string): Promise<void> {
  await sql(`DROP DATABASE IF EXISTS ${ident(name)}`);
}

// Like a typical WordPress host: the site's user may do anything in its own database and
// nothing else (no PROCESS, RELOAD, global SELECT, ...).
const USER_HOSTS = ['localhost', '%'];

export async function createDbUser(user: string, password: string, db: string): Promise<void> {
  const statements = USER_HOSTS.flatMap((host) => [
    `CREATE USER ${literal(user)}@${literal(host)} IDENTIFIED BY ${literal(password)};`,
    `GRANT ALL PRIVILEGES ON ${ident(db)}.* TO ${literal(user)}@${literal(host)};`,
  ]);
  await sql(statements.join('\n'));
}

export async function dropDbUser(user: string): Promise<void> {
  await sql(USER_HOSTS.map((host) => `DROP USER IF EXISTS ${literal(user)}@${literal(host)};`).join('\n'));
}

/**
 * A content hash per base table. Each row is one batch-mode line (values escaped, so lines
 * are unambiguous); the sorted lines are hashed, so the result depends on the rows only, not on
 * their physical order, the database name or the row format. Column names are included.
 */
export async function tableChecksums(db: string): Promise<Map<string, string>> {
  const tables = await sql(`SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${literal(db)} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`);
  const names = tables === '' ? [] : tables.split('\n');
  const sums = await Promise.all(names.map((t) => tableChecksum(db, t)));
  return new Map(names.map((t, i) => [t, sums[i] as string]));
}

async function tableChecksum(db: string, table: string): Promise<string> {
  const columns = await sql(`SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ${literal(db)} AND TABLE_NAME = ${literal(table)} ORDER BY ORDINAL_POSITION`);
  const rows = await runClient(adminLogin(), dbArgs(db), `SELECT * FROM ${ident(table)}`);
  const lines = splitLines(rows).sort(Buffer.compare);
  const hash = createHash('sha256').update(columns).update('\0');
  for (const line of lines) hash.update(line).update('\n');
  return hash.digest('hex');
}

function splitLines(buf: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, start)) {
    lines.push(buf.subarray(start, i));
    start = i + 1;
  }
  if (start < buf.length) lines.push(buf.subarray(start));
  return lines;
}

/** A lowercase name safe as a database and user name (at most 32 characters). */
export function uniqueName(prefix: string): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 18);
  return `${clean}_${Date.now().toString(36).slice(-5)}${randomBytes(4).toString('hex')}`;
}
