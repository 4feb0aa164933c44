import pg from 'pg';
import type { PoolClient, QueryResult } from 'pg';
import { failure } from '../../errors.ts';
import { inSavepoint, toDriverParams } from './db.ts';
import type { Db, Param, Queryable } from './db.ts';
import { violationError } from './errors.ts';
import type { Violation } from './errors.ts';
import { toDollarParams } from './placeholders.ts';

// PostgreSQL through a pg Pool. Plain statements take any pooled connection; a transaction
// holds one connection from BEGIN to COMMIT. Several server processes may share the database:
// everything that must be atomic across them is a single statement or a transaction.

const POOL_MAX = 10;
const RELAXED_MAX = 4;
const CONNECT_TIMEOUT_MS = 10_000;

// BIGINT (epoch ms, sizes) and NUMERIC (SUM of BIGINT) come back as strings by default; ours
// stay far below 2^53, so numbers are exact and match what SQLite returns.
const INT8 = 20;
const NUMERIC = 1700;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 || oid === NUMERIC ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

interface Runner {
  query(text: string, values?: unknown[]): Promise<QueryResult>;
  query(config: { text: string; values: unknown[]; name?: string }): Promise<QueryResult>;
}

export interface PostgresOptions {
  /** Connections in the pool. */
  max?: number;
  /** Connections of the `relaxed` pool, opened only when used. */
  relaxedMax?: number;
}

export class PostgresDb implements Db {
  readonly dialect = 'postgres' as const;
  readonly location: string;
  readonly relaxed: Queryable;
  readonly #pool: pg.Pool;
  readonly #relaxed: PostgresDb | undefined;

  constructor(url: string, opts: PostgresOptions = {}, sessionOptions?: string) {
    this.location = redactUrl(url);
    this.#pool = new pg.Pool({
      connectionString: url,
      max: opts.max ?? POOL_MAX,
      types,
      options: sessionOptions,
      application_name: 'wpbackup',
      // Waiting for a free connection is bounded: an exhausted pool or a hung server gives
      // an error instead of a request that never ends.
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    // An idle connection that breaks (server restart) is dropped by the pool; without a
    // listener the 'error' event would crash the process.
    this.#pool.on('error', () => {});
    // Waiting for the WAL flush is most of a one-row UPDATE's time (about 1 ms against
    // 0.2 ms here); a progress report that a crash loses is replaced by the next one.
    this.#relaxed = sessionOptions ? undefined : new PostgresDb(url, { max: opts.relaxedMax ?? RELAXED_MAX }, '-c synchronous_commit=off');
    this.relaxed = this.#relaxed ?? this;
  }

  query<T>(sql: string, params: readonly Param[] = []): Promise<T[]> {
    return run(this.#pool, sql, params).then((r) => r.rows as T[]);
  }

  get<T>(sql: string, params: readonly Param[] = []): Promise<T | undefined> {
    return run(this.#pool, sql, params).then((r) => r.rows[0] as T | undefined);
  }

  exec(sql: string, params: readonly Param[] = []): Promise<number> {
    return run(this.#pool, sql, params).then((r) => r.rowCount ?? 0);
  }

  async script(sql: string): Promise<void> {
    await runScript(this.#pool, sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.#connect();
    let broken: Error | undefined;
    const tx = new PostgresTx(client, 1);
    try {
      await runScript(client, 'BEGIN');
      const result = await fn(tx);
      await runScript(client, 'COMMIT');
      return result;
    } catch (err) {
      // A connection that cannot even roll back is discarded instead of returned to the pool.
      await client.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw err;
    } finally {
      tx.open = false;
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.#pool.end(), this.#relaxed?.close()]);
  }

  async #connect(): Promise<PoolClient> {
    try {
      return await this.#pool.connect();
    } catch (err) {
      throw pgError(err, 'connect');
    }
  }
}

class PostgresTx implements Queryable {
  readonly dialect = 'postgres' as const;
  readonly relaxed: Queryable = this;
  open = true;
  readonly #client: PoolClient;
  readonly #depth: number;

  constructor(client: PoolClient, depth: number) {
    this.#client = client;
    this.#depth = depth;
  }

  query<T>(sql: string, params: readonly Param[] = []): Promise<T[]> {
    return this.#run(sql, params).then((r) => r.rows as T[]);
  }

  get<T>(sql: string, params: readonly Param[] = []): Promise<T | undefined> {
    return this.#run(sql, params).then((r) => r.rows[0] as T | undefined);
  }

  exec(sql: string, params: readonly Param[] = []): Promise<number> {
    return this.#run(sql, params).then((r) => r.rowCount ?? 0);
  }

  async script(sql: string): Promise<void> {
    this.#check();
    await runScript(this.#client, sql);
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const inner = new PostgresTx(this.#client, this.#depth + 1);
    return inSavepoint(this, this.#depth, () => fn(inner)).finally(() => (inner.open = false));
  }

  async #run(sql: string, params: readonly Param[]): Promise<QueryResult> {
    this.#check();
    return run(this.#client, sql, params);
  }

  #check(): void {
    if (!this.open) throw failure('A transaction handle was used after its transaction ended');
  }
}

/**
 * Statements run as named prepared statements: each connection parses and plans one once,
 * then only binds and executes it (the same for every request on the hot paths). Statements
 * without parameters keep the simple protocol, as before (they may hold several). Our SQL is
 * a fixed set of texts; past NAMED_MAX distinct ones (a leak, not a workload) they run unnamed.
 */
const NAMED_MAX = 1000;
const names = new Map<string, string>();

function nameOf(sql: string): string | undefined {
  let name = names.get(sql);
  if (name === undefined && names.size < NAMED_MAX) names.set(sql, (name = `wpb_${names.size + 1}`));
  return name;
}

async function run(on: Runner, sql: string, params: readonly Param[]): Promise<QueryResult> {
  try {
    return await on.query({ text: toDollarParams(sql), values: toDriverParams(params), name: params.length > 0 ? nameOf(sql) : undefined });
  } catch (err) {
    throw pgError(err, sql);
  }
}

/** Without values pg uses the simple protocol, which accepts several statements. */
async function runScript(on: Runner, sql: string): Promise<void> {
  try {
    await on.query(sql);
  } catch (err) {
    throw pgError(err, sql);
  }
}

// SQLSTATE classes: https://www.postgresql.org/docs/current/errcodes-appendix.html
const VIOLATIONS: Record<string, Violation> = { '23505': 'unique', '23503': 'foreign_key', '23514': 'check', '23502': 'not_null' };

function pgError(err: unknown, sql: string): Error {
  const e = err as { code?: string; message?: string; constraint?: string };
  const kind = e.code === undefined ? undefined : VIOLATIONS[e.code];
  if (kind) return violationError(kind, e.constraint ?? e.message ?? '', err);
  if (e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === '28P01' || e.code === '3D000') {
    return failure(`Cannot use PostgreSQL: ${e.message ?? e.code}`, err, 'Check DATABASE_URL and that the server is running');
  }
  return failure(`Database error: ${e.message ?? String(err)} in: ${sql.trim().slice(0, 200)}`, err);
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}
