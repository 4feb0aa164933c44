// The one query layer the server uses, whichever database is behind it. SQL is written once,
// with `?` placeholders, in the subset SQLite and PostgreSQL share; each implementation
// translates what differs (placeholders, errors, transactions).

export type Dialect = 'sqlite' | 'postgres';

/** Booleans are stored as INTEGER 0/1 and undefined as NULL, on both databases. */
export type Param = string | number | boolean | null | undefined;

export type Row = Record<string, unknown>;

export interface Queryable {
  readonly dialect: Dialect;
  /** Every row the statement returns. */
  query<T = Row>(sql: string, params?: readonly Param[]): Promise<T[]>;
  /** The first row, or undefined when there is none. */
  get<T = Row>(sql: string, params?: readonly Param[]): Promise<T | undefined>;
  /** Runs a statement and resolves to the number of rows it changed. */
  exec(sql: string, params?: readonly Param[]): Promise<number>;
  /** Several statements separated by semicolons, without parameters (migrations). */
  script(sql: string): Promise<void>;
  /**
   * Runs fn in a transaction and commits when it resolves, rolls back when it throws. Inside,
   * use only `tx`: on SQLite the outer handle waits for the transaction to end. Called on a
   * transaction handle, it nests as a savepoint.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * The same database, for writes whose last few may be lost if the database server crashes
   * (progress reports, last-seen times): PostgreSQL does not wait for the WAL flush on them.
   * SQLite (synchronous=NORMAL in WAL mode) and transaction handles return themselves.
   */
  readonly relaxed: Queryable;
}

export interface Db extends Queryable {
  /** Where the data lives, without secrets: a file path or postgres://user@host/db. */
  readonly location: string;
  close(): Promise<void>;
}

/** Values as both drivers accept them. */
export function toDriverParams(params: readonly Param[]): (string | number | null)[] {
  return params.map((p) => (p === undefined ? null : typeof p === 'boolean' ? (p ? 1 : 0) : p));
}

/**
 * What a SELECT inside a transaction ends with so the rows it reads stay the transaction's
 * until it ends: FOR UPDATE on PostgreSQL (a concurrent locker waits, then re-reads the rows as
 * committed). SQLite needs nothing: its transactions are BEGIN IMMEDIATE, one writer at a time.
 */
export function forUpdate(q: Queryable): string {
  return q.dialect === 'postgres' ? ' FOR UPDATE' : '';
}

/**
 * Locks one row until the transaction ends and says whether it exists; call inside a
 * transaction. Transactions that lock the same row first run one after the other, on every
 * server: on PostgreSQL by FOR UPDATE, on SQLite by BEGIN IMMEDIATE (one writer at a time).
 */
export async function lockRow(tx: Queryable, table: 'jobs' | 'nodes' | 'sites' | 'users', id: string): Promise<boolean> {
  return (await tx.get(`SELECT id FROM ${table} WHERE id = ?${forUpdate(tx)}`, [id])) !== undefined;
}

/** SQL for the nth nested transaction level, the same on both databases. */
export const savepoint = {
  begin: (n: number): string => `SAVEPOINT wpb_sp_${n}`,
  release: (n: number): string => `RELEASE SAVEPOINT wpb_sp_${n}`,
  rollback: (n: number): string => `ROLLBACK TO SAVEPOINT wpb_sp_${n}`,
};

/** Runs fn inside a savepoint of an open transaction. */
export async function inSavepoint<T>(q: Queryable, depth: number, fn: () => Promise<T>): Promise<T> {
  await q.script(savepoint.begin(depth));
  try {
    const result = await fn();
    await q.script(savepoint.release(depth));
    return result;
  } catch (err) {
    await q.script(savepoint.rollback(depth));
    await q.script(savepoint.release(depth));
    throw err;
  }
}
