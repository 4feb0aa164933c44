import type { FastifyInstance } from 'fastify';
import { ensureDataDir } from '../datadir.ts';
import { buildApp, type AppOptions } from './app.ts';
import { LoginLimiter } from './auth/rate-limit.ts';
import type { ServerConfig, ServerContext } from './context.ts';
import { openDb } from './db/open.ts';
import { createRepos } from './db/repos.ts';
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
  const config: ServerConfig = { publicUrl: o.publicUrl, dataDir: o.dataDir, leaseMs: o.leaseMs ?? 60_000, pollWaitMs: o.pollWaitMs ?? 25_000 };
  return { db, repos: createRepos(db, { secrets }), secrets, config, loginLimiter: new LoginLimiter() };
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
