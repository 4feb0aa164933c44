import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ACTION_NAMES, MATRIX, type Action, type Subject } from '../../../src/server/auth/roles.ts';
import { alertsRepo } from '../../../src/server/alerts/dispatch.ts';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import { base32Decode, totp } from '../../../src/server/auth/totp.ts';
import { answerChecker, call as send, type Answer } from '../../helpers/openapi.ts';
import { DIALECTS, startTestServer, twoNodeFleet, TEST_PASSWORD, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';

// ONE permission matrix over every route the app registers. The routes come from the OpenAPI
// document, so a route added later fails this test until it has a row in ROUTES below. Each
// row names the route's action (roles.ts), and the expected outcome per caller and per
// resource (own: node A / site A / their backups and jobs; foreign: node B's) is derived from
// MATRIX, plus a few documented overrides (e.g. a foreign token is 404, not 403).
// State-changing calls act on throwaway rows made per case, so the matrix stays valid.
// Every answer, allowed or refused, must also be as the document says: its status, media type
// and body (closed: no property the document does not list; helpers/openapi.ts).

type Caller = 'super' | 'node_admin' | 'site_admin' | 'node' | 'none' | 'malformed';
const CALLERS: Caller[] = ['super', 'node_admin', 'site_admin', 'node', 'none', 'malformed'];
type Scope = 'own' | 'foreign';
const SCOPES: Scope[] = ['own', 'foreign'];
/** ok: 2xx, or 409/422 (refused for the state of things, not for who asks). hidden: 404. */
type Outcome = 'ok' | '401' | '403' | 'hidden';

const MALFORMED = 'not a token !!';
const rand = (): string => randomBytes(4).toString('hex');

interface Req {
  method: string;
  path: string;
  body?: unknown;
  /** Overrides the caller's token (undefined: the caller's). */
  token?: string | null;
}

interface RouteSpec {
  auth: 'public' | 'user' | 'node';
  /** The action the route authorizes; none for routes any signed-in user (or agent) may call. */
  action?: Action;
  /** What "own" and "foreign" refer to; global actions ignore it. */
  make(c: Caller, s: Scope): Promise<Req>;
  override?(c: Caller, s: Scope): Outcome | undefined;
  /** Extra checks on a response the matrix allowed. */
  check?(c: Caller, s: Scope, body: unknown): string | undefined;
}

interface Fixture extends TwoNodeFleet {
  backupA: string;
  backupB: string;
  jobA: string;
  jobB: string;
  providerId: string;
  root: string;
}

function classify(status: number): Outcome | 'bad' {
  if (status === 401) return '401';
  if (status === 403) return '403';
  if (status === 404) return 'hidden';
  if ((status >= 200 && status < 300) || status === 409 || status === 422) return 'ok';
  return 'bad';
}

/** A node_admin may read storage providers' names and types, not their paths, endpoints, buckets or key ids. */
const SETTINGS = ['root_path', 'endpoint', 'bucket', 'region', 'access_key_id'];
function storageSettingsShown(c: Caller, providers: Record<string, unknown>[]): string | undefined {
  if (providers.length === 0 || providers.some((p) => typeof p.name !== 'string' || typeof p.type !== 'string')) return 'lists no provider names and types';
  const shown = providers.flatMap((p) => SETTINGS.filter((k) => p[k] !== null && p[k] !== undefined));
  if (c === 'node_admin' && shown.length > 0) return `shows a node_admin the settings ${JSON.stringify(shown)}`;
  if (c === 'super' && !providers.some((p) => p.root_path || p.bucket)) return 'hides the settings from a super_admin';
  return undefined;
}

const subjectOf = (c: Caller): Subject | undefined => (c === 'super' ? 'super_admin' : c === 'node_admin' || c === 'site_admin' || c === 'node' ? c : undefined);

/** What roles.ts says the route must answer this caller for this resource. */
function expected(spec: RouteSpec, c: Caller, s: Scope): Outcome {
  const o = spec.override?.(c, s);
  if (o) return o;
  if (spec.auth === 'public') return 'ok';
  const subject = subjectOf(c);
  if (!subject) return '401';
  if (spec.auth === 'user' && subject === 'node') return '403';
  if (spec.auth === 'node' && subject !== 'node') return '403';
  if (!spec.action) return 'ok';
  const grant = MATRIX[subject][spec.action];
  if (grant === 'any') return 'ok';
  if (grant === 'none') return '403';
  return s === 'own' ? 'ok' : '403';
}

for (const dialect of DIALECTS) {
  describe(`route matrix (${dialect})`, () => {
    let t: TestServer;
    let f: Fixture;
    const repos = (): TestServer['server']['ctx']['repos'] => t.server.ctx.repos;

    const tokenOf = (c: Caller): string | null =>
      ({ super: t.adminToken, node_admin: f.nodeAdmin.token, site_admin: f.siteAdmin.token, node: f.keyA, none: null, malformed: MALFORMED })[c];
    const userIdOf = (c: Caller): string | undefined => ({ super: f.superId, node_admin: f.nodeAdmin.id, site_admin: f.siteAdmin.id })[c as string];
    const nodeOf = (s: Scope): string => (s === 'own' ? f.nodeA : f.nodeB);
    const siteOf = (s: Scope): string => (s === 'own' ? f.siteA : f.siteB);

    /** A throwaway site on node A (assigned to the site_admin too) or node B. */
    async function freshSite(s: Scope): Promise<string> {
      const site = await repos().sites.create({ nodeId: nodeOf(s), name: `m-${rand()}.example.com`, wpPath: `/var/www/m-${rand()}` });
      if (s === 'own') await repos().users.assignSite(f.siteAdmin.id, site.id);
      return site.id;
    }
    async function freshBackup(siteId: string): Promise<string> {
      const key = `matrix/${siteId}/${rand()}.tar.gz`;
      const path = join(f.root, key);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, 'archive bytes');
      const b = await repos().backups.create({ siteId, storageId: f.providerId, key, filename: key.split('/').pop() ?? key });
      await repos().backups.complete(b.id, { size: 13, sha256: 'a'.repeat(64) });
      return b.id;
    }
    /** A job claimed by the scope's node, on a throwaway site. */
    async function freshJob(s: Scope): Promise<string> {
      const site = await freshSite(s);
      await repos().jobs.enqueueBackup(site);
      const job = await repos().jobs.claimNext(nodeOf(s), 600_000);
      assert.ok(job, 'a job to claim');
      return job.id;
    }
    const jobOf = (s: Scope): string => (s === 'own' ? f.jobA : f.jobB);

    before(async () => {
      t = await startTestServer(dialect, { pollWaitMs: 100, leaseMs: 600_000 });
      const r = repos();
      const root = mkdtempSync(join(tmpdir(), 'wpb-matrix-'));
      const providerId = (await r.storageProviders.create({ name: 'local', type: 'local', rootPath: root, isDefault: true })).id;
      const fleet = await twoNodeFleet(t);
      // Each node holds several claimed jobs here (the fixture's and freshJob's): lift the one-backup default.
      for (const n of [fleet.nodeA, fleet.nodeB]) await r.nodes.update(n, { jobLimit: 64 });
      const { nodeA, nodeB, siteA, siteB } = fleet;
      f = { ...fleet, backupA: '', backupB: '', jobA: '', jobB: '', providerId, root };
      f.backupA = await freshBackup(siteA);
      f.backupB = await freshBackup(siteB);
      // The fixture sites' jobs, claimed by their nodes (a running backup on site A and site B).
      for (const [site, node] of [[siteA, nodeA], [siteB, nodeB]] as const) {
        await r.jobs.enqueueBackup(site);
        const job = await r.jobs.claimNext(node, 600_000);
        assert.ok(job);
        if (node === nodeA) f.jobA = job.id;
        else f.jobB = job.id;
      }
    });
    after(async () => {
      await t.close();
      rmSync(f.root, { recursive: true, force: true });
    });

    const sessionFor = async (c: Caller): Promise<string | undefined> => {
      const uid = userIdOf(c);
      if (!uid) return undefined;
      const token = generateToken('session');
      await repos().tokens.create({ userId: uid, tokenHash: hashToken(token), kind: 'session', name: 'matrix', expiresAt: Date.now() + 600_000 });
      return token;
    };
    const freshUser = async (): Promise<string> => (await repos().users.create({ email: `victim-${rand()}@example.com`, passwordHash: 'scrypt$x', role: 'site_admin' })).id;
    const freshProvider = async (): Promise<string> => (await repos().storageProviders.create({ name: `p-${rand()}`, type: 'local', rootPath: '/srv/matrix' })).id;
    const freshNode = async (s: Scope): Promise<string> => {
      const id = (await repos().nodes.create({ hostname: `n-${rand()}.example.com`, status: 'active' })).id;
      if (s === 'own') await repos().users.assignNode(f.nodeAdmin.id, id);
      return id;
    };
    /** A throwaway node with a key of its own (so rotating or revoking it leaves the fixture's keys alone). */
    const freshKeyedNode = async (s: Scope): Promise<string> => {
      const id = await freshNode(s);
      await repos().nodes.setKeyHash(id, hashToken(generateToken('node')));
      return id;
    };
    const joinCode = async (): Promise<string> => {
      const code = generateToken('join');
      await repos().joinCodes.create({ codeHash: hashToken(code), expiresAt: Date.now() + 60_000 });
      return code;
    };
    /** A throwaway alert channel: a webhook nobody listens to (port 9), or an email channel to subscribe to. */
    const freshChannel = async (type: 'webhook' | 'email'): Promise<string> => {
      const config = type === 'webhook' ? { url: 'http://127.0.0.1:9/hook' } : { host: '127.0.0.1', port: 9, tls: 'none' as const, user: null, from: 'wpb@example.com', to: [] };
      return (await alertsRepo(t.server.ctx).createChannel({ name: `c-${rand()}`, type, config, secret: type === 'webhook' ? 'whsec_matrix' : null, siteIds: null, onSuccess: false })).id;
    };
    const get = (path: string) => async (): Promise<Req> => ({ method: 'GET', path });
    const superOnly = (make: RouteSpec['make'], action: Action): RouteSpec => ({ auth: 'user', action, make });

    // Every route, by "METHOD openapi-path". A route missing here fails the test.
    const ROUTES: Record<string, RouteSpec> = {
      'GET /healthz': { auth: 'public', make: get('/healthz') },
      // Only the metrics token opens it: no session, API token or node key (metrics.test.ts tests the token).
      'GET /metrics': { auth: 'public', make: get('/metrics'), override: () => '401' },
      'POST /api/v1/auth/login': { auth: 'public', make: async () => ({ method: 'POST', path: '/api/v1/auth/login', body: { email: f.siteAdmin.email, password: TEST_PASSWORD } }) },
      // A real challenge each time (a fresh user's): the bearer token, whoever's, changes nothing.
      'POST /api/v1/auth/login/mfa/enroll': { auth: 'public', make: async () => ({ method: 'POST', path: '/api/v1/auth/login/mfa/enroll', body: { challenge: (await t.server.ctx.mfa.newChallenge(await freshUser(), 'enroll')).challenge } }) },
      'POST /api/v1/auth/login/mfa': {
        auth: 'public',
        make: async () => {
          const uid = await freshUser();
          const { challenge } = await t.server.ctx.mfa.newChallenge(uid, 'enroll');
          const e = await t.server.ctx.mfa.startEnrollment(uid, 'x@example.com');
          assert.ok(e);
          return { method: 'POST', path: '/api/v1/auth/login/mfa', body: { challenge, code: totp(base32Decode(e.secret), Date.now()) } };
        },
      },
      'GET /api/v1/auth/mfa': { auth: 'user', make: get('/api/v1/auth/mfa') },
      'POST /api/v1/auth/mfa/enroll': { auth: 'user', make: async () => ({ method: 'POST', path: '/api/v1/auth/mfa/enroll' }) },
      // A pending enrollment and a wrong code (422), or none (409): refused for the state of things, not the caller.
      'POST /api/v1/auth/mfa/confirm': { auth: 'user', make: async () => ({ method: 'POST', path: '/api/v1/auth/mfa/confirm', body: { code: 'zzzzzz' } }) },
      'POST /api/v1/auth/mfa/disable': { auth: 'user', make: async () => ({ method: 'POST', path: '/api/v1/auth/mfa/disable', body: { code: 'zzzzzz' } }) },
      'DELETE /api/v1/users/{id}/mfa': superOnly(async () => ({ method: 'DELETE', path: `/api/v1/users/${await freshUser()}/mfa` }), 'user.manage'),
      'GET /api/v1/users': superOnly(get('/api/v1/users'), 'user.manage'),
      'POST /api/v1/users': superOnly(async () => ({ method: 'POST', path: '/api/v1/users', body: { email: `m-${rand()}@example.com`, password: 'violet tractor moonlight 7', role: 'site_admin' } }), 'user.manage'),
      'GET /api/v1/users/{id}': superOnly(async () => ({ method: 'GET', path: `/api/v1/users/${await freshUser()}` }), 'user.manage'),
      'PATCH /api/v1/users/{id}': superOnly(async () => ({ method: 'PATCH', path: `/api/v1/users/${await freshUser()}`, body: { role: 'node_admin' } }), 'user.manage'),
      'DELETE /api/v1/users/{id}': superOnly(async () => ({ method: 'DELETE', path: `/api/v1/users/${await freshUser()}` }), 'user.manage'),
      'PUT /api/v1/users/{id}/nodes/{node_id}': superOnly(async (_c, s) => ({ method: 'PUT', path: `/api/v1/users/${await freshUser()}/nodes/${nodeOf(s)}` }), 'user.manage'),
      'DELETE /api/v1/users/{id}/nodes/{node_id}': superOnly(async (_c, s) => ({ method: 'DELETE', path: `/api/v1/users/${await freshUser()}/nodes/${nodeOf(s)}` }), 'user.manage'),
      'PUT /api/v1/users/{id}/sites/{site_id}': superOnly(async (_c, s) => ({ method: 'PUT', path: `/api/v1/users/${await freshUser()}/sites/${siteOf(s)}` }), 'user.manage'),
      'DELETE /api/v1/users/{id}/sites/{site_id}': superOnly(async (_c, s) => ({ method: 'DELETE', path: `/api/v1/users/${await freshUser()}/sites/${siteOf(s)}` }), 'user.manage'),
      'GET /api/v1/auth/me': { auth: 'user', make: get('/api/v1/auth/me') },
      'POST /api/v1/auth/logout': { auth: 'user', make: async (c) => ({ method: 'POST', path: '/api/v1/auth/logout', token: await sessionFor(c) }) },
      'GET /api/v1/tokens': { auth: 'user', make: get('/api/v1/tokens') },
      'POST /api/v1/tokens': { auth: 'user', make: async () => ({ method: 'POST', path: '/api/v1/tokens', body: { name: 'matrix' } }) },
      'DELETE /api/v1/tokens/{id}': {
        auth: 'user',
        action: 'user.manage', // only for someone else's token; one's own is always revocable
        make: async (c, s) => {
          const owner = s === 'own' ? (userIdOf(c) ?? f.superId) : await freshUser();
          const id = (await repos().tokens.create({ userId: owner, tokenHash: hashToken(generateToken('api')), kind: 'api', name: 'victim' })).id;
          return { method: 'DELETE', path: `/api/v1/tokens/${id}` };
        },
        // Someone else's token is "not found" to those who may not revoke it, so ids cannot be probed.
        override: (c, s) => (subjectOf(c) && c !== 'node' ? (s === 'own' || c === 'super' ? 'ok' : 'hidden') : undefined),
      },
      'GET /api/v1/nodes': {
        auth: 'user',
        make: get('/api/v1/nodes'),
        check: (c, _s, body) => {
          const ids = ((body as { nodes: { id: string }[] }).nodes ?? []).map((n) => n.id);
          const want = c === 'super' ? [f.nodeA, f.nodeB] : c === 'node_admin' ? [f.nodeA] : [];
          const unwanted = c === 'super' ? [] : c === 'node_admin' ? [f.nodeB] : [f.nodeA, f.nodeB];
          return want.every((id) => ids.includes(id)) && !unwanted.some((id) => ids.includes(id)) ? undefined : `lists nodes ${JSON.stringify(ids)}`;
        },
      },
      'GET /api/v1/nodes/{id}': { auth: 'user', action: 'node.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/nodes/${nodeOf(s)}` }) },
      // Removing a quota is the super_admin's alone: node.write lets a node_admin rename, disable and lower the quota of its
      // node (roles.ts nodeChangeRefusal), so here it is refused even on its own node.
      'PATCH /api/v1/nodes/{id}': {
        auth: 'user',
        action: 'node.write',
        make: async (_c, s) => ({ method: 'PATCH', path: `/api/v1/nodes/${nodeOf(s)}`, body: { quota_bytes: null } }),
        override: (c) => (c === 'node_admin' ? '403' : undefined),
      },
      'DELETE /api/v1/nodes/{id}': { auth: 'user', action: 'node.write', make: async (_c, s) => ({ method: 'DELETE', path: `/api/v1/nodes/${await freshNode(s)}` }) },
      // No node yet, so no resource: "own" grants never pass.
      'POST /api/v1/nodes/join-codes': { auth: 'user', action: 'node.join_code', make: async () => ({ method: 'POST', path: '/api/v1/nodes/join-codes' }), override: (c) => (c === 'node_admin' ? '403' : undefined) },
      // Rotating or revoking a key only takes access away, so the node's own node_admin may (node.write).
      'POST /api/v1/nodes/{id}/rotate-key': { auth: 'user', action: 'node.write', make: async (_c, s) => ({ method: 'POST', path: `/api/v1/nodes/${await freshKeyedNode(s)}/rotate-key` }) },
      'POST /api/v1/nodes/{id}/revoke-key': { auth: 'user', action: 'node.write', make: async (_c, s) => ({ method: 'POST', path: `/api/v1/nodes/${await freshKeyedNode(s)}/revoke-key` }) },
      // The calling node's own next key (409 when no rotation was asked for): no foreign case.
      'POST /api/v1/agent/rotate-key': { auth: 'node', action: 'agent.poll', make: async () => ({ method: 'POST', path: '/api/v1/agent/rotate-key' }), override: (c) => (c === 'node' ? 'ok' : undefined) },
      // Any signed-in user, for their own account; the matrix gives a wrong current password (403 from the handler).
      'POST /api/v1/auth/password': {
        auth: 'user',
        make: async (c) => ({ method: 'POST', path: '/api/v1/auth/password', body: { current_password: 'not the password', new_password: 'violet tractor moonlight 7' }, token: await sessionFor(c) }),
        override: (c) => (c === 'super' || c === 'node_admin' || c === 'site_admin' ? '403' : undefined),
      },
      'GET /api/v1/storage-providers': {
        auth: 'user',
        action: 'storage.read',
        make: get('/api/v1/storage-providers'),
        check: (c, _s, body) => storageSettingsShown(c, (body as { storage_providers: Record<string, unknown>[] }).storage_providers),
      },
      'POST /api/v1/storage-providers': superOnly(async () => ({ method: 'POST', path: '/api/v1/storage-providers', body: { name: `m-${rand()}`, type: 'local', root_path: '/srv/m' } }), 'storage.write'),
      'GET /api/v1/storage-providers/{id}': {
        auth: 'user',
        action: 'storage.read',
        make: async () => ({ method: 'GET', path: `/api/v1/storage-providers/${f.providerId}` }),
        check: (c, _s, body) => storageSettingsShown(c, [body as Record<string, unknown>]),
      },
      'PATCH /api/v1/storage-providers/{id}': superOnly(async () => ({ method: 'PATCH', path: `/api/v1/storage-providers/${await freshProvider()}`, body: { root_path: '/srv/other' } }), 'storage.write'),
      'DELETE /api/v1/storage-providers/{id}': superOnly(async () => ({ method: 'DELETE', path: `/api/v1/storage-providers/${await freshProvider()}` }), 'storage.write'),
      // Makes a throwaway provider the default, then the fixture's again (below, after the call).
      'POST /api/v1/storage-providers/{id}/default': superOnly(async () => ({ method: 'POST', path: `/api/v1/storage-providers/${await freshProvider()}/default` }), 'storage.write'),
      'GET /api/v1/audit': superOnly(get('/api/v1/audit?limit=5'), 'audit.read'),
      'POST /api/v1/sites': { auth: 'user', action: 'site.write', make: async (_c, s) => ({ method: 'POST', path: '/api/v1/sites', body: { node_id: nodeOf(s), name: `m-${rand()}`, wp_path: `/var/www/m-${rand()}` } }) },
      'GET /api/v1/sites': {
        auth: 'user',
        make: get('/api/v1/sites'),
        check: (c, _s, body) => {
          const ids = ((body as { sites: { id: string }[] }).sites ?? []).map((x) => x.id);
          const want = c === 'super' ? [f.siteA, f.siteB] : [f.siteA];
          const unwanted = c === 'super' ? [] : [f.siteB];
          return want.every((id) => ids.includes(id)) && !unwanted.some((id) => ids.includes(id)) ? undefined : `lists sites ${JSON.stringify(ids)}`;
        },
      },
      'GET /api/v1/nodes/{id}/discovered-sites': { auth: 'user', action: 'node.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/nodes/${nodeOf(s)}/discovered-sites` }) },
      // A fresh discovered path on the scope's node, adopted as a site.
      'POST /api/v1/sites/adopt': {
        auth: 'user',
        action: 'site.write',
        make: async (_c, s) => {
          const path = `/var/www/d-${rand()}`;
          await repos().discoveredSites.replaceForNode(nodeOf(s), [{ path, name: `d-${rand()}`, dbName: 'wp', tablePrefix: 'wp_', wpVersion: '6.5', error: null }]);
          return { method: 'POST', path: '/api/v1/sites/adopt', body: { node_id: nodeOf(s), path } };
        },
      },
      'GET /api/v1/sites/{id}': { auth: 'user', action: 'site.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/sites/${siteOf(s)}` }) },
      'PATCH /api/v1/sites/{id}': { auth: 'user', action: 'site.write', make: async (_c, s) => ({ method: 'PATCH', path: `/api/v1/sites/${siteOf(s)}`, body: { excludes: ['wp-content/cache'] } }) },
      'DELETE /api/v1/sites/{id}': { auth: 'user', action: 'site.delete', make: async (_c, s) => ({ method: 'DELETE', path: `/api/v1/sites/${await freshSite(s)}` }) },
      // Schedules: the fleet default is the admins' (read: super_admin and node_admin; set: super_admin), a site's is
      // read with site.read and set or cleared by whoever may start its backups (site.schedule).
      'GET /api/v1/schedules/default': { auth: 'user', action: 'schedule.default.read', make: get('/api/v1/schedules/default') },
      'PUT /api/v1/schedules/default': { auth: 'user', action: 'schedule.default.write', make: async () => ({ method: 'PUT', path: '/api/v1/schedules/default', body: { window_minutes: 30 } }) },
      'GET /api/v1/sites/{id}/schedule': { auth: 'user', action: 'site.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/sites/${siteOf(s)}/schedule` }) },
      'PUT /api/v1/sites/{id}/schedule': { auth: 'user', action: 'site.schedule', make: async (_c, s) => ({ method: 'PUT', path: `/api/v1/sites/${await freshSite(s)}/schedule`, body: { preset: 'daily', at: '03:00', timezone: 'Europe/Berlin' } }) },
      'DELETE /api/v1/sites/{id}/schedule': { auth: 'user', action: 'site.schedule', make: async (_c, s) => ({ method: 'DELETE', path: `/api/v1/sites/${await freshSite(s)}/schedule` }) },
      'POST /api/v1/sites/{id}/backup/start': { auth: 'user', action: 'site.backup', make: async (_c, s) => ({ method: 'POST', path: `/api/v1/sites/${await freshSite(s)}/backup/start` }) },
      'GET /api/v1/sites/{id}/backup/status': { auth: 'user', action: 'site.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/sites/${siteOf(s)}/backup/status` }) },
      'POST /api/v1/sites/{id}/backup/stop': {
        auth: 'user',
        action: 'site.stop',
        make: async (_c, s) => {
          const site = await freshSite(s);
          await repos().jobs.enqueueBackup(site);
          return { method: 'POST', path: `/api/v1/sites/${site}/backup/stop` };
        },
      },
      'POST /api/v1/daemon/backup/reset/{site_id}': {
        auth: 'user',
        action: 'daemon.reset',
        make: async (_c, s) => {
          const site = await freshSite(s);
          await repos().jobs.enqueueBackup(site);
          return { method: 'POST', path: `/api/v1/daemon/backup/reset/${site}` };
        },
      },
      'GET /api/v1/sites/{id}/quota/check': { auth: 'user', action: 'site.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/sites/${siteOf(s)}/quota/check` }) },
      'GET /api/v1/sites/{id}/backup/events': { auth: 'user', action: 'site.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/sites/${siteOf(s)}/backup/events` }) },
      'GET /api/v1/sites/{id}/backups': { auth: 'user', action: 'backup.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/sites/${siteOf(s)}/backups` }) },
      'GET /api/v1/backups/backups/{id}': { auth: 'user', action: 'backup.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/backups/backups/${s === 'own' ? f.backupA : f.backupB}` }) },
      'DELETE /api/v1/backups/backups/{id}': { auth: 'user', action: 'backup.delete', make: async (_c, s) => ({ method: 'DELETE', path: `/api/v1/backups/backups/${await freshBackup(siteOf(s))}` }) },
      'GET /api/v1/backups/backups/{id}/download': { auth: 'user', action: 'backup.download', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/backups/backups/${s === 'own' ? f.backupA : f.backupB}/download` }) },
      // The signed link is the credential; the Authorization header changes nothing.
      'GET /api/v1/downloads/{*}': {
        auth: 'public',
        make: async (_c, s) => {
          const res = await t.api('GET', `/api/v1/backups/backups/${s === 'own' ? f.backupA : f.backupB}/download`);
          assert.equal(res.status, 200, JSON.stringify(res.body));
          return { method: 'GET', path: new URL(res.body.url as string).pathname };
        },
      },
      // Retention (routes/retention.ts). The fleet's policy has no site: "own" grants never pass, so a node_admin is refused.
      'GET /api/v1/retention': { auth: 'user', make: get('/api/v1/retention') },
      'PUT /api/v1/retention': { auth: 'user', action: 'retention.write', make: async () => ({ method: 'PUT', path: '/api/v1/retention', body: {} }), override: (c) => (c === 'node_admin' ? '403' : undefined) },
      'GET /api/v1/sites/{id}/retention': { auth: 'user', action: 'backup.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/sites/${siteOf(s)}/retention` }) },
      'PUT /api/v1/sites/{id}/retention': { auth: 'user', action: 'retention.write', make: async (_c, s) => ({ method: 'PUT', path: `/api/v1/sites/${await freshSite(s)}/retention`, body: { keep_last: 5 } }) },
      'DELETE /api/v1/sites/{id}/retention': { auth: 'user', action: 'retention.write', make: async (_c, s) => ({ method: 'DELETE', path: `/api/v1/sites/${await freshSite(s)}/retention` }) },
      'POST /api/v1/backups/backups/{id}/pin': { auth: 'user', action: 'retention.write', make: async (_c, s) => ({ method: 'POST', path: `/api/v1/backups/backups/${await freshBackup(siteOf(s))}/pin` }) },
      'DELETE /api/v1/backups/backups/{id}/pin': { auth: 'user', action: 'retention.write', make: async (_c, s) => ({ method: 'DELETE', path: `/api/v1/backups/backups/${await freshBackup(siteOf(s))}/pin` }) },
      'POST /api/v1/sites/{id}/prune': {
        auth: 'user',
        action: 'retention.write',
        make: async (_c, s) => {
          const site = await freshSite(s);
          await freshBackup(site);
          return { method: 'POST', path: `/api/v1/sites/${site}/prune`, body: { dry_run: true } };
        },
      },
      'POST /api/v1/prune': { auth: 'user', action: 'retention.write', make: async () => ({ method: 'POST', path: '/api/v1/prune', body: { dry_run: true } }), override: (c) => (c === 'node_admin' ? '403' : undefined) },
      'POST /api/v1/storage-providers/{id}/reconcile': superOnly(async () => ({ method: 'POST', path: `/api/v1/storage-providers/${f.providerId}/reconcile`, body: {} }), 'storage.write'),
      // Alerts: channels and fleet settings are the super_admin's (alerts.manage); any user lists channels by name and
      // type (settings hidden) and manages their own subscriptions, for sites they may read; a site's alert settings
      // go with site.read / site.write.
      'GET /api/v1/alerts/channels': {
        auth: 'user',
        make: async () => {
          await freshChannel('webhook');
          return { method: 'GET', path: '/api/v1/alerts/channels' };
        },
        check: (c, _s, body) => {
          const channels = (body as { channels: Record<string, unknown>[] }).channels;
          const shown = channels.some((ch) => ch.webhook !== null || ch.email !== null || ch.site_ids !== null);
          return c === 'super' ? (channels.some((ch) => ch.webhook !== null) ? undefined : 'hides the settings from a super_admin') : shown ? 'shows channel settings to a user who may not manage them' : undefined;
        },
      },
      'POST /api/v1/alerts/channels': superOnly(async () => ({ method: 'POST', path: '/api/v1/alerts/channels', body: { name: `h-${rand()}`, type: 'webhook', webhook: { url: 'http://127.0.0.1:9/hook' } } }), 'alerts.manage'),
      'DELETE /api/v1/alerts/channels/{id}': superOnly(async () => ({ method: 'DELETE', path: `/api/v1/alerts/channels/${await freshChannel('webhook')}` }), 'alerts.manage'),
      'POST /api/v1/alerts/channels/{id}/test': superOnly(async () => ({ method: 'POST', path: `/api/v1/alerts/channels/${await freshChannel('webhook')}/test` }), 'alerts.manage'),
      'GET /api/v1/alerts/channels/{id}/deliveries': superOnly(async () => ({ method: 'GET', path: `/api/v1/alerts/channels/${await freshChannel('webhook')}/deliveries` }), 'alerts.manage'),
      'GET /api/v1/alerts/settings': superOnly(get('/api/v1/alerts/settings'), 'alerts.manage'),
      'PATCH /api/v1/alerts/settings': superOnly(async () => ({ method: 'PATCH', path: '/api/v1/alerts/settings', body: { reminder_hours: 24 } }), 'alerts.manage'),
      'GET /api/v1/alerts/subscriptions': { auth: 'user', make: get('/api/v1/alerts/subscriptions') },
      // Subscribing names sites: each must be one the caller may read.
      'POST /api/v1/alerts/subscriptions': { auth: 'user', action: 'site.read', make: async (_c, s) => ({ method: 'POST', path: '/api/v1/alerts/subscriptions', body: { channel_id: await freshChannel('email'), site_ids: [siteOf(s)] } }) },
      // Only one's own subscription; anyone else's (a super_admin's too) is "not found".
      'DELETE /api/v1/alerts/subscriptions/{id}': {
        auth: 'user',
        make: async (c, s) => {
          const owner = s === 'own' ? (userIdOf(c) ?? f.superId) : await freshUser();
          const sub = await alertsRepo(t.server.ctx).subscribe({ userId: owner, channelId: await freshChannel('email'), siteIds: null, onSuccess: false });
          return { method: 'DELETE', path: `/api/v1/alerts/subscriptions/${sub.id}` };
        },
        override: (c, s) => (subjectOf(c) && c !== 'node' ? (s === 'own' ? 'ok' : 'hidden') : undefined),
      },
      'GET /api/v1/sites/{id}/alerts': { auth: 'user', action: 'site.read', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/sites/${siteOf(s)}/alerts` }) },
      'PUT /api/v1/sites/{id}/alerts': { auth: 'user', action: 'site.write', make: async (_c, s) => ({ method: 'PUT', path: `/api/v1/sites/${siteOf(s)}/alerts`, body: { freshness_hours: 24 } }) },
      'POST /api/v1/agent/join': { auth: 'public', make: async () => ({ method: 'POST', path: '/api/v1/agent/join', body: { code: await joinCode(), hostname: `j-${rand()}.example.com` } }) },
      // The resource is the calling node itself, so there is no foreign case: only its own jobs come back.
      'POST /api/v1/agent/poll': {
        auth: 'node',
        action: 'agent.poll',
        make: async () => ({ method: 'POST', path: '/api/v1/agent/poll' }),
        override: (c) => (c === 'node' ? 'ok' : undefined),
        check: (_c, _s, body) => {
          const job = (body as { job: { node_id: string } | null }).job;
          return job === null || job.node_id === f.nodeA ? undefined : `handed node A a job of node ${job.node_id}`;
        },
      },
      // The resource is the calling node itself: no foreign case.
      'POST /api/v1/agent/scan': {
        auth: 'node',
        action: 'agent.report',
        make: async () => ({ method: 'POST', path: '/api/v1/agent/scan', body: { sites: [{ path: '/var/www/scanned', name: 'scanned', db_name: 'wp', table_prefix: 'wp_', wp_version: '6.5', error: null }] } }),
        override: (c) => (c === 'node' ? 'ok' : undefined),
      },
      'POST /api/v1/agent/jobs/{id}/progress': {
        auth: 'node',
        action: 'agent.report',
        make: async (_c, s) => ({ method: 'POST', path: `/api/v1/agent/jobs/${jobOf(s)}/progress`, body: { status: 'running', progress: 5, stage: 'backup_db', stage_detail: 'matrix', error: null } }),
      },
      'POST /api/v1/agent/jobs/{id}/finish': {
        auth: 'node',
        action: 'agent.report',
        make: async (_c, s) => ({ method: 'POST', path: `/api/v1/agent/jobs/${await freshJob(s)}/finish`, body: { status: 'failed', stage: null, error: 'matrix' } }),
      },
      'POST /api/v1/agent/jobs/{id}/upload/start': { auth: 'node', action: 'agent.report', make: async (_c, s) => ({ method: 'POST', path: `/api/v1/agent/jobs/${jobOf(s)}/upload/start` }) },
      'POST /api/v1/agent/jobs/{id}/upload/parts': { auth: 'node', action: 'agent.report', make: async (_c, s) => ({ method: 'POST', path: `/api/v1/agent/jobs/${jobOf(s)}/upload/parts`, body: { part_numbers: [1] } }) },
      'POST /api/v1/agent/jobs/{id}/upload/complete': {
        auth: 'node',
        action: 'agent.report',
        make: async (_c, s) => ({ method: 'POST', path: `/api/v1/agent/jobs/${jobOf(s)}/upload/complete`, body: { parts: [{ part_number: 1, etag: 'x' }], size: 1, sha256: 'b'.repeat(64) } }),
      },
      'POST /api/v1/agent/jobs/{id}/upload/abort': { auth: 'node', action: 'agent.report', make: async (_c, s) => ({ method: 'POST', path: `/api/v1/agent/jobs/${jobOf(s)}/upload/abort` }) },
    };

    async function call(req: Req, token: string | null): Promise<Answer> {
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      if (req.body !== undefined) headers['content-type'] = 'application/json';
      return send(t.url + req.path, { method: req.method, headers, body: req.body === undefined ? undefined : JSON.stringify(req.body) });
    }

    it('has an entry for every route in the OpenAPI document, and every action is used by a route', async () => {
      const doc = await t.api('GET', '/api/openapi.json');
      assert.equal(doc.status, 200);
      const routes = Object.entries(doc.body.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
      const missing = routes.filter((r) => !(r in ROUTES));
      assert.deepEqual(missing, [], `add these routes to ROUTES in test/server/api/route-matrix.test.ts: ${missing.join(', ')}`);
      const stale = Object.keys(ROUTES).filter((r) => !routes.includes(r));
      assert.deepEqual(stale, [], 'ROUTES lists routes the app no longer has');
      const used = new Set(Object.values(ROUTES).map((r) => r.action));
      assert.deepEqual(ACTION_NAMES.filter((a) => !used.has(a)), [], 'actions no route checks');
    });

    it('answers every route, for every caller, on own and foreign resources, as roles.ts says', async (tc) => {
      const doc = await t.api('GET', '/api/openapi.json');
      const routes = Object.entries(doc.body.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
      const checkAnswer = answerChecker(doc.body);
      const wrong: string[] = [];
      let cases = 0;
      const statuses = new Map<number, number>();
      for (const route of routes) {
        const spec = ROUTES[route];
        assert.ok(spec, `no matrix entry for ${route}: add it to ROUTES in test/server/api/route-matrix.test.ts`);
        for (const c of CALLERS) {
          for (const s of SCOPES) {
            const req = await spec.make(c, s);
            const res = await call(req, req.token === undefined ? tokenOf(c) : req.token);
            cases++;
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            const off = checkAnswer(req.method, route.slice(route.indexOf(' ') + 1), res);
            if (off) wrong.push(`${route} as ${c} (${s}): ${off}`);
            const got = classify(res.status);
            const want = expected(spec, c, s);
            if (got !== want) wrong.push(`${route} as ${c} (${s}): ${res.status}, expected ${want}: ${JSON.stringify(res.body).slice(0, 200)}`);
            else if (got === 'ok' && spec.check) {
              const problem = spec.check(c, s, res.body);
              if (problem) wrong.push(`${route} as ${c} (${s}): ${problem}`);
            }
            // Keep the fixture's provider the default for the backups started later.
            if (route === 'POST /api/v1/storage-providers/{id}/default' && res.status === 200) await repos().storageProviders.setDefault(f.providerId);
          }
        }
      }
      tc.diagnostic(`${routes.length} routes, ${cases} cases; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`);
      assert.ok(cases >= routes.length * CALLERS.length * SCOPES.length);
      assert.deepEqual(wrong, []);
      // The matrix changed none of its own fixtures.
      assert.equal((await repos().nodes.get(f.nodeA))?.hasKey, true);
      assert.ok(await repos().sites.get(f.siteA));
      assert.equal((await repos().backups.get(f.backupB))?.status, 'completed');
    });

    it('hands out a part-upload URL only as its own credential (a route the OpenAPI document hides)', async () => {
      // PUT /api/v1/agent/uploads/{token}/parts/{n}: a forged token is refused whoever calls.
      for (const c of CALLERS) {
        const token = tokenOf(c);
        const res = await fetch(`${t.url}/api/v1/agent/uploads/forged.${rand()}/parts/1`, {
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: 'x',
        });
        await res.text();
        assert.ok(res.status === 403 || res.status === 400, `as ${c}: ${res.status}`);
      }
    });
  });
}
