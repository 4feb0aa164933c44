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
import { startReaper } from './reaper.ts';

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
  env?: NodeJS.ProcessEnv;
  /** Reverse proxies to believe X-Forwarded-For from (see auth/trust-proxy.ts). */
  trustProxy?: string[];
  /** Roles whose users must sign in with a second factor. */
  requireMfa?: Role[];
  loginLimits?: Partial<LoginLimits>;
  /** The clock for sign-in limits, codes and repositories (tests). */
  now?: () => number;
}

export interface RunningServer {
  app: FastifyInstance;
  ctx: ServerContext;
  url: string;
  close(): Promise<void>;
}

export async function openContext(o: Omit<StartOptions, 'port' | 'host'> & { publicUrl: string }): Promise<ServerContext> {
  ensureDataDir(o.dataDir);
  const db = await openDb({ dataDir: o.dataDir, databaseUrl: o.databaseUrl });
  const secrets = openSecretBox({ dataDir: o.dataDir, env: o.env ?? process.env });
  const config: ServerConfig = { publicUrl: o.publicUrl, dataDir: o.dataDir, leaseMs: o.leaseMs ?? 60_000, pollWaitMs: o.pollWaitMs ?? 25_000, trustProxy: o.trustProxy };
  const repos = createRepos(db, { secrets, now: o.now });
  const loginLimiter = new LoginLimiter(repos.loginThrottle, { limits: o.loginLimits, now: o.now });
  const mfa = new MfaService({ repo: repos.mfa, secrets, now: o.now, requiredFor: o.requireMfa });
  return { db, repos, secrets, config, loginLimiter, mfa };
}

export async function startServer(o: StartOptions): Promise<RunningServer> {
  const boundUrl = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
  const ctx = await openContext({ ...o, publicUrl: o.publicUrl ?? boundUrl });
  const app = await buildApp(ctx, o);
  // Fails jobs whose agent stopped reporting and aborts their uploads; safe on every server.
  const reaper = startReaper(ctx);
  try {
    await app.listen({ port: o.port, host: o.host });
  } catch (err) {
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
    close: async () => {
      await reaper.stop();
      await app.close();
      await ctx.db.close();
    },
  };
}
