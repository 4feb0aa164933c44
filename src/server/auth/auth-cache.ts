import { randomUUID } from 'node:crypto';
import type { JobRow } from '../db/job-rows.ts';
import type { ReportReply } from '../db/job-report.ts';
import type { NodeRow } from '../db/nodes.ts';
import type { TokenRow } from '../db/tokens.ts';
import type { UserRow } from '../db/users.ts';

// Authentication results, kept for a moment: the two hottest routes (an agent's progress
// report, a status read) run thousands of times a second with the same few credentials, and
// each database round trip costs the server more CPU than the rest of the request. Only those
// routes use it (auth/cached-auth.ts); every other route reads credentials afresh. What is kept:
//   - a node key's node (its hash -> the node row),
//   - the job a progress report names, while its node holds it (claimed or running),
//   - a user token's token, user and assignments (its hash -> them).
// Only positive results are kept (an unknown key or job is read every time).
//
// How long a kept result may differ from the database:
//   - on this server, never: every repository write that can change one of them (revoking or
//     replacing a key or token, disabling or removing a node or user, a role or assignment,
//     a job's stop request, end, release or reset) calls changed() once it has committed, which
//     empties the cache; a read that began before that is not kept (the epoch it began in
//     is gone), so a read from before the commit never comes back as current;
//   - made by another server on the same PostgreSQL: as soon as its notice arrives (milliseconds:
//     auth-notify.ts), and at most ttlMs (1 s by default) if the notice is lost;
//   - made by anything else writing the database (a `wpbackup users|nodes` command on SQLite,
//     where there are no notices; SQL by hand): at most ttlMs after the last statement that
//     confirmed the kept row (the read, or a progress write conditional on the key and the job),
//     after which it is read again.
// Nothing is written on the strength of a kept row alone: the progress report's write is
// conditional on the job still being the node's and running, and on the node still holding the
// key and not being disabled (job-report.ts). A stale row can at worst make a reply say "carry
// on" (not written) for up to ttlMs after a stop or a revocation nobody announced.

export const DEFAULT_AUTH_CACHE_MS = 1_000;
const MAX_ENTRIES = 50_000;

export interface UserAuth {
  token: TokenRow;
  user: UserRow;
  /** The user's assigned node and site ids (empty for a super_admin: they change nothing). */
  nodeIds: ReadonlySet<string>;
  siteIds: ReadonlySet<string>;
}

interface Entry<T> {
  value: T;
  /** When the read that found it began. */
  at: number;
}

/** A map whose entries last ttlMs from the read that found them, and that one changed() empties. */
class Kept<T> {
  readonly #entries = new Map<string, Entry<T>>();

  get(key: string, now: number, ttlMs: number): T | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (now - e.at < ttlMs) return e.value;
    this.#entries.delete(key);
    return undefined;
  }

  set(key: string, value: T, at: number): void {
    if (this.#entries.size >= MAX_ENTRIES) this.#entries.clear();
    this.#entries.set(key, { value, at });
  }

  /** A newer value, and (at) a newer statement that confirmed it: its window starts again. */
  update(key: string, fn: (v: T) => T, at?: number): void {
    const e = this.#entries.get(key);
    if (!e) return;
    e.value = fn(e.value);
    if (at !== undefined && at > e.at) e.at = at;
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}

export interface AuthCacheOptions {
  /** How long a result is used before it is read again; 0 turns the cache off. */
  ttlMs?: number;
  now: () => number;
}

/** A read in progress: what it finds is kept only if nothing changed since it began. */
export interface Reading {
  readonly epoch: number;
  readonly at: number;
}

export class AuthCache {
  /** This cache's name in change notices (auth-notify.ts), so it skips its own. */
  readonly instance = randomUUID();
  readonly ttlMs: number;
  readonly #now: () => number;
  readonly #nodes = new Kept<NodeRow>();
  readonly #jobs = new Kept<JobRow>();
  readonly #users = new Kept<UserAuth>();
  #epoch = 0;

  constructor(o: AuthCacheOptions) {
    this.ttlMs = Math.max(0, o.ttlMs ?? DEFAULT_AUTH_CACHE_MS);
    this.#now = o.now;
  }

  /** Something that may change an authentication result or a held job committed: forget everything. */
  changed(): void {
    this.#epoch++;
    this.#nodes.clear();
    this.#jobs.clear();
    this.#users.clear();
  }

  /** Call before reading the database; pass it to keep...() with what the read found. */
  begin(): Reading {
    return { epoch: this.#epoch, at: this.#now() };
  }

  node(keyHash: string): NodeRow | undefined {
    return this.#nodes.get(keyHash, this.#now(), this.ttlMs);
  }

  /** The job, if kept and still held by nodeId as far as this server knows. */
  job(jobId: string, nodeId: string): JobRow | undefined {
    const job = this.#jobs.get(jobId, this.#now(), this.ttlMs);
    return job && held(job, nodeId) ? job : undefined;
  }

  user(tokenHash: string): UserAuth | undefined {
    const found = this.#users.get(tokenHash, this.#now(), this.ttlMs);
    if (found && !unexpired(found.token, this.#now())) {
      this.#users.delete(tokenHash);
      return undefined;
    }
    return found;
  }

  keepNode(r: Reading, keyHash: string, node: NodeRow): void {
    if (this.#current(r) && node.status !== 'disabled') this.#nodes.set(keyHash, node, r.at);
  }

  keepJob(r: Reading, nodeId: string, job: JobRow): void {
    if (this.#current(r) && held(job, nodeId)) this.#jobs.set(job.id, job, r.at);
    else this.#jobs.delete(job.id);
  }

  keepUser(r: Reading, tokenHash: string, auth: UserAuth): void {
    if (this.#current(r) && !auth.user.disabled && unexpired(auth.token, r.at)) this.#users.set(tokenHash, auth, r.at);
  }

  /**
   * A progress report was written (reply) or refused (undefined), by a write begun at r. The
   * write's answer is the job's state now, newer than the kept row. A write conditional on the
   * key (keyHash: job-report.ts) also confirmed the node still holds it and is not disabled, so
   * the kept key and job count from the write, as from a read. A refused one's job is no longer
   * the node's, or its key no longer the node's: both are read again.
   */
  reported(r: Reading, jobId: string, reply: ReportReply | undefined, keyHash?: string): void {
    if (!reply) {
      this.#jobs.delete(jobId);
      if (keyHash !== undefined) this.#nodes.delete(keyHash);
      return;
    }
    const confirmed = keyHash !== undefined && this.#current(r) ? r.at : undefined;
    this.#jobs.update(jobId, (j) => ({ ...j, state: 'running', leaseUntil: Math.max(j.leaseUntil ?? 0, reply.leaseUntil), cancelRequested: j.cancelRequested || reply.cancelRequested }), confirmed);
    if (keyHash !== undefined && confirmed !== undefined) this.#nodes.update(keyHash, (n) => n, confirmed);
  }

  /** Entries held (tests). */
  get size(): { nodes: number; jobs: number; users: number } {
    return { nodes: this.#nodes.size, jobs: this.#jobs.size, users: this.#users.size };
  }

  #current(r: Reading): boolean {
    return this.ttlMs > 0 && r.epoch === this.#epoch;
  }
}

function held(job: JobRow, nodeId: string): boolean {
  return job.claimedBy === nodeId && (job.state === 'claimed' || job.state === 'running');
}

function unexpired(token: TokenRow, now: number): boolean {
  return token.expiresAt === null || token.expiresAt > now;
}
