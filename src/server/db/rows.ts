import { randomUUID } from 'node:crypto';
import type { Param, Queryable } from './db.ts';

// Small pieces every repository uses. Timestamps are epoch milliseconds (UTC) throughout;
// the API turns them into ISO-8601 strings.

export interface RepoContext {
  db: Queryable;
  /** The clock, replaceable in tests. */
  now: () => number;
  /** Told, after the commit, that a job was queued for a node (wakes waiting polls; job-notifier.ts). */
  onJobQueued?: (nodeId: string) => void;
  /**
   * Told, after the commit, that a credential (node key, token, user, assignment) or a held job
   * (stop, end, release) changed: the authentication cache forgets what it kept (auth/auth-cache.ts).
   */
  authChanged?: () => void | Promise<void>;
}

export const newId = (): string => randomUUID();

/**
 * Ids (at least one) for `IN (marks)`, padded to a power of two with the last one repeated: a
 * few statement texts (each a named statement on PostgreSQL) serve every list size.
 */
export function paddedIds(ids: readonly string[]): { marks: string; ids: string[] } {
  let size = 1;
  while (size < ids.length) size *= 2;
  const padded = [...ids, ...Array<string>(size - ids.length).fill(ids[ids.length - 1] as string)];
  return { marks: padded.map(() => '?').join(', '), ids: padded };
}

/**
 * A write that may change a credential or a held job: once it is done (failed ones too: cheap),
 * RepoContext.authChanged is told. Passes the write's result through.
 */
export async function changing<T>(ctx: RepoContext, write: Promise<T>): Promise<T> {
  try {
    return await write;
  } finally {
    await ctx.authChanged?.();
  }
}

/** Rows come back with snake_case keys and driver types; mappers read them through this. */
export type Raw = Record<string, unknown>;

export function str(v: unknown): string {
  return String(v);
}

export function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

export function num(v: unknown): number {
  return Number(v);
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

/** INTEGER 0/1 on both databases. */
export function bool(v: unknown): boolean {
  return v === 1 || v === true || v === '1';
}

export function json<T>(v: unknown, fallback: T): T {
  if (typeof v !== 'string' || v === '') return fallback;
  try {
    return JSON.parse(v) as T;
  } catch {
    return fallback;
  }
}

/**
 * "a = ?, b = ?" for the fields of a patch that are present (null clears a column, undefined
 * leaves it alone), with their values. columns maps patch keys to column names.
 */
export function assignments<K extends string>(patch: Partial<Record<K, Param>>, columns: Record<K, string>): { sql: string; params: Param[] } {
  const sets: string[] = [];
  const params: Param[] = [];
  for (const key of Object.keys(columns) as K[]) {
    if (!(key in patch) || patch[key] === undefined) continue;
    sets.push(`${columns[key]} = ?`);
    params.push(patch[key]);
  }
  return { sql: sets.join(', '), params };
}

