import { join } from 'node:path';
import { resolveDataDir } from '../../datadir.ts';
import { badInput } from '../../errors.ts';
import type { Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { str } from '../values.ts';

export const serverCommand: Command = {
  path: ['server'],
  summary: 'Run the control server: HTTP API, dashboard and job queue',
  usage: 'server [--port 8080] [--host 127.0.0.1] [--data-dir DIR] [--trust-proxy ADDRS] [--require-mfa ROLES] [--metrics-listen HOST:PORT] [--log-level LEVEL]',
  help: `Keeps the fleet's state (SQLite in the data dir, or PostgreSQL when DATABASE_URL is set) and
hands backup jobs to agents. API under /api/v1, OpenAPI at /api/openapi.json, docs at /api/docs.

Options:
  --port N             listen port (default $PORT or 8080)
  --host ADDR          listen address (default 127.0.0.1; 0.0.0.0 to accept remote agents)
  --public-url URL     the URL agents and download links use (default http://HOST:PORT)
  --data-dir DIR       database, secret key, local backups (default $WPBACKUP_DATA_DIR or /var/lib/wpbackup)
  --no-local-agent     do not run an agent in this process (by default one backs up this machine's sites)
  --log-level LEVEL    fatal, error, warn, info (default), debug, trace or silent ($WPBACKUP_LOG_LEVEL)
  --log-format FORMAT  json (default: one JSON object per line on stdout) or pretty ($WPBACKUP_LOG_FORMAT)
  --log-requests       log one line per request too (tokens and signed links are redacted)
  --metrics-listen HOST:PORT  also serve GET /metrics there, without a token (e.g. 127.0.0.1:9464);
                       on the API's address /metrics takes the metrics token: $WPBACKUP_METRICS_TOKEN,
                       else the one generated into DATA_DIR/metrics.token (mode 0600)
  --trust-proxy ADDRS  reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For
                       names the client (default $WPBACKUP_TRUST_PROXY, else none: the peer's address)
  --require-mfa ROLES  roles that must sign in with a TOTP second factor, e.g. super_admin,node_admin
                       (default $WPBACKUP_REQUIRE_MFA, else none)

Limits (per server process; see README "Limits"):
  --max-streams-per-user N   open backup event streams one user may hold (default 10)
  --max-streams N            open event streams in total (default 1000)
  --max-polls-per-node N     agent long-polls one node key may hold (default 4)
  --queued-job-timeout MIN   a queued job whose node is offline or disabled this many minutes fails (default 15)
  --upload-margin-mb N       MiB a job may upload beyond its site's and node's remaining quota (default 64)

DATABASE_URL=postgres://... shares one database between several server processes.
WPBACKUP_SECRET_KEY (base64, 32 bytes) must then be the same on each of them.`,
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    'public-url': { type: 'string' },
    'data-dir': { type: 'string' },
    'no-local-agent': { type: 'boolean' },
    'log-requests': { type: 'boolean' },
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
    'metrics-listen': { type: 'string' },
    'max-streams-per-user': { type: 'string' },
    'max-streams': { type: 'string' },
    'max-polls-per-node': { type: 'string' },
    'queued-job-timeout': { type: 'string' },
    'upload-margin-mb': { type: 'string' },
    'trust-proxy': { type: 'string' },
    'require-mfa': { type: 'string' },
  },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    const portText = str(v.port) ?? ctx.env.PORT ?? '8080';
    const port = Number(portText);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw badInput(`--port must be a port number, not ${portText}`);
    const dataDir = resolveDataDir(str(v['data-dir']), ctx.env);
    // Loaded on demand with the server (below): `wpbackup --help` loads no server code.
    const { parseTrustProxy } = await import('../../server/auth/trust-proxy.ts');
    const { parseRoles } = await import('../../server/auth/roles.ts');
    const trustProxy = str(v['trust-proxy']) !== undefined ? parseTrustProxy(str(v['trust-proxy'])) : parseTrustProxy(ctx.env.WPBACKUP_TRUST_PROXY, 'WPBACKUP_TRUST_PROXY');
    const requireMfa = parseRoles(str(v['require-mfa']) ?? ctx.env.WPBACKUP_REQUIRE_MFA, str(v['require-mfa']) !== undefined ? '--require-mfa' : 'WPBACKUP_REQUIRE_MFA');
    const metricsListen = str(v['metrics-listen']);
    // Checked before anything starts listening.
    if (metricsListen !== undefined) (await import('../../server/metrics-listener.ts')).parseListenAddress(metricsListen);
    const { createLogger, parseLogOptions } = await import('../../log.ts');
    const logger = createLogger({ ...parseLogOptions({ level: str(v['log-level']), format: str(v['log-format']) }, ctx.env), stream: ctx.stdout });
    // Loaded on demand: `wpbackup backup` on a web server never pays for Fastify and the database drivers.
    const { startServer } = await import('../../server/start.ts');
    (await import('../../server/gc-flags.ts')).serialScavenges();
    const server = await startServer({
      port, host: str(v.host) ?? '127.0.0.1', dataDir, databaseUrl: ctx.env.DATABASE_URL, publicUrl: str(v['public-url']), env: ctx.env, logRequests: v['log-requests'] === true,
      trustProxy, requireMfa, ...limitOptions(v), logger, processMetrics: true, metricsListen,
    });
    ctx.stdout.write(`wpbackup server listening on ${server.url} (${server.ctx.db.dialect}, data dir ${dataDir})\n`);
    ctx.stdout.write(`  API docs: ${server.url}/api/docs\n`);
    if (trustProxy) ctx.stdout.write(`  Client addresses from X-Forwarded-For of: ${trustProxy.join(', ')}\n`);
    if (requireMfa.length > 0) ctx.stdout.write(`  Second factor required for: ${requireMfa.join(', ')}\n`);
    if (server.metricsListener) ctx.stdout.write(`  Metrics (no token): ${server.metricsListener.url}\n`);
    if ((await server.ctx.repos.users.count()) === 0) {
      ctx.stdout.write(`  No users yet. Create the first admin (password read from stdin or prompted):\n    wpbackup users create --email you@example.com --role super_admin --data-dir ${dataDir}\n`);
    }
    const agentStop = new AbortController();
    let localAgent: { nodeId: string; done: Promise<void> } | undefined;
    if (v['no-local-agent'] !== true) {
      const { startEmbeddedAgent } = await import('../../agent/embedded.ts');
      localAgent = await startEmbeddedAgent({ serverUrl: server.url, dataDir: join(dataDir, 'agent'), joinCodes: server.ctx.repos.joinCodes, signal: agentStop.signal, scanRoots: ['/var/www'], logger: logger.child({ component: 'local-agent' }) });
      ctx.stdout.write(`  Local agent: node ${localAgent.nodeId} backs up the sites on this machine\n`);
    }
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    agentStop.abort();
    await localAgent?.done;
    await server.close();
    return EXIT.ok;
  },
};

/** The limit options, each a positive whole number; absent ones keep the server's defaults. */
function limitOptions(v: Record<string, unknown>): { limits: { streamsPerUser?: number; streamsTotal?: number; pollsPerNode?: number }; queuedJobTimeoutMs?: number; uploadMarginBytes?: number } {
  const count = (name: string, min = 1): number | undefined => {
    const text = str(v[name] as string | undefined);
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw badInput(`--${name} must be a whole number of at least ${min}, not ${text}`);
    return n;
  };
  const minutes = count('queued-job-timeout');
  const margin = count('upload-margin-mb', 0);
  return {
    limits: { streamsPerUser: count('max-streams-per-user'), streamsTotal: count('max-streams'), pollsPerNode: count('max-polls-per-node') },
    queuedJobTimeoutMs: minutes === undefined ? undefined : minutes * 60_000,
    uploadMarginBytes: margin === undefined ? undefined : margin * 1024 * 1024,
  };
}
