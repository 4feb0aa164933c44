import type { FastifyInstance } from 'fastify';
import { buildApp, type AppOptions } from './app.ts';
import { openContext, type ContextOptions, type ServerContext } from './context.ts';
import { startMetricsListener, type MetricsListener } from './metrics-listener.ts';
import { authListener } from './auth/auth-notify.ts';
import { startPgJobListener, type PgJobListener } from './pg-job-listener.ts';
import { startReaper } from './reaper.ts';
import { startAlerts } from './alerts/pass.ts';
import { ReleaseStack } from './release-stack.ts';
import { startDeletionRetrier, type DeletionRetrier } from './retention/deletion.ts';
import { pruneAfterBackups } from './retention/prune.ts';
import { startScheduler } from './scheduler.ts';

// The server context (context.ts), the HTTP API, the reaper and, on PostgreSQL, the LISTEN
// connection for other servers' jobs. Shared by `wpbackup server` and the tests. Whatever
// was started is stopped again, newest first: at close(), and when the start fails half-way.

export interface StartOptions extends AppOptions, Omit<ContextOptions, 'publicUrl'> {
  port: number;
  host: string;
  publicUrl?: string;
  /** HOST:PORT to serve GET /metrics on without a token (`--metrics-listen`). */
  metricsListen?: string;
}

export interface RunningServer {
  app: FastifyInstance;
  ctx: ServerContext;
  url: string;
  /** The LISTEN connection for jobs queued by other servers (PostgreSQL only). */
  jobListener?: PgJobListener;
  /** Retries failed backup deletions (retention/deletion.ts); tests stop its timer and call runOnce(). */
  deletionRetrier: DeletionRetrier;
  /** The token-less metrics address, with metricsListen. */
  metricsListener?: MetricsListener;
  close(): Promise<void>;
}

export async function startServer(o: StartOptions): Promise<RunningServer> {
  const boundUrl = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
  const held = new ReleaseStack();
  try {
    const ctx = await openContext({ ...o, publicUrl: o.publicUrl ?? boundUrl });
    held.defer(() => ctx.close());
    await endSessionsWithoutRequiredMfa(ctx);
    const app = await buildApp(ctx, o);
    held.defer(() => app.close());
    // Fails jobs whose agent stopped reporting and aborts their uploads; safe on every server.
    const reaper = startReaper(ctx);
    held.defer(() => reaper.stop());
    // Retention: a prune after each completed backup, and retries of deletions that failed.
    held.defer(pruneAfterBackups(ctx));
    const retrier = startDeletionRetrier(ctx);
    held.defer(() => retrier.stop());
    // Alerts on ended jobs, and the pass for stale sites, offline agents, reminders and retries.
    const alerts = startAlerts(ctx);
    held.defer(() => alerts.stop());
    // Queues scheduled backups; each due run once across every server (scheduler.ts).
    const scheduler = startScheduler(ctx);
    held.defer(() => scheduler.stop());
    // Other servers on the same PostgreSQL announce the jobs they queue and the credentials they
    // change (auth/auth-notify.ts); SQLite has only this process.
    const listener = ctx.db.dialect === 'postgres' && o.databaseUrl ? startPgJobListener(o.databaseUrl, ctx.jobNotifier, (m, err) => ctx.log.warn({ err }, m), [authListener(ctx.authCache)]) : undefined;
    if (listener) held.defer(() => listener.close());
    // Waiting polls end first, so closing the app need not wait for them.
    held.defer(() => ctx.jobNotifier.close());
    await listener?.ready;
    await app.listen({ port: o.port, host: o.host });
    const metricsListener = o.metricsListen ? await startMetricsListener(o.metricsListen, ctx.metrics, ctx.log) : undefined;
    if (metricsListener) held.defer(() => metricsListener.close());
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : o.port;
    const url = o.publicUrl ?? `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
    ctx.config.publicUrl = url;
    return { app, ctx, url, jobListener: listener, deletionRetrier: retrier, metricsListener, close: () => held.releaseAll() };
  } catch (err) {
    await held.releaseAll().catch(() => undefined);
    throw err;
  }
}

/**
 * A server started with --require-mfa ends the sessions that users of those roles opened
 * without a second factor: else a session from before the flag would outlive it for its whole
 * lifetime. They sign in again and enroll; audited as one entry.
 */
async function endSessionsWithoutRequiredMfa(ctx: ServerContext): Promise<void> {
  const roles = ctx.mfa.requiredRoles;
  const ended = await ctx.repos.tokens.revokeSessionsWithoutMfa(roles);
  if (ended === 0) return;
  await ctx.repos.audit.record({ userId: null, action: 'auth.sessions_ended', targetType: 'server', targetId: null, detail: { reason: 'second factor required', roles, sessions: ended } });
  ctx.log.info({ roles, sessions: ended }, 'ended sessions opened without the second factor these roles now require');
}
