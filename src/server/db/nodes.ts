import { assignments, changing, newId, num, numOrNull, paddedIds, str } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';
import { prefixed, unprefixed } from './joined.ts';
import { JOB_COLUMNS, toJob, type JobRow } from './job-rows.ts';
import { NodeKeyReads, type NodeKeyReadsOptions } from './node-key-reads.ts';

// Web servers running an agent. A node joins as pending or active; the hash of its node key
// is how its requests are recognised (the key itself is shown once and never stored).

export type NodeStatus = 'pending' | 'active' | 'disabled';

export interface NodeRow {
  id: string;
  hostname: string;
  status: NodeStatus;
  lastSeen: number | null;
  quotaBytes: number | null;
  hasKey: boolean;
  /** When an admin asked for a new key that the agent has not switched to yet; null: none asked. */
  keyRotationAt: number | null;
  /** Jobs the node runs at once; claimNext hands it no more (default 1). */
  jobLimit: number;
  createdAt: number;
}

export interface NewNode {
  hostname: string;
  status?: NodeStatus;
  quotaBytes?: number | null;
  nodeKeyHash?: string;
}

export interface NodePatch {
  hostname?: string;
  status?: NodeStatus;
  quotaBytes?: number | null;
  jobLimit?: number;
}

/** A node's columns, qualified by `t.` when given a table alias (joined reads). */
const columns = (t = ''): string => `${t}id, ${t}hostname, ${t}status, ${t}last_seen, ${t}quota_bytes, ${t}node_key_hash IS NOT NULL AS has_key, ${t}key_rotation_at, ${t}job_limit, ${t}created_at`;
const COLUMNS = columns();
/** A node by its key hash (current or pending) with the job a request names (findByKeyHashWithJob). */
const WITH_JOB_COLUMNS = `${columns('n.')}, n.pending_key_hash, ${prefixed(JOB_COLUMNS, 'j', 'j_')}`;
const WITH_JOB = `SELECT ${WITH_JOB_COLUMNS} FROM nodes n LEFT JOIN jobs j ON j.id = ? WHERE n.node_key_hash = ? OR n.pending_key_hash = ?`;


function toNode(r: Raw): NodeRow {
  return {
    id: str(r.id),
    hostname: str(r.hostname),
    status: r.status as NodeStatus,
    lastSeen: numOrNull(r.last_seen),
    quotaBytes: numOrNull(r.quota_bytes),
    hasKey: Boolean(r.has_key),
    keyRotationAt: numOrNull(r.key_rotation_at),
    jobLimit: num(r.job_limit ?? 1),
    createdAt: num(r.created_at),
  };
}

export class NodesRepo {
  readonly #ctx: RepoContext;
  readonly #keyReads: NodeKeyReads | undefined;

  /** batchKeyReads: findByKeyHashWithJob's reads go together while others run (PostgreSQL; node-key-reads.ts). */
  constructor(ctx: RepoContext, batchKeyReads?: NodeKeyReadsOptions) {
    this.#ctx = ctx;
    this.#keyReads = batchKeyReads && ctx.db.dialect === 'postgres' ? new NodeKeyReads(ctx, WITH_JOB_COLUMNS, batchKeyReads) : undefined;
  }

