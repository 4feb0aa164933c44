import { num, numOrNull, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// One-time codes an admin hands to a new agent. Only their hash is stored; using one is a
// single conditional UPDATE, so two agents racing with the same code cannot both join.

export interface JoinCodeRow {
  codeHash: string;
  expiresAt: number;
  usedAt: number | null;
  usedByNode: string | null;
  createdBy: string | null;
  createdAt: number;
  /** A re-join code: gives this existing node a new key instead of making a node. */
  nodeId: string | null;
}

const COLUMNS = 'code_hash, expires_at, used_at, used_by_node, created_by, created_at, node_id';

function toCode(r: Raw): JoinCodeRow {
  return {
    codeHash: str(r.code_hash),
    expiresAt: num(r.expires_at),
    usedAt: numOrNull(r.used_at),
    usedByNode: strOrNull(r.used_by_node),
    createdBy: strOrNull(r.created_by),
    createdAt: num(r.created_at),
    nodeId: strOrNull(r.node_id),
  };
}

export class JoinCodesRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  async create(c: { codeHash: string; expiresAt: number; createdBy?: string | null; nodeId?: string | null }): Promise<JoinCodeRow> {
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO join_codes (code_hash, expires_at, created_by, created_at, node_id) VALUES (?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
      [c.codeHash, c.expiresAt, c.createdBy, this.#ctx.now(), c.nodeId ?? null],
    );
    return toCode(row as Raw);
  }

  /**
   * Uses the code for nodeId if it is unused and unexpired; undefined otherwise. Create the
   * node first and do both in one transaction, so a refused code leaves no node behind.
   */
  async consume(codeHash: string, nodeId: string): Promise<JoinCodeRow | undefined> {
    const now = this.#ctx.now();
    const row = await this.#ctx.db.get<Raw>(
      `UPDATE join_codes SET used_at = ?, used_by_node = ? WHERE code_hash = ? AND used_at IS NULL AND expires_at > ? AND node_id IS NULL RETURNING ${COLUMNS}`,
      [now, nodeId, codeHash, now],
    );
    return row && toCode(row);
  }

  /** Uses a re-join code (one bound to a node) if it is unused and unexpired; undefined otherwise. */
  async consumeRejoin(codeHash: string): Promise<JoinCodeRow | undefined> {
    const now = this.#ctx.now();
    const row = await this.#ctx.db.get<Raw>(
      `UPDATE join_codes SET used_at = ?, used_by_node = node_id WHERE code_hash = ? AND used_at IS NULL AND expires_at > ? AND node_id IS NOT NULL RETURNING ${COLUMNS}`,
      [now, codeHash, now],
    );
    return row && toCode(row);
  }

  /** Codes still usable, newest first. */
  async listOpen(): Promise<JoinCodeRow[]> {
    const rows = await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM join_codes WHERE used_at IS NULL AND expires_at > ? ORDER BY created_at DESC`, [this.#ctx.now()]);
    return rows.map(toCode);
  }

  async deleteExpired(): Promise<number> {
    return this.#ctx.db.exec('DELETE FROM join_codes WHERE used_at IS NULL AND expires_at <= ?', [this.#ctx.now()]);
  }
}
