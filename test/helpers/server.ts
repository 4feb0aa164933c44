import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashPassword } from '../../src/server/auth/passwords.ts';
import { generateToken, hashToken } from '../../src/server/auth/tokens.ts';
import type { Dialect } from '../../src/server/db/db.ts';
import { startServer, type RunningServer, type StartOptions } from '../../src/server/start.ts';
import { postgresTarget, sqliteTarget, type Target } from '../server/db/targets.ts';

// A real server on a free port, on SQLite or on a fresh PostgreSQL database, with a
// super_admin signed in. API suites run once per dialect: `for (const d of DIALECTS)`.

export const DIALECTS: Dialect[] = ['sqlite', 'postgres'];

export interface ApiResponse {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read JSON bodies loosely
  body: any;
  headers: Headers;
}

export interface TestServer {
  url: string;
  server: RunningServer;
  target: Target;
  /** A super_admin's bearer token. */
  adminToken: string;
  /** fetch against the server, JSON in and out; token defaults to the admin's (null for none). */
  api(method: string, path: string, opts?: { body?: unknown; token?: string | null; raw?: string; headers?: Record<string, string> }): Promise<ApiResponse>;
  /** A user of that role (with password) signed in; returns its id and token. */
  userWithRole(role: 'super_admin' | 'node_admin' | 'site_admin', email?: string): Promise<{ id: string; token: string; email: string }>;
  close(): Promise<void>;
}

export const TEST_PASSWORD = 'correct horse battery staple 42';

/**
 * Cheap scrypt parameters for the helper's users. A hash carries its parameters and sign-in
 * verifies with them (passwords.ts), so each login of a test user costs about a millisecond
 * instead of OWASP's 0.2 s of CPU (seconds on a loaded 2-core machine, hundreds of logins).
 * test/server/auth/passwords.test.ts covers the real parameters; an unknown email still costs
 * a full hash, and users made through the API get the real parameters.
 */
const TEST_HASH_PARAMS = { N: 1024, r: 8, p: 1, saltBytes: 16, keyBytes: 32 };

/** Server settings a test may change (timings, caps, margins, proxies, MFA, the clock, routes of its own). */
export type TestServerOptions = Pick<StartOptions, 'leaseMs' | 'pollWaitMs' | 'pollRecheckMs' | 'limits' | 'queuedJobTimeoutMs' | 'uploadMarginBytes' | 'trustProxy' | 'requireMfa' | 'loginLimits' | 'now' | 'logger' | 'metricsListen' | 'extraRoutes'>;

export async function startTestServer(dialect: Dialect, opts: TestServerOptions = {}): Promise<TestServer> {
  const target = dialect === 'sqlite' ? await sqliteTarget() : await postgresTarget();
  const server = await startServer({ ...opts, port: 0, host: '127.0.0.1', dataDir: target.options.dataDir, databaseUrl: target.options.databaseUrl, env: {} });
  const api: TestServer['api'] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...o.headers };
    const token = o.token === undefined ? t.adminToken : o.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined = o.raw;
    if (o.body !== undefined) {
      payload = JSON.stringify(o.body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(server.url + path, { method, headers, body: payload });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (docs page, SSE)
    }
    return { status: res.status, body, headers: res.headers };
  };
  const hash = await hashPassword(TEST_PASSWORD, TEST_HASH_PARAMS);
  let n = 0;
  const userWithRole: TestServer['userWithRole'] = async (role, email = `${role}-${++n}@example.com`) => {
    const user = await server.ctx.repos.users.create({ email, passwordHash: hash, role });
    const res = await api('POST', '/api/v1/auth/login', { body: { email, password: TEST_PASSWORD }, token: null });
    if (res.status !== 200) throw new Error(`login failed: ${JSON.stringify(res.body)}`);
    return { id: user.id, token: res.body.token as string, email };
  };
  const t: TestServer = {
    url: server.url,
    server,
    target,
    adminToken: '',
    api,
    userWithRole,
    close: async () => {
      await server.close();
      await target.cleanup();
    },
  };
  t.adminToken = (await userWithRole('super_admin', 'admin@example.com')).token;
  return t;
}

export interface TwoNodeFleet {
  nodeA: string;
  nodeB: string;
  /** Node keys (agents' bearer tokens) of node A and node B. */
  keyA: string;
  keyB: string;
  siteA: string;
  siteB: string;
  /** A node_admin assigned to node A, and a site_admin assigned to site A. */
  nodeAdmin: { id: string; token: string; email: string };
  siteAdmin: { id: string; token: string; email: string };
  superId: string;
}

/** Own and foreign resources for access tests: two nodes with keys, a site on each, and their admins. */
export async function twoNodeFleet(t: TestServer): Promise<TwoNodeFleet> {
  const r = t.server.ctx.repos;
  const keyA = generateToken('node');
  const keyB = generateToken('node');
  const nodeA = (await r.nodes.create({ hostname: 'a.example.com', status: 'active', nodeKeyHash: hashToken(keyA) })).id;
  const nodeB = (await r.nodes.create({ hostname: 'b.example.com', status: 'active', nodeKeyHash: hashToken(keyB) })).id;
  const siteA = (await r.sites.create({ nodeId: nodeA, name: 'a.example.com', wpPath: '/var/www/a' })).id;
  const siteB = (await r.sites.create({ nodeId: nodeB, name: 'b.example.com', wpPath: '/var/www/b' })).id;
  const nodeAdmin = await t.userWithRole('node_admin');
  await r.users.assignNode(nodeAdmin.id, nodeA);
  const siteAdmin = await t.userWithRole('site_admin');
  await r.users.assignSite(siteAdmin.id, siteA);
  const superId = (await r.users.getByEmail('admin@example.com'))?.id ?? '';
  return { nodeA, nodeB, keyA, keyB, siteA, siteB, nodeAdmin, siteAdmin, superId };
}

/** Two servers on one fresh PostgreSQL database, as a scaled-out deployment runs them: one secret key, a data dir each. */
export interface TwoServers {
  a: RunningServer;
  b: RunningServer;
  /** A super_admin's API token, valid on both. */
  token: string;
  close(): Promise<void>;
}

export async function twoServersOnPostgres(opts: Omit<StartOptions, 'port' | 'host' | 'databaseUrl' | 'dataDir' | 'env'> = {}): Promise<TwoServers> {
  const target = await postgresTarget();
  const otherDataDir = mkdtempSync(join(tmpdir(), 'wpb-second-'));
  const env = { WPBACKUP_SECRET_KEY: randomBytes(32).toString('base64') };
  const common = { port: 0, host: '127.0.0.1', databaseUrl: target.options.databaseUrl, env, ...opts };
  const started: RunningServer[] = [];
  const close = async (): Promise<void> => {
    for (const s of started) await s.close();
    await target.cleanup();
    rmSync(otherDataDir, { recursive: true, force: true });
  };
  try {
    started.push(await startServer({ ...common, dataDir: target.options.dataDir }));
    started.push(await startServer({ ...common, dataDir: otherDataDir }));
    const [a, b] = started as [RunningServer, RunningServer];
    const user = await a.ctx.repos.users.create({ email: 'ops@example.com', passwordHash: 'unused', role: 'super_admin' });
    const token = generateToken('api');
    await a.ctx.repos.tokens.create({ userId: user.id, tokenHash: hashToken(token), kind: 'api', name: 'test', expiresAt: null });
    return { a, b, token, close };
  } catch (err) {
    await close();
    throw err;
  }
}