  async create(n: NewNode): Promise<NodeRow> {
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO nodes (id, hostname, status, quota_bytes, node_key_hash, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
      [newId(), n.hostname, n.status ?? 'pending', n.quotaBytes, n.nodeKeyHash, this.#ctx.now()],
    );
    return toNode(row as Raw);
  }

  async get(id: string): Promise<NodeRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM nodes WHERE id = ?`, [id]);
    return row && toNode(row);
  }

  async list(): Promise<NodeRow[]> {
    return (await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM nodes ORDER BY hostname, id`)).map(toNode);
  }

  /**
   * The node whose key hashes to keyHash: how an agent's request is authenticated. A node's pending
   * key (see issuePendingKey) becomes its key the first time it is used, and the old one stops working.
   */
  async findByKeyHash(keyHash: string): Promise<NodeRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS}, pending_key_hash FROM nodes WHERE node_key_hash = ? OR pending_key_hash = ?`, [keyHash, keyHash]);
    if (!row || row.pending_key_hash !== keyHash) return row && toNode(row);
    // The old key stops working: changing.
    const promoted = await changing(this.#ctx, this.#ctx.db.get<Raw>(
      `UPDATE nodes SET node_key_hash = pending_key_hash, pending_key_hash = NULL, key_rotation_at = NULL WHERE id = ? AND pending_key_hash = ? RETURNING ${COLUMNS}`,
      [str(row.id), keyHash],
    ));
    // Another request with the same new key may have promoted it first: look it up as the current key.
    const current = promoted ?? (await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM nodes WHERE node_key_hash = ?`, [keyHash]));
    return current && toNode(current);
  }

  /**
   * findByKeyHash and the job jobId (undefined: no such job) in one query: the progress
   * report's authentication and its job read in one round trip (route.ts, prefetchJob).
   */
  async findByKeyHashWithJob(keyHash: string, jobId: string): Promise<{ node: NodeRow; job: JobRow | undefined } | undefined> {
    const row = this.#keyReads ? await this.#keyReads.get(keyHash, jobId) : await this.#ctx.db.get<Raw>(WITH_JOB, [jobId, keyHash, keyHash]);
    if (!row) return undefined;
    if (row.pending_key_hash !== keyHash) {
      const job = unprefixed(row, 'j_');
      return { node: toNode(row), job: job && toJob(job) };
    }
    // A pending key's first use promotes it (rare): the two steps of findByKeyHash, then the job.
    const node = await this.findByKeyHash(keyHash);
    const job = node && (await this.#ctx.db.get<Raw>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`, [jobId]));
    return node && { node, job: job ? toJob(job) : undefined };
  }

  /** Asks the node's agent to fetch a new key (on its next poll); false when the node has no key to rotate. */
  async requestKeyRotation(id: string): Promise<boolean> {
    return (await this.#ctx.db.exec('UPDATE nodes SET key_rotation_at = ? WHERE id = ? AND node_key_hash IS NOT NULL', [this.#ctx.now(), id])) === 1;
  }

  /**
   * Stores the hash of the key handed to the agent, if a rotation was asked for; a key handed out
   * before (its reply lost) is replaced. The current key works until the new one is first used.
   */
  async issuePendingKey(id: string, keyHash: string): Promise<boolean> {
    return (await this.#ctx.db.exec('UPDATE nodes SET pending_key_hash = ? WHERE id = ? AND key_rotation_at IS NOT NULL AND node_key_hash IS NOT NULL', [keyHash, id])) === 1;
  }

  /**
   * Revokes the node's key (and any pending one) at once; the node comes back only with a join code
   * bound to it. Its leased jobs' leases end now, so the reaper fails them and aborts their uploads.
   */
  async revokeKey(id: string): Promise<boolean> {
    const now = this.#ctx.now();
    return changing(this.#ctx, this.#ctx.db.transaction(async (tx) => {
      const n = await tx.exec('UPDATE nodes SET node_key_hash = NULL, pending_key_hash = NULL, key_rotation_at = NULL WHERE id = ?', [id]);
      if (n !== 1) return false;
      await tx.exec(`UPDATE jobs SET lease_until = ? WHERE claimed_by = ? AND state IN ('claimed', 'running')`, [now - 1, id]);
      return true;
    }));
  }

  async update(id: string, patch: NodePatch): Promise<NodeRow | undefined> {
    const set = assignments(patch, { hostname: 'hostname', status: 'status', quotaBytes: 'quota_bytes', jobLimit: 'job_limit' });
    if (set.sql === '') return this.get(id);
    const row = await changing(this.#ctx, this.#ctx.db.get<Raw>(`UPDATE nodes SET ${set.sql} WHERE id = ? RETURNING ${COLUMNS}`, [...set.params, id]));
    return row && toNode(row);
  }

  /** Replaces the node key (enrollment, re-join); the old key and any pending one stop working at once. */
  async setKeyHash(id: string, keyHash: string): Promise<boolean> {
    return (await changing(this.#ctx, this.#ctx.db.exec('UPDATE nodes SET node_key_hash = ?, pending_key_hash = NULL, key_rotation_at = NULL WHERE id = ?', [keyHash, id]))) === 1;
  }

  /**
   * Records that these nodes were heard from (node-touches.ts gathers them), 64 a statement.
   * Writes a node only when its last_seen is older than minGapMs, so agents polling every
   * second do not turn every request into a write. Returns how many were written.
   */
  async touchMany(ids: readonly string[], minGapMs = 5000): Promise<number> {
    const now = this.#ctx.now();
    let touched = 0;
    for (let i = 0; i < ids.length; i += 64) {
      const padded = paddedIds(ids.slice(i, i + 64));
      const sql = `UPDATE nodes SET last_seen = ? WHERE id IN (${padded.marks}) AND (last_seen IS NULL OR last_seen < ?)`;
      touched += await this.#ctx.db.relaxed.exec(sql, [now, ...padded.ids, now - minGapMs]);
    }
    return touched;
  }

  /** Refused with a ConflictError ('reference') while sites still belong to the node. */
  async remove(id: string): Promise<boolean> {
    return (await changing(this.#ctx, this.#ctx.db.exec('DELETE FROM nodes WHERE id = ?', [id]))) === 1;
  }
}
