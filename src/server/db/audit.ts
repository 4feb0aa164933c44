import { json, newId, num, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// Who did what, when. Entries keep ids of users, nodes and targets that may since be gone.
// detail is JSON: never put a secret in it.

export interface AuditEntry {
  id: string;
  at: number;
  userId: string | null;
  nodeId: string | null;
  action: string;
  targetType: string | null;
  targetId: string | null;
  detail: unknown;
}

export interface NewAuditEntry {
  userId?: string | null;
  nodeId?: string | null;
  action: string;
  targetType?: string | null;
  targetId?: string | null;
  detail?: unknown;
}

export interface AuditFilter {
  limit?: number;
  /** Entries strictly older than this (epoch ms): the next page. */
  before?: number;
  userId?: string;
  targetType?: string;
  targetId?: string;
}

const COLUMNS = 'id, at, user_id, node_id, action, target_type, target_id, detail';

function toEntry(r: Raw): AuditEntry {
  return {
    id: str(r.id),
    at: num(r.at),
    userId: strOrNull(r.user_id),
    nodeId: strOrNull(r.node_id),
    action: str(r.action),
    targetType: strOrNull(r.target_type),
    targetId: strOrNull(r.target_id),
    detail: json<unknown>(r.detail, null),
  };
}

export class AuditRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  async record(e: NewAuditEntry): Promise<AuditEntry> {
    const detail = e.detail === undefined ? null : JSON.stringify(e.detail);
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO audit_log (id, at, user_id, node_id, action, target_type, target_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
      [newId(), this.#ctx.now(), e.userId, e.nodeId, e.action, e.targetType, e.targetId, detail],
    );
    return toEntry(row as Raw);
  }

  /** Newest first. */
  async list(f: AuditFilter = {}): Promise<AuditEntry[]> {
    const where = ['at < ?'];
    const params: (string | number)[] = [f.before ?? Number.MAX_SAFE_INTEGER];
    for (const [column, value] of [['user_id', f.userId], ['target_type', f.targetType], ['target_id', f.targetId]] as const) {
      if (value === undefined) continue;
      where.push(`${column} = ?`);
      params.push(value);
    }
    const sql = `SELECT ${COLUMNS} FROM audit_log WHERE ${where.join(' AND ')} ORDER BY at DESC, id DESC LIMIT ?`;
    return (await this.#ctx.db.query<Raw>(sql, [...params, f.limit ?? 100])).map(toEntry);
  }
}
