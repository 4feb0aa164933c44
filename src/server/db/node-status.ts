import type { Queryable } from './db.ts';
import { numOrNull, strOrNull } from './rows.ts';
import type { Raw } from './rows.ts';

// Since when a node is disabled, and by whom (migration 5). Kept apart from nodes.ts's row:
// only the status change in PATCH /nodes/{id} and the queued-job expiry read or write it.

export interface DisabledInfo {
  disabledAt: number | null;
  /** The role of the user who disabled it: a node_admin may not re-enable what a super_admin disabled. */
  disabledByRole: string | null;
}

export async function disabledInfo(q: Queryable, nodeId: string): Promise<DisabledInfo> {
  const r = await q.get<Raw>('SELECT disabled_at, disabled_by_role FROM nodes WHERE id = ?', [nodeId]);
  return { disabledAt: numOrNull(r?.disabled_at), disabledByRole: strOrNull(r?.disabled_by_role) };
}

/** Records a status change: disabling stamps the time and role (once), anything else clears them. */
export async function recordStatusChange(q: Queryable, nodeId: string, status: string, byRole: string, now: number): Promise<void> {
  if (status === 'disabled') {
    await q.exec(`UPDATE nodes SET disabled_at = COALESCE(disabled_at, ?), disabled_by_role = CASE WHEN disabled_by_role = 'super_admin' THEN disabled_by_role ELSE ? END WHERE id = ?`, [now, byRole, nodeId]);
  } else {
    await q.exec('UPDATE nodes SET disabled_at = NULL, disabled_by_role = NULL WHERE id = ?', [nodeId]);
  }
}
