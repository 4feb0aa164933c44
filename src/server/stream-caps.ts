import type { FastifyReply } from 'fastify';
import { ApiError } from './api-error.ts';
import { onClose } from './on-close.ts';

// Caps on connections one caller holds open: event streams (per user and in total) and agent
// long-polls (per node key). Counted in this process only: with several servers behind a
// load balancer each enforces its own caps, so a user may hold up to perKey streams on each.
// That bounds what one caller costs a process, which is the point (memory, sockets, timers).

export interface StreamLimits {
  /** Event streams one user may hold open at once (GET /sites/{id}/backup/events). */
  streamsPerUser: number;
  /** Event streams this process serves at once, all users together. */
  streamsTotal: number;
  /** Long-polls one node key may hold open at once (POST /agent/poll). */
  pollsPerNode: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { streamsPerUser: 10, streamsTotal: 1000, pollsPerNode: 4 };

/** Seconds a refused caller is told to wait (Retry-After): about as long as a slot takes to free. */
const RETRY_AFTER_SEC = 5;

export class ConcurrencyCap {
  readonly #perKey: number;
  readonly #total: number;
  readonly #held = new Map<string, number>();
  #sum = 0;

  constructor(perKey: number, total = Number.POSITIVE_INFINITY) {
    this.#perKey = perKey;
    this.#total = total;
  }

  /** A slot for key, or why there is none. The release function is safe to call more than once. */
  acquire(key: string): { release: () => void } | { refused: 'key' | 'total'; limit: number } {
    const mine = this.#held.get(key) ?? 0;
    if (mine >= this.#perKey) return { refused: 'key', limit: this.#perKey };
    if (this.#sum >= this.#total) return { refused: 'total', limit: this.#total };
    this.#held.set(key, mine + 1);
    this.#sum++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#sum--;
        const left = (this.#held.get(key) ?? 1) - 1;
        if (left <= 0) this.#held.delete(key);
        else this.#held.set(key, left);
      },
    };
  }

  /** Slots held by key, or by everyone (tests, metrics). */
  held(key?: string): number {
    return key === undefined ? this.#sum : (this.#held.get(key) ?? 0);
  }
}

export interface Caps {
  streams: ConcurrencyCap;
  polls: ConcurrencyCap;
}

export function createCaps(l: StreamLimits): Caps {
  return { streams: new ConcurrencyCap(l.streamsPerUser, l.streamsTotal), polls: new ConcurrencyCap(l.pollsPerNode) };
}

/**
 * Takes a slot or throws 429 with Retry-After. The slot is released when the response closes
 * (client hang-up, normal end, server close): the caller may release earlier as well.
 */
export function holdSlot(cap: ConcurrencyCap, key: string, reply: FastifyReply, what: { thing: string; holder: string; option: string; totalOption?: string }): () => void {
  const got = cap.acquire(key);
  if ('refused' in got) {
    void reply.header('retry-after', String(RETRY_AFTER_SEC));
    const message =
      got.refused === 'key'
        ? `Too many open ${what.thing}: ${what.holder} may hold ${got.limit} at once (server option ${what.option}); close one or retry in ${RETRY_AFTER_SEC} s`
        : `This server is serving its maximum of ${got.limit} ${what.thing} (server option ${what.totalOption ?? what.option}); retry in ${RETRY_AFTER_SEC} s`;
    throw new ApiError(429, 'too_many_streams', message, { limit: got.limit, scope: got.refused === 'key' ? 'caller' : 'server' });
  }
  onClose(reply.raw, got.release); // also when the client hung up before this handler ran
  return got.release;
}
