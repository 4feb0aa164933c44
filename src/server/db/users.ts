import { forUpdate } from './db.ts';
import { bool, changing, newId, num, str } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// Users and what they are assigned. Emails are unique without regard to case: stored in
// lower case here, and guarded by a unique index on lower(email) in the database.

export type Role = 'super_admin' | 'node_admin' | 'site_admin';

export interface UserRow {
  id: string;
  email: string;
  role: Role;
  /** A disabled user cannot sign in and none of their tokens work (PATCH users/{id} disabled). */
  disabled: boolean;
  createdAt: number;
}

const COLUMNS = 'id, email, role, disabled, created_at';

function toUser(r: Raw): UserRow {
  return { id: str(r.id), email: str(r.email), role: r.role as Role, disabled: bool(r.disabled), createdAt: num(r.created_at) };
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export class UsersRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  /** A ConflictError ('duplicate') when the email is taken, in any case. */
  async create(u: { email: string; passwordHash: string; role: Role }): Promise<UserRow> {
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO users (id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
      [newId(), normalizeEmail(u.email), u.passwordHash, u.role, this.#ctx.now()],
    );
    return toUser(row as Raw);
  }

  async get(id: string): Promise<UserRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM users WHERE id = ?`, [id]);
    return row && toUser(row);
  }

  async getByEmail(email: string): Promise<UserRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM users WHERE lower(email) = ?`, [normalizeEmail(email)]);
    return row && toUser(row);
  }

  /** For login only: the one place the password hash leaves the database. */
  async credentialsByEmail(email: string): Promise<{ user: UserRow; passwordHash: string } | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS}, password_hash FROM users WHERE lower(email) = ?`, [normalizeEmail(email)]);
    return row && { user: toUser(row), passwordHash: str(row.password_hash) };
  }

  async list(): Promise<UserRow[]> {
    return (await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM users ORDER BY email`)).map(toUser);
  }

  /** With role: the enabled users of that role (the ones who can still act). */
  async count(role?: Role): Promise<number> {
    const row = role
      ? await this.#ctx.db.get<Raw>('SELECT COUNT(*) AS n FROM users WHERE role = ? AND disabled = 0', [role])
      : await this.#ctx.db.get<Raw>('SELECT COUNT(*) AS n FROM users');
    return num(row?.n);
  }

  /**
   * The enabled super_admins, their rows locked until the transaction ends (call inside one):
   * a concurrent caller waits here and then counts what the first one left.
   */
  async lockSuperAdmins(): Promise<string[]> {
    const db = this.#ctx.db;
    const rows = await db.query<Raw>(`SELECT id FROM users WHERE role = 'super_admin' AND disabled = 0 ORDER BY id${forUpdate(db)}`);
    return rows.map((r) => str(r.id));
  }

  async setRole(id: string, role: Role): Promise<boolean> {
    return (await changing(this.#ctx, this.#ctx.db.exec('UPDATE users SET role = ? WHERE id = ?', [role, id]))) === 1;
  }

  async setDisabled(id: string, disabled: boolean): Promise<boolean> {
    return (await changing(this.#ctx, this.#ctx.db.exec('UPDATE users SET disabled = ? WHERE id = ?', [disabled ? 1 : 0, id]))) === 1;
  }

  async setPasswordHash(id: string, passwordHash: string): Promise<boolean> {
    return (await this.#ctx.db.exec('UPDATE users SET password_hash = ? WHERE id = ?', [passwordHash, id])) === 1;
  }

  /** Their tokens and assignments go with them. */
  async remove(id: string): Promise<boolean> {
    return (await changing(this.#ctx, this.#ctx.db.exec('DELETE FROM users WHERE id = ?', [id]))) === 1;
  }

  /** Assignments are idempotent; an unknown user, node or site is a ConflictError ('reference'). */
  async assignNode(userId: string, nodeId: string): Promise<void> {
    await changing(this.#ctx, this.#ctx.db.exec('INSERT INTO user_nodes (user_id, node_id) VALUES (?, ?) ON CONFLICT DO NOTHING', [userId, nodeId]));
  }

  async unassignNode(userId: string, nodeId: string): Promise<boolean> {
    return (await changing(this.#ctx, this.#ctx.db.exec('DELETE FROM user_nodes WHERE user_id = ? AND node_id = ?', [userId, nodeId]))) === 1;
  }

  async assignSite(userId: string, siteId: string): Promise<void> {
    await changing(this.#ctx, this.#ctx.db.exec('INSERT INTO user_sites (user_id, site_id) VALUES (?, ?) ON CONFLICT DO NOTHING', [userId, siteId]));
  }

  async unassignSite(userId: string, siteId: string): Promise<boolean> {
    return (await changing(this.#ctx, this.#ctx.db.exec('DELETE FROM user_sites WHERE user_id = ? AND site_id = ?', [userId, siteId]))) === 1;
  }

  async assignedNodeIds(userId: string): Promise<string[]> {
    return (await this.#ctx.db.query<Raw>('SELECT node_id FROM user_nodes WHERE user_id = ? ORDER BY node_id', [userId])).map((r) => str(r.node_id));
  }

  async assignedSiteIds(userId: string): Promise<string[]> {
    return (await this.#ctx.db.query<Raw>('SELECT site_id FROM user_sites WHERE user_id = ? ORDER BY site_id', [userId])).map((r) => str(r.site_id));
  }

  /**
   * Whether the user is assigned the site, directly or through its node. Roles are the
   * caller's business: a super_admin reaches every site without assignments.
   */
  async isAssignedSite(userId: string, siteId: string): Promise<boolean> {
    const row = await this.#ctx.db.get<Raw>(
      `SELECT 1 AS ok FROM sites s WHERE s.id = ? AND (
         EXISTS (SELECT 1 FROM user_sites us WHERE us.user_id = ? AND us.site_id = s.id)
         OR EXISTS (SELECT 1 FROM user_nodes un WHERE un.user_id = ? AND un.node_id = s.node_id))`,
      [siteId, userId, userId],
    );
    return row !== undefined;
  }

  async isAssignedNode(userId: string, nodeId: string): Promise<boolean> {
    return (await this.#ctx.db.get<Raw>('SELECT 1 AS ok FROM user_nodes WHERE user_id = ? AND node_id = ?', [userId, nodeId])) !== undefined;
  }
}
