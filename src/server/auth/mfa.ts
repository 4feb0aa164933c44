import { randomBytes } from 'node:crypto';
import type { ChallengePurpose, ChallengeRow, MfaRepo } from '../db/mfa.ts';
import type { SecretBox } from '../db/secrets.ts';
import type { Role } from '../db/users.ts';
import { hashToken } from './tokens.ts';
import { base32Decode, base32Encode, matchTotp, newTotpSecret, otpauthUri } from './totp.ts';

// A user's second factor: TOTP enrollment (secret and otpauth:// URI, confirmed by a first code),
// checking a code (TOTP, each step once; or a recovery code, each once), and the sign-in
// challenges between a right password and a right code. The secret is kept encrypted by the
// server's secret box, bound to the user's row; recovery codes and challenge ids as SHA-256
// hashes (like tokens: 80 and 256 random bits, nothing to guess back from a hash).

export const RECOVERY_CODES = 10;
export const CHALLENGE_TTL_MS = { verify: 5 * 60_000, enroll: 15 * 60_000 } as const;
/** Wrong codes one challenge takes before it is gone (the rate limits bound the rest). */
export const CHALLENGE_MAX_FAILURES = 5;

export type CodeKind = 'totp' | 'recovery';

export interface MfaStatus {
  enabled: boolean;
  pending: boolean;
  recoveryCodesLeft: number;
}

export class MfaService {
  readonly #repo: MfaRepo;
  readonly #secrets: SecretBox;
  readonly #now: () => number;
  readonly #requiredFor: ReadonlySet<Role>;
  #lastCleanup = 0;

  constructor(o: { repo: MfaRepo; secrets: SecretBox; now?: () => number; requiredFor?: readonly Role[] }) {
    this.#repo = o.repo;
    this.#secrets = o.secrets;
    this.#now = o.now ?? Date.now;
    this.#requiredFor = new Set(o.requiredFor ?? []);
  }

  isRequired(role: Role): boolean {
    return this.#requiredFor.has(role);
  }

  /** The roles that must sign in with a second factor. */
  get requiredRoles(): Role[] {
    return [...this.#requiredFor];
  }

  async status(userId: string): Promise<MfaStatus> {
    const row = await this.#repo.get(userId);
    const enabled = row?.enabledAt != null;
    return { enabled, pending: row !== undefined && !enabled, recoveryCodesLeft: enabled ? await this.#repo.recoveryCodesLeft(userId) : 0 };
  }

  /** A new secret awaiting its first code; undefined when MFA is already on (disable it first). */
  async startEnrollment(userId: string, email: string): Promise<{ secret: string; otpauthUri: string } | undefined> {
    const secret = base32Encode(newTotpSecret());
    if (!(await this.#repo.setPending(userId, this.#secrets.encrypt(secret, context(userId))))) return undefined;
    return { secret, otpauthUri: otpauthUri(secret, email) };
  }

  /**
   * Confirms enrollment with a first code: MFA is on and the recovery codes, returned here and
   * never again, replace any earlier ones. 'none' when nothing awaits confirmation, 'wrong' for a bad code.
   */
  async confirmEnrollment(userId: string, code: string): Promise<string[] | 'none' | 'wrong'> {
    const row = await this.#repo.get(userId);
    if (!row || row.enabledAt !== null) return 'none';
    const step = matchTotp(this.#secretOf(row.userId, row.secretEnc), code.trim(), this.#now(), null);
    if (step === undefined) return 'wrong';
    const codes = Array.from({ length: RECOVERY_CODES }, newRecoveryCode);
    if (!(await this.#repo.activate(userId, step, codes.map((c) => hashToken(normalizeRecovery(c)))))) return 'none';
    return codes;
  }

  /** Which kind of code it was when it is right (and now used up); undefined otherwise. */
  async verify(userId: string, code: string): Promise<CodeKind | undefined> {
    const row = await this.#repo.get(userId);
    if (!row || row.enabledAt === null) return undefined;
    const text = code.trim();
    if (/^\d{6}$/.test(text)) {
      const step = matchTotp(this.#secretOf(row.userId, row.secretEnc), text, this.#now(), row.lastStep);
      return step !== undefined && (await this.#repo.useStep(userId, step)) ? 'totp' : undefined;
    }
    const norm = normalizeRecovery(text);
    if (!/^[a-z2-7]{16}$/.test(norm)) return undefined;
    return (await this.#repo.useRecoveryCode(userId, hashToken(norm))) ? 'recovery' : undefined;
  }

  async disable(userId: string): Promise<boolean> {
    return this.#repo.remove(userId);
  }

  /** A challenge id for the second step of a sign-in; only its hash is stored. */
  async newChallenge(userId: string, purpose: ChallengePurpose): Promise<{ challenge: string; expiresAt: number }> {
    const challenge = randomBytes(32).toString('base64url');
    const now = this.#now();
    const expiresAt = now + CHALLENGE_TTL_MS[purpose];
    // Expired challenges go now and then, by whichever server makes one (at most every 10 minutes each).
    if (now - this.#lastCleanup >= 10 * 60_000) {
      this.#lastCleanup = now;
      void this.#repo.deleteExpiredChallenges().catch(() => {});
    }
    await this.#repo.createChallenge({ idHash: hashToken(challenge), userId, purpose, expiresAt });
    return { challenge, expiresAt };
  }

  async challenge(challenge: string): Promise<ChallengeRow | undefined> {
    return this.#repo.getChallenge(hashToken(challenge));
  }

  async challengeFailed(challenge: string): Promise<void> {
    await this.#repo.failChallenge(hashToken(challenge), CHALLENGE_MAX_FAILURES);
  }

  async consumeChallenge(challenge: string): Promise<boolean> {
    return this.#repo.consumeChallenge(hashToken(challenge));
  }

  #secretOf(userId: string, enc: string): Buffer {
    return base32Decode(this.#secrets.decrypt(enc, context(userId)));
  }
}

const context = (userId: string): string => `user_mfa:${userId}`;

/** 16 base32 characters (80 bits) shown as four groups: "abcd-efgh-ijkl-mnop". */
function newRecoveryCode(): string {
  return base32Encode(randomBytes(10)).toLowerCase().match(/.{4}/g)?.join('-') ?? '';
}

function normalizeRecovery(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, '');
}
