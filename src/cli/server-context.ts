import { resolveDataDir } from '../datadir.ts';
import type { ServerContext } from '../server/context.ts';

// Admin commands (users, join codes) work on the server's database directly, with the server
// running or stopped (SQLite in WAL mode takes a second process; PostgreSQL from
// DATABASE_URL). The server code is loaded only when such a command runs, so `wpbackup
// backup` on a web server never pays for Fastify and the database drivers.

export const DATA_DIR_HELP = "  --data-dir DIR       the server's data dir (default $WPBACKUP_DATA_DIR or /var/lib/wpbackup)\n\nDATABASE_URL=postgres://... when the server uses PostgreSQL.";

export async function withServerContext<T>(dataDirFlag: string | undefined, env: NodeJS.ProcessEnv, fn: (ctx: ServerContext) => Promise<T>): Promise<T> {
  const { openContext } = await import('../server/context.ts');
  const dataDir = resolveDataDir(dataDirFlag, env);
  const ctx = await openContext({ dataDir, databaseUrl: env.DATABASE_URL, publicUrl: 'http://localhost', env });
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}
