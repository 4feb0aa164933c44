import { num, str } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// Sign-in failure counters in the database, so every server on one PostgreSQL counts together.
// Each key is a fixed window that opens at its first failure and closes windowMs later; a failure
// after it closed opens a new one. The policy (which keys, what limits) is auth/rate-limit.ts's.

export interface Charge {
  key: string;
  limit: number;
  windowMs: number;
}

/** When refused: the key that is over its limit (the one freeing last) and how long until it frees. */
export type ChargeResult = { ok: true } | { ok: false; retryAfterMs: number; key: string };

/** Thrown inside the transaction to roll every counter back when one key is over its limit. */
class OverLimit extends Error {
  readonly retryAfterMs: number;
  readonly key: string;

  constructor(retryAfterMs: number, key: string) {
    super('over limit');
    this.retryAfterMs = retryAfterMs;
    this.key = key;
  }
}

export class LoginThrottleRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  /**
   * Counts one failure against every key, all or nothing: when any key is over its limit nothing
   * is counted (refused attempts never extend a lock) and the result says how long until it frees.
   * One upsert in one transaction; on PostgreSQL its row locks serialize concurrent attempts on a
   * key across servers, so a burst cannot slip past the limit. Keys go in sorted order (no deadlock).
   */
  async charge(charges: readonly Charge[]): Promise<ChargeResult> {
    if (charges.length === 0) return { ok: true };
    const now = this.#ctx.now();
    const sorted = [...charges].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const values = sorted.map(() => '(?, 1, ?)').join(', ');
    const sql = `INSERT INTO login_throttle (key, failures, window_end) VALUES ${values}
      ON CONFLICT (key) DO UPDATE SET
        failures = CASE WHEN login_throttle.window_end <= ? THEN 1 ELSE login_throttle.failures + 1 END,
        window_end = CASE WHEN login_throttle.window_end <= ? THEN excluded.window_end ELSE login_throttle.window_end END
      RETURNING key, failures, window_end`;
    const params = [...sorted.flatMap((c) => [c.key, now + c.windowMs]), now, now];
    try {
      await this.#ctx.db.transaction(async (tx) => {
        const rows = await tx.query<Raw>(sql, params);
        let over: OverLimit | undefined;
        for (const r of rows) {
          const c = sorted.find((x) => x.key === str(r.key));
          const wait = num(r.window_end) - now;
          if (c && num(r.failures) > c.limit && wait > (over?.retryAfterMs ?? 0)) over = new OverLimit(wait, c.key);
        }
        if (over) throw over;
      });
      return { ok: true };
    } catch (err) {
      if (err instanceof OverLimit) return { ok: false, retryAfterMs: err.retryAfterMs, key: err.key };
      throw err;
    }
  }

  /**
   * After a success: forgets the failures of `forget`, gives one failure back to each of
   * `refund` (the one charged for this attempt), and marks `remember` live until its expiry.
   */
  async settle(o: { forget: readonly string[]; refund: readonly string[]; remember?: { key: string; untilMs: number } }): Promise<void> {
    await this.#ctx.db.transaction(async (tx) => {
      for (const key of o.forget) await tx.exec('DELETE FROM login_throttle WHERE key = ?', [key]);
      for (const key of o.refund) await tx.exec('UPDATE login_throttle SET failures = failures - 1 WHERE key = ? AND failures > 0', [key]);
      if (o.remember) {
        await tx.exec(
          'INSERT INTO login_throttle (key, failures, window_end) VALUES (?, 0, ?) ON CONFLICT (key) DO UPDATE SET failures = 0, window_end = excluded.window_end',
          [o.remember.key, o.remember.untilMs],
        );
      }
    });
  }

  /** Whether the key has a live window (for a remembered source: whether it is still known). */
  async isLive(key: string): Promise<boolean> {
    return (await this.#ctx.db.get<Raw>('SELECT 1 AS ok FROM login_throttle WHERE key = ? AND window_end > ?', [key, this.#ctx.now()])) !== undefined;
  }

  /** Failures counted in the key's live window (0 when none); for tests and diagnostics. */
  async failures(key: string): Promise<number> {
    const row = await this.#ctx.db.get<Raw>('SELECT failures FROM login_throttle WHERE key = ? AND window_end > ?', [key, this.#ctx.now()]);
    return row ? num(row.failures) : 0;
  }

  async deleteExpired(): Promise<number> {
    return this.#ctx.db.exec('DELETE FROM login_throttle WHERE window_end <= ?', [this.#ctx.now()]);
  }
}
