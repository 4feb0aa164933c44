// Sign-in throttling, stored in the database (db/login-throttle.ts) so every server on one PostgreSQL
// counts together. Per attempt it charges, all or nothing:
//   s|SOURCE          every failure from one source (an IPv4 address, an IPv6 /64): one source cannot
//                     spray many accounts, and only ever locks out itself;
//   p|SOURCE|EMAIL    failures of one source on one account;
//   a|EMAIL           password failures on one account from sources that have NOT signed in as it
//                     lately: bounds guessing from a whole botnet, while the owner, from a place they
//                     signed in from before (k|SOURCE|EMAIL, kept 30 days), is never locked out by it;
//   m|EMAIL           wrong second-factor codes on one account, from anywhere (only someone who has
//                     the password gets that far).
// Use:
//   const v = await limiter.attempt(ip, email, 'password');   // before checking the password
//   if (!v.ok) → 429 with Retry-After: v.retryAfterSec
//   if (right) await limiter.succeeded(v.ticket, { complete: true });  // complete: a session was issued
// attempt() counts the try as a failure straight away (a burst of parallel requests would otherwise all
// pass before the first slow password hash finished); succeeded() takes it back.

import type { LoginThrottleRepo } from '../db/login-throttle.ts';
import { isIP } from 'node:net';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;

export interface LoginLimits {
  /** Failures per source over all accounts, per window. */
  perSource: number;
  /** Failures per (source, account), per window. */
  perPair: number;
  windowMs: number;
  /** Password failures per account from unknown sources, per accountWindowMs. */
  perAccount: number;
  /** Wrong second-factor codes per account, from anywhere, per accountWindowMs. */
  perAccountMfa: number;
  accountWindowMs: number;
  /** How long a source that signed in as an account stays known for it. */
  knownForMs: number;
}

/** The defaults and their reasoning are in the README's "Sign-in limits". */
export const DEFAULT_LIMITS: Readonly<LoginLimits> = Object.freeze({
  perSource: 20,
  perPair: 5,
  windowMs: 15 * MIN,
  perAccount: 100,
  perAccountMfa: 10,
  accountWindowMs: DAY,
  knownForMs: 30 * DAY,
});

export type LoginStage = 'password' | 'mfa';

export interface LoginTicket {
  source: string;
  email: string;
  stage: LoginStage;
  charged: string[];
}

export type Refusal = { ok: false; retryAfterSec: number; scope: 'source' | 'account' };
export type LimitVerdict = { ok: true; ticket: LoginTicket } | Refusal;

/** The part of the repository the limiter uses. */
export type ThrottleStore = Pick<LoginThrottleRepo, 'charge' | 'settle' | 'isLive' | 'deleteExpired'>;

const CLEANUP_EVERY_MS = 10 * MIN;

export class LoginLimiter {
  readonly #store: ThrottleStore;
  readonly #limits: LoginLimits;
  readonly #now: () => number;
  #lastCleanup: number;

  constructor(store: ThrottleStore, opts: { limits?: Partial<LoginLimits>; now?: () => number } = {}) {
    this.#store = store;
    this.#limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.#now = opts.now ?? Date.now;
    this.#lastCleanup = this.#now();
  }

  get limits(): Readonly<LoginLimits> {
    return this.#limits;
  }

  async attempt(ip: string, rawEmail: string, stage: LoginStage = 'password'): Promise<LimitVerdict> {
    this.#cleanupNowAndThen();
    const L = this.#limits;
    const source = clientKey(ip);
    const email = normalize(rawEmail);
    const charges = [
      { key: `s|${source}`, limit: L.perSource, windowMs: L.windowMs },
      { key: `p|${source}|${email}`, limit: L.perPair, windowMs: L.windowMs },
    ];
    if (stage === 'mfa') charges.push({ key: `m|${email}`, limit: L.perAccountMfa, windowMs: L.accountWindowMs });
    else if (!(await this.#store.isLive(knownKey(source, email)))) charges.push({ key: `a|${email}`, limit: L.perAccount, windowMs: L.accountWindowMs });
    const r = await this.#store.charge(charges);
    if (!r.ok) return { ok: false, retryAfterSec: Math.max(1, Math.ceil(r.retryAfterMs / 1000)), scope: /^[am]\|/.test(r.key) ? 'account' : 'source' };
    return { ok: true, ticket: { source, email, stage, charged: charges.map((c) => c.key) } };
  }

  /**
   * The password (or code) was right: this pair's failures are forgotten and the attempt given back.
   * complete: the sign-in is finished (a session was issued), so the source becomes known for the account.
   */
  async succeeded(t: LoginTicket, o: { complete: boolean }): Promise<void> {
    const pair = `p|${t.source}|${t.email}`;
    await this.#store.settle({
      forget: [pair],
      refund: t.charged.filter((k) => k !== pair),
      remember: o.complete ? { key: knownKey(t.source, t.email), untilMs: this.#now() + this.#limits.knownForMs } : undefined,
    });
  }

  // Dead windows are deleted by whichever server notices first, at most every 10 minutes per process.
  #cleanupNowAndThen(): void {
    const now = this.#now();
    if (now - this.#lastCleanup < CLEANUP_EVERY_MS) return;
    this.#lastCleanup = now;
    void this.#store.deleteExpired().catch(() => {});
  }
}

/** What a refusal tells the caller. */
export function refusalMessage(r: Refusal): string {
  return r.scope === 'account'
    ? `Too many failed sign-ins on this account; try again in ${r.retryAfterSec} s, or from a network you signed in from before`
    : `Too many failed sign-ins; try again in ${r.retryAfterSec} s`;
}

const normalize = (email: string): string => email.trim().toLowerCase();
const knownKey = (source: string, email: string): string => `k|${source}|${email}`;

/**
 * The unit one client is counted as. An IPv4-mapped IPv6 address is its IPv4 address; other IPv6 addresses
 * count by their /64, since anyone with one address usually has the whole /64 to rotate through.
 */
export function clientKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (isIP(ip) !== 6) return ip;
  const [head = '', tail] = ip.toLowerCase().split('%')[0]?.split('::') ?? [];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
