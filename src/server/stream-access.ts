import type { FastifyRequest } from 'fastify';
import { authorize } from './auth/roles.ts';
import type { ServerContext } from './context.ts';
import { principalOf } from './route.ts';

// Long-lived responses (the backup event stream) were authorised once, when they opened. A
// password change, a disabled user, a revoked token or a removed assignment must end them too:
// each stream re-authenticates its request and re-checks its access every recheckMs (this is
// what holds across several servers on one PostgreSQL: nothing is cached, the database
// decides), and at once when a route in this process calls accessChanged() for its user.

/** How often an open stream re-checks its caller; tests shorten it. */
export const streamAccessTiming = { recheckMs: 2_000 };

/** Tells this process's open streams of userId to re-check now (other servers notice on their next period). */
export function accessChanged(ctx: ServerContext, userId: string): void {
  ctx.accessWatchers.emit(userId);
}

export interface GuardedSite {
  id: string;
  nodeId: string;
}

/**
 * Calls onLost once when the request's token no longer authenticates or its user may no longer
 * read the site (a failed check counts as lost: the client reconnects and is checked afresh).
 * Returns the function that stops watching; call it when the stream ends.
 */
export function guardStream(ctx: ServerContext, req: FastifyRequest, userId: string, site: GuardedSite, onLost: () => void): () => void {
  let stopped = false;
  let checking = false;
  let again = false;
  const allowed = async (): Promise<boolean> => {
    try {
      const p = await principalOf(req, ctx);
      return p?.kind === 'user' && p.userId === userId && authorize(p, 'site.read', { nodeId: site.nodeId, siteId: site.id }) === 'allow';
    } catch (err) {
      req.log.warn({ err, siteId: site.id }, 'event stream: re-checking access failed; ending the stream');
      return false;
    }
  };
  // One check at a time; a change announced meanwhile is checked right after.
  const check = async (): Promise<void> => {
    if (stopped) return;
    if (checking) {
      again = true;
      return;
    }
    checking = true;
    let ok: boolean;
    do {
      again = false;
      ok = await allowed();
    } while (ok && again && !stopped);
    checking = false;
    if (!ok && !stopped) {
      stop();
      onLost();
    }
  };
  const listener = (): void => void check();
  const unlisten = ctx.accessWatchers.add(userId, listener);
  const timer = setInterval(listener, streamAccessTiming.recheckMs);
  function stop(): void {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    unlisten();
  }
  return stop;
}
