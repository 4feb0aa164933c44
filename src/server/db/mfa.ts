import { num, numOrNull, str } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';
import type { Role } from './users.ts';

// Second factors: a user's TOTP secret (encrypted by the caller; this layer never sees it plain),
// their one-time recovery codes (hashes only) and the short-lived challenges between a right
// password and a right code (hashes of their ids only). Every "use once" is one conditional
// UPDATE or DELETE, so two servers racing with the same code or challenge cannot both win.

export interface MfaRow {
  userId: string;
  secretEnc: string;
  /** null while the secret waits for its first code (enrollment not confirmed). */
  enabledAt: number | null;
  lastStep: number | null;
}

export type ChallengePurpose = 'verify' | 'enroll';

export interface ChallengeRow {
  userId: string;
  email: string;
  role: Role;
  purpose: ChallengePurpose;
  failures: number;
  expiresAt: number;
}

export class MfaRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  async get(userId: string): Promise<MfaRow | undefined> {
    const r = await this.#ctx.db.get<Raw>('SELECT user_id, secret_enc, enabled_at, last_step FROM user_mfa WHERE user_id = ?', [userId]);
    return r && { userId: str(r.user_id), secretEnc: str(r.secret_enc), enabledAt: numOrNull(r.enabled_at), lastStep: numOrNull(r.last_step) };
  }

  /** Stores a secret awaiting confirmation, replacing an earlier pending one; false when MFA is already on. */
  async setPending(userId: string, secretEnc: string): Promise<boolean> {
    const n = await this.#ctx.db.exec(
      `INSERT INTO user_mfa (user_id, secret_enc, created_at) VALUES (?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET secret_enc = excluded.secret_enc, created_at = excluded.created_at, last_step = NULL
       WHERE user_mfa.enabled_at IS NULL`,
      [userId, secretEnc, this.#ctx.now()],
    );
    return n === 1;
  }

  /** Turns the pending secret on, with the step its first code used and fresh recovery codes. */
  async activate(userId: string, step: number, codeHashes: readonly string[]): Promise<boolean> {
    return this.#ctx.db.transaction(async (tx) => {
      const n = await tx.exec('UPDATE user_mfa SET enabled_at = ?, last_step = ? WHERE user_id = ? AND enabled_at IS NULL', [this.#ctx.now(), step, userId]);
      if (n !== 1) return false;
      await tx.exec('DELETE FROM mfa_recovery_codes WHERE user_id = ?', [userId]);
      for (const h of codeHashes) await tx.exec('INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES (?, ?)', [userId, h]);
      return true;
    });
  }

  /** Records a code's step as used; false if it (or a later one) already was: a code works once. */
  async useStep(userId: string, step: number): Promise<boolean> {
    const sql = 'UPDATE user_mfa SET last_step = ? WHERE user_id = ? AND enabled_at IS NOT NULL AND (last_step IS NULL OR last_step < ?)';
    return (await this.#ctx.db.exec(sql, [step, userId, step])) === 1;
  }

  async useRecoveryCode(userId: string, codeHash: string): Promise<boolean> {
    const sql = 'UPDATE mfa_recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL';
    return (await this.#ctx.db.exec(sql, [this.#ctx.now(), userId, codeHash])) === 1;
  }

  async recoveryCodesLeft(userId: string): Promise<number> {
    return num((await this.#ctx.db.get<Raw>('SELECT COUNT(*) AS n FROM mfa_recovery_codes WHERE user_id = ? AND used_at IS NULL', [userId]))?.n);
  }

  /** MFA off: the secret and the recovery codes go; false when there was nothing. */
  async remove(userId: string): Promise<boolean> {
    return this.#ctx.db.transaction(async (tx) => {
      await tx.exec('DELETE FROM mfa_recovery_codes WHERE user_id = ?', [userId]);
      await tx.exec('DELETE FROM login_challenges WHERE user_id = ?', [userId]);
      return (await tx.exec('DELETE FROM user_mfa WHERE user_id = ?', [userId])) === 1;
    });
  }

  async createChallenge(c: { idHash: string; userId: string; purpose: ChallengePurpose; expiresAt: number }): Promise<void> {
    await this.#ctx.db.exec('INSERT INTO login_challenges (id_hash, user_id, purpose, expires_at, created_at) VALUES (?, ?, ?, ?, ?)', [c.idHash, c.userId, c.purpose, c.expiresAt, this.#ctx.now()]);
  }

  /** The live challenge with this hash, with its user's email and role. */
  async getChallenge(idHash: string): Promise<ChallengeRow | undefined> {
    const r = await this.#ctx.db.get<Raw>(
      `SELECT c.user_id, c.purpose, c.failures, c.expires_at, u.email, u.role FROM login_challenges c JOIN users u ON u.id = c.user_id
       WHERE c.id_hash = ? AND c.expires_at > ?`,
      [idHash, this.#ctx.now()],
    );
    return r && { userId: str(r.user_id), email: str(r.email), role: r.role as Role, purpose: r.purpose as ChallengePurpose, failures: num(r.failures), expiresAt: num(r.expires_at) };
  }

  /** Counts a wrong code against the challenge; at `max` wrong codes the challenge is gone. */
  async failChallenge(idHash: string, max: number): Promise<void> {
    await this.#ctx.db.exec('UPDATE login_challenges SET failures = failures + 1 WHERE id_hash = ?', [idHash]);
    await this.#ctx.db.exec('DELETE FROM login_challenges WHERE id_hash = ? AND failures >= ?', [idHash, max]);
  }

  /** Uses the challenge up; true for exactly one caller while it is live. */
  async consumeChallenge(idHash: string): Promise<boolean> {
    return (await this.#ctx.db.exec('DELETE FROM login_challenges WHERE id_hash = ? AND expires_at > ?', [idHash, this.#ctx.now()])) === 1;
  }

  async deleteExpiredChallenges(): Promise<number> {
    return this.#ctx.db.exec('DELETE FROM login_challenges WHERE expires_at <= ?', [this.#ctx.now()]);
  }
}
