// Login throttling, in memory: a sliding window per (client, email) and a wider one per client, so one address
// can neither hammer one account nor spray many. Use:
//
//   const v = limiter.attempt(ip, email);          // before checking the password
//   if (!v.ok) → 429 with Retry-After: v.retryAfterSec
//   if (await verifyPassword(...)) limiter.succeeded(ip, email);
//
// attempt() counts the try as a failure straight away: a burst of parallel requests would otherwise all pass
// the check before the first slow password hash finished. succeeded() takes it back.

import { isIP } from 'node:net';

export interface LoginLimiterOptions {
  /** Failures allowed per (client, email) within the window. */
  perEmail?: number;
  /** Failures allowed per client, over all emails, within the window. */
  perClient?: number;
  windowMs?: number;
  /** Keys kept at most; beyond it the least recently failed go first. */
  maxKeys?: number;
  now?: () => number;
}

export type LimitVerdict = { ok: true } | { ok: false; retryAfterSec: number };

export class LoginLimiter {
  readonly #perEmail: number;
  readonly #perClient: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  // key → failure times, ascending, at most `limit` of them. Map order is last-failure order (a key is re-inserted
  // on each failure) and every key shares one window, so expired keys are always at the front.
  readonly #failures = new Map<string, number[]>();

  constructor(opts: LoginLimiterOptions = {}) {
    this.#perEmail = opts.perEmail ?? 5;
    this.#perClient = opts.perClient ?? 20;
    this.#windowMs = opts.windowMs ?? 15 * 60 * 1000;
    this.#maxKeys = opts.maxKeys ?? 50_000;
    this.#now = opts.now ?? Date.now;
  }

  /** How many keys are held (for tests and metrics). */
  get size(): number {
    return this.#failures.size;
  }

  attempt(ip: string, email: string): LimitVerdict {
    const now = this.#now();
    this.#evict(now);
    const keys = keysFor(ip, email);
    const wait = Math.max(this.#wait(keys.pair, this.#perEmail, now), this.#wait(keys.client, this.#perClient, now));
    if (wait > 0) return { ok: false, retryAfterSec: Math.max(1, Math.ceil(wait / 1000)) };
    this.#record(keys.pair, this.#perEmail, now);
    this.#record(keys.client, this.#perClient, now);
    return { ok: true };
  }

  /** The password was right: forget this pair's failures and give the client back the attempt. */
  succeeded(ip: string, email: string): void {
    const keys = keysFor(ip, email);
    this.#failures.delete(keys.pair);
    const client = this.#failures.get(keys.client);
    client?.pop();
    if (client?.length === 0) this.#failures.delete(keys.client);
  }

  // Milliseconds until the key has a free slot; 0 if it has one now.
  #wait(key: string, limit: number, now: number): number {
    const times = this.#live(key, now);
    const oldest = times.length >= limit ? times[times.length - limit] : undefined;
    return oldest === undefined ? 0 : oldest + this.#windowMs - now;
  }

  #live(key: string, now: number): number[] {
    const times = this.#failures.get(key) ?? [];
    while (times.length > 0 && (times[0] ?? 0) <= now - this.#windowMs) times.shift();
    return times;
  }

  #record(key: string, limit: number, now: number): void {
    const times = this.#live(key, now);
    times.push(now);
    if (times.length > limit) times.shift();
    this.#failures.delete(key);
    this.#failures.set(key, times);
    if (this.#failures.size > this.#maxKeys) this.#failures.delete(this.#failures.keys().next().value ?? '');
  }

  // Amortised O(1): only ever looks at the front, where the stalest keys are.
  #evict(now: number): void {
    for (const [key, times] of this.#failures) {
      const last = times[times.length - 1];
      if (last !== undefined && last > now - this.#windowMs) return;
      this.#failures.delete(key);
    }
  }
}

function keysFor(ip: string, email: string): { pair: string; client: string } {
  const client = clientKey(ip);
  return { pair: `p ${client} ${email.trim().toLowerCase()}`, client: `c ${client}` };
}

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
