import { AsyncLocalStorage } from 'node:async_hooks';
import { closeSync, openSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import type { StatementSync } from 'node:sqlite';
import { failure } from '../../errors.ts';
import { inSavepoint, toDriverParams } from './db.ts';
import type { Db, Param, Queryable } from './db.ts';
import { violationError } from './errors.ts';
import type { Violation } from './errors.ts';
import { startCheckpointer, type Checkpointer } from './sqlite-checkpointer.ts';

// The embedded database: one DatabaseSync connection per process, in WAL mode so readers
// never wait for the writer. Statements run synchronously, so the only thing to serialize is
// a transaction that awaits between statements: while one is open, every other caller waits
// its turn (FIFO) instead of slipping statements into it.

const BUSY_TIMEOUT_MS = 5000; // another process (the `users create` CLI) holding the write lock
const STATEMENT_CACHE_MAX = 500;

/** Serializes transactions and whatever arrives while one is open. */
class Turns {
  #tail: Promise<void> = Promise.resolve();
  #waiting = 0;

  get free(): boolean {
    return this.#waiting === 0;
  }

  async take<T>(fn: () => Promise<T>): Promise<T> {
    this.#waiting++;
    const prev = this.#tail;
    let done!: () => void;
    this.#tail = new Promise((resolve) => (done = resolve));
    try {
      await prev;
      return await fn();
    } finally {
      this.#waiting--;
      done();
    }
  }
}

interface TxState {
  open: boolean;
}

export class SqliteDb implements Db {
  readonly dialect = 'sqlite' as const;
  readonly location: string;
  readonly relaxed: Queryable = this;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  readonly #turns = new Turns();
  readonly #scope = new AsyncLocalStorage<TxState>();
  #checkpointer: Checkpointer | undefined;

  constructor(file: string) {
    this.location = file;
    // Create the file 0600 before SQLite does (it would use the umask); -wal and -shm copy it.
    if (file !== ':memory:') closeSync(openSync(file, 'a', 0o600));
    this.#db = new DatabaseSync(file, { enableForeignKeyConstraints: true, timeout: BUSY_TIMEOUT_MS });
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON');
    if (file !== ':memory:') {
      // Checkpoints happen in a worker thread, not inside a commit on the server's thread.
      this.#db.exec('PRAGMA wal_autocheckpoint = 0');
      this.#checkpointer = startCheckpointer(file);
    }
  }

  query<T>(sql: string, params: readonly Param[] = []): Promise<T[]> {
    return this.#whenFree(() => this.runAll<T>(sql, params));
  }

  get<T>(sql: string, params: readonly Param[] = []): Promise<T | undefined> {
    return this.#whenFree(() => this.runGet<T>(sql, params));
  }

  exec(sql: string, params: readonly Param[] = []): Promise<number> {
    return this.#whenFree(() => this.runExec(sql, params));
  }

  script(sql: string): Promise<void> {
    return this.#whenFree(() => this.runScript(sql));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const state: TxState = { open: true };
    return this.#turns.take(() =>
      this.#scope.run(state, async () => {
        // IMMEDIATE takes the write lock now, so a read-then-write transaction can never fail
        // to upgrade because another process wrote in between.
        this.runScript('BEGIN IMMEDIATE');
        try {
          const result = await fn(new SqliteTx(this, state, 1));
          this.runScript('COMMIT');
          return result;
        } catch (err) {
          if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
          throw err;
        } finally {
          state.open = false;
        }
      }),
    );
  }

  close(): Promise<void> {
    return this.#turns.take(async () => {
      await this.#checkpointer?.stop();
      this.#checkpointer = undefined;
      if (this.#db.isOpen) this.#db.close();
    });
  }

  /** Runs now when no transaction is open or waiting, else after them. */
  #whenFree<T>(op: () => T): Promise<T> {
    if (this.#turns.free) {
      try {
        return Promise.resolve(op());
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    if (this.#scope.getStore()?.open) {
      // The caller is inside a transaction of this db and used the db instead of tx: waiting
      // would deadlock, so say so at once.
      return Promise.reject(failure('A statement ran on the database handle inside its own transaction; use the transaction handle'));
    }
    return this.#turns.take(async () => op());
  }

  #statement(sql: string): StatementSync {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#guard(sql, () => this.#db.prepare(sql));
      if (this.#statements.size >= STATEMENT_CACHE_MAX) this.#statements.clear();
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  // The run* methods execute at once; only SqliteDb (through #whenFree) and SqliteTx call them.

  runAll<T>(sql: string, params: readonly Param[]): T[] {
    const stmt = this.#statement(sql);
    return this.#guard(sql, () => stmt.all(...toDriverParams(params))) as T[];
  }

  runGet<T>(sql: string, params: readonly Param[]): T | undefined {
    const stmt = this.#statement(sql);
    return this.#guard(sql, () => stmt.get(...toDriverParams(params))) as T | undefined;
  }

  runExec(sql: string, params: readonly Param[]): number {
    const stmt = this.#statement(sql);
    return Number(this.#guard(sql, () => stmt.run(...toDriverParams(params))).changes);
  }

  runScript(sql: string): void {
    this.#guard(sql, () => this.#db.exec(sql));
  }

  #guard<T>(sql: string, op: () => T): T {
    try {
      return op();
    } catch (err) {
      throw sqliteError(err, sql);
    }
  }
}

/** A handle valid only while its transaction is open. */
class SqliteTx implements Queryable {
  readonly dialect = 'sqlite' as const;
  readonly relaxed: Queryable = this;
  readonly #db: SqliteDb;
  readonly #state: TxState;
  readonly #depth: number;

  constructor(db: SqliteDb, state: TxState, depth: number) {
    this.#db = db;
    this.#state = state;
    this.#depth = depth;
  }

  query<T>(sql: string, params: readonly Param[] = []): Promise<T[]> {
    return this.#now(() => this.#db.runAll<T>(sql, params));
  }

  get<T>(sql: string, params: readonly Param[] = []): Promise<T | undefined> {
    return this.#now(() => this.#db.runGet<T>(sql, params));
  }

  exec(sql: string, params: readonly Param[] = []): Promise<number> {
    return this.#now(() => this.#db.runExec(sql, params));
  }

  script(sql: string): Promise<void> {
    return this.#now(() => this.#db.runScript(sql));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const inner = new SqliteTx(this.#db, this.#state, this.#depth + 1);
    return inSavepoint(this, this.#depth, () => fn(inner));
  }

  #now<T>(op: () => T): Promise<T> {
    try {
      if (!this.#state.open) throw failure('A transaction handle was used after its transaction ended');
      return Promise.resolve(op());
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
}

// Extended result codes: https://www.sqlite.org/rescode.html
const VIOLATIONS: Record<number, Violation> = { 2067: 'unique', 1555: 'unique', 787: 'foreign_key', 275: 'check', 1299: 'not_null' };

function sqliteError(err: unknown, sql: string): Error {
  const e = err as { errcode?: number; message?: string };
  const kind = e.errcode === undefined ? undefined : VIOLATIONS[e.errcode];
  if (kind) return violationError(kind, e.message ?? '', err);
  if (e.errcode === 5 || e.errcode === 6) return failure('The database is locked by another process for too long', err);
  return failure(`Database error: ${e.message ?? String(err)} in: ${sql.trim().slice(0, 200)}`, err);
}
