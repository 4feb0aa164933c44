import type { FastifyInstance } from 'fastify';
import { ensureDataDir } from '../datadir.ts';
import { buildApp, type AppOptions } from './app.ts';
import { MfaService } from './auth/mfa.ts';
import { LoginLimiter, type LoginLimits } from './auth/rate-limit.ts';
import type { ServerConfig, ServerContext } from './context.ts';
import { openDb } from './db/open.ts';
import { createRepos } from './db/repos.ts';
import type { Role } from './db/users.ts';
import { openSecretBox } from './db/secrets.ts';
import { JobNotifier } from './job-notifier.ts';
import { startPgJobListener, type PgJobListener } from './pg-job-listener.ts';
import { startReaper } from './reaper.ts';
import { createCaps, DEFAULT_STREAM_LIMITS, type StreamLimits } from './stream-caps.ts';

// Opens the database (SQLite in the data dir, or PostgreSQL from DATABASE_URL), the secret
// box, and the HTTP API. Shared by `wpbackup server` and the tests.

export interface StartOptions extends AppOptions {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl?: string;
  publicUrl?: string;
  leaseMs?: number;
  pollWaitMs?: number;
  /** See ServerConfig.pollRecheckMs; 5 s by default. */
  pollRecheckMs?: number;
  limits?: Partial<StreamLimits>;
  /** See ServerConfig.queuedJobTimeoutMs; 15 min by default. */
  queuedJobTimeoutMs?: number;
  /** See ServerConfig.uploadMarginBytes; 64 MiB by default. */
  uploadMarginBytes?: number;
  env?: NodeJS.ProcessEnv;
  /** Reverse proxies to believe X-Forwarded-For from (see auth/trust-proxy.ts). */
  trustProxy?: string[];
  /** Roles whose users must sign in with a second factor. */
  requireMfa?: Role[];
  loginLimits?: Partial<LoginLimits>;
  /** The clock for sign-in limits, codes and repositories (tests). */
  now?: () => number;
}

export const DEFAULT_POLL_RECHECK_MS = 5_000;
export const DEFAULT_QUEUED_JOB_TIMEOUT_MS = 15 * 60_000;
export const DEFAULT_UPLOAD_MARGIN_BYTES = 64 * 1024 * 1024;

export interface RunningServer {
  app: FastifyInstance;
  ctx: ServerContext;
  url: string;
  /** The LISTEN connection for jobs queued by other servers (PostgreSQL only). */
  jobListener?: PgJobListener;
  close(): Promise<void>;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export async function openContext(o: Omit<StartOptions, 'port' | 'host'> & { publicUrl: string }): Promise<ServerContext> {
  ensureDataDir(o.dataDir);
  const db = await openDb({ dataDir: o.dataDir, databaseUrl: o.databaseUrl });
  const secrets = openSecretBox({ dataDir: o.dataDir, env: o.env ?? process.env });
  const limits: StreamLimits = { ...DEFAULT_STREAM_LIMITS, ...definedOnly(o.limits ?? {}) };
  const config: ServerConfig = {
    publicUrl: o.publicUrl, dataDir: o.dataDir, leaseMs: o.leaseMs ?? 60_000, pollWaitMs: o.pollWaitMs ?? 25_000,
    pollRecheckMs: o.pollRecheckMs ?? DEFAULT_POLL_RECHECK_MS, limits, queuedJobTimeoutMs: o.queuedJobTimeoutMs ?? DEFAULT_QUEUED_JOB_TIMEOUT_MS,
    uploadMarginBytes: o.uploadMarginBytes ?? DEFAULT_UPLOAD_MARGIN_BYTES, trustProxy: o.trustProxy,
  };
  const jobNotifier = new JobNotifier();
  const repos = createRepos(db, { secrets, now: o.now, onJobQueued: (nodeId) => jobNotifier.notify(nodeId) });
  const loginLimiter = new LoginLimiter(repos.loginThrottle, { limits: o.loginLimits, now: o.now });
  const mfa = new MfaService({ repo: repos.mfa, secrets, now: o.now, requiredFor: o.requireMfa });
  return { db, repos, secrets, config, loginLimiter, mfa, jobNotifier, caps: createCaps(limits) };
}

export async function startServer(o: StartOptions): Promise<RunningServer> {
  const boundUrl = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
  const ctx = await openContext({ ...o, publicUrl: o.publicUrl ?? boundUrl });
  const app = await buildApp(ctx, o);
  // Fails jobs whose agent stopped reporting and aborts their uploads; safe on every server.
  const reaper = startReaper(ctx);
  // Other servers on the same PostgreSQL announce the jobs they queue; SQLite has only this process.
  const listener = ctx.db.dialect === 'postgres' && o.databaseUrl ? startPgJobListener(o.databaseUrl, ctx.jobNotifier, (m) => console.error(`wpbackup server: ${m}`)) : undefined;
  await listener?.ready;
  try {
    await app.listen({ port: o.port, host: o.host });
  } catch (err) {
    await listener?.close();
    await reaper.stop();
    await app.close();
    await ctx.db.close();
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const url = o.publicUrl ?? `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  ctx.config.publicUrl = url;
  return {
    app,
    ctx,
    url,
    jobListener: listener,
    close: async () => {
      ctx.jobNotifier.close();
      await listener?.close();
      await reaper.stop();
      await app.close();
      await ctx.db.close();
    },
  };
}
