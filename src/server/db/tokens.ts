import { bool, changing, newId, num, numOrNull, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';
import type { Role, UserRow } from './users.ts';
import { prefixed, unprefixed } from './joined.ts';
import { SITE_COLUMNS, toSite, type SiteRow } from './sites.ts';

// Bearer tokens: login sessions and long-lived API tokens. Only a hash of each is stored;
// a request is authenticated by hashing its token and looking the hash up (tokens_token_hash).

export type TokenKind = 'session' | 'api';

export interface TokenRow {
  id: string;
  userId: string;
  kind: TokenKind;
  name: string | null;
  /** null: never expires (API tokens may). */
  expiresAt: number | null;
  createdAt: number;
  lastUsedAt: number | null;
}

export interface NewToken {
  userId: string;
  tokenHash: string;
  kind: TokenKind;
  name?: string | null;
  expiresAt?: number | null;
}

const COLUMNS = 'id, user_id, kind, name, expires_at, created_at, last_used_at';

function toToken(r: Raw): TokenRow {
  return {
    id: str(r.id),
    userId: str(r.user_id),
    kind: r.kind as TokenKind,
    name: strOrNull(r.name),
    expiresAt: numOrNull(r.expires_at),
    createdAt: num(r.created_at),
    lastUsedAt: numOrNull(r.last_used_at),
  };
}

/** A token row with its user's columns, and the rule that makes a token good: one place for both reads. */
const AUTH_COLUMNS = 't.id, t.user_id, t.kind, t.name, t.expires_at, t.created_at, t.last_used_at, u.email, u.role, u.disabled, u.created_at AS user_created_at';
const AUTH_WHERE = 't.token_hash = ? AND (t.expires_at IS NULL OR t.expires_at > ?) AND u.disabled = 0';
const AUTHENTICATE = `SELECT ${AUTH_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id WHERE ${AUTH_WHERE}`;
const WITH_SITE = `SELECT ${AUTH_COLUMNS}, ${prefixed(SITE_COLUMNS, 's', 's_')}
  FROM tokens t JOIN users u ON u.id = t.user_id LEFT JOIN sites s ON s.id = ? WHERE ${AUTH_WHERE}`;

/** A row of tokens joined with its user, as authenticate() returns it. */
function authenticated(row: Raw): { token: TokenRow; user: UserRow } {
  const token = toToken(row);
  return { token, user: { id: token.userId, email: str(row.email), role: row.role as Role, disabled: bool(row.disabled), createdAt: num(row.user_created_at) } };
}

export class TokensRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  async create(t: NewToken): Promise<TokenRow> {
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO tokens (id, user_id, token_hash, kind, name, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
      [newId(), t.userId, t.tokenHash, t.kind, t.name, t.expiresAt, this.#ctx.now()],
    );
    return toToken(row as Raw);
  }

  /**
   * The unexpired token with this hash and its user, in one indexed lookup: every request's path.
   * The server keeps what this finds for a moment (auth/auth-cache.ts): a token revoked or a user
   * disabled here is refused from the next request on; by another server, within its cache's window. A disabled user's tokens are also deleted; the check is the backstop.
   */
  async authenticate(tokenHash: string): Promise<{ token: TokenRow; user: UserRow } | undefined> {
    const row = await this.#ctx.db.get<Raw>(AUTHENTICATE, [tokenHash, this.#ctx.now()]);
    return row && authenticated(row);
  }

  /**
   * authenticate() and the site siteId (undefined: no such site) in one query: a status read's
   * authentication and its site in one round trip (route.ts, prefetchSite).
   */
  async authenticateWithSite(tokenHash: string, siteId: string): Promise<{ token: TokenRow; user: UserRow; site: SiteRow | undefined } | undefined> {
    const row = await this.#ctx.db.get<Raw>(WITH_SITE, [siteId, tokenHash, this.#ctx.now()]);
    if (!row) return undefined;
    const site = unprefixed(row, 's_');
    return { ...authenticated(row), site: site && toSite(site) };
  }

  /** Records use, at most once per minGapMs, so authenticated reads do not all become writes. */
  async touch(id: string, minGapMs = 60_000): Promise<boolean> {
    const now = this.#ctx.now();
    const sql = 'UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)';
    return (await this.#ctx.db.relaxed.exec(sql, [now, id, now - minGapMs])) === 1;
  }

  async listForUser(userId: string): Promise<TokenRow[]> {
    return (await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM tokens WHERE user_id = ? ORDER BY created_at, id`, [userId])).map(toToken);
  }

  async get(id: string): Promise<TokenRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM tokens WHERE id = ?`, [id]);
    return row && toToken(row);
  }

  /** With userId, only that user's token is revoked (someone else's id is "not found"). */
  async revoke(id: string, userId?: string): Promise<boolean> {
    const n = await changing(this.#ctx, userId === undefined
      ? this.#ctx.db.exec('DELETE FROM tokens WHERE id = ?', [id])
      : this.#ctx.db.exec('DELETE FROM tokens WHERE id = ? AND user_id = ?', [id, userId]));
    return n === 1;
  }

  /** Ends a user's tokens (all kinds unless told), except the one with id exceptId; returns how many. */
  async revokeForUser(userId: string, o: { exceptId?: string; kind?: TokenKind } = {}): Promise<number> {
    const where = ['user_id = ?'];
    const params: string[] = [userId];
    if (o.exceptId !== undefined) {
      where.push('id <> ?');
      params.push(o.exceptId);
    }
    if (o.kind !== undefined) {
      where.push('kind = ?');
      params.push(o.kind);
    }
    return changing(this.#ctx, this.#ctx.db.exec(`DELETE FROM tokens WHERE ${where.join(' AND ')}`, params));
  }

  /**
   * Ends the sessions of users in `roles` (of one user, given userId) who have no second factor
   * on: signed in before their role required one, they sign in again and enroll. API tokens
   * stay: a user made them on purpose, for scripts that have no second factor to give.
   */
  async revokeSessionsWithoutMfa(roles: readonly Role[], userId?: string): Promise<number> {
    if (roles.length === 0) return 0;
    const params: string[] = [...roles];
    let sql = `DELETE FROM tokens WHERE kind = 'session'
      AND user_id IN (SELECT id FROM users WHERE role IN (${roles.map(() => '?').join(', ')}))
      AND user_id NOT IN (SELECT user_id FROM user_mfa WHERE enabled_at IS NOT NULL)`;
    if (userId !== undefined) {
      sql += ' AND user_id = ?';
      params.push(userId);
    }
    return changing(this.#ctx, this.#ctx.db.exec(sql, params));
  }

  async revokeByHash(tokenHash: string): Promise<boolean> {
    return (await changing(this.#ctx, this.#ctx.db.exec('DELETE FROM tokens WHERE token_hash = ?', [tokenHash]))) === 1;
  }

  async deleteExpired(): Promise<number> {
    return this.#ctx.db.exec('DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= ?', [this.#ctx.now()]);
  }
}
