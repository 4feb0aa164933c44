import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import { createRepos } from '../../../src/server/db/repos.ts';
import { makeBucket, removeBucket } from '../../helpers/s3.ts';
import { DIALECTS, startTestServer, twoNodeFleet, TEST_PASSWORD, type ApiResponse, type TestServer } from '../../helpers/server.ts';
import { services } from '../../helpers/services.ts';

// The admin API on both databases: users, tokens, nodes, storage providers, audit. Every
// response body is kept, and the last test checks no secret ever appeared in one.

type Caller = 'super' | 'node_admin' | 'site_admin' | 'none' | 'node';
const CALLERS: Caller[] = ['super', 'node_admin', 'site_admin', 'none', 'node'];
type Scope = 'own' | 'foreign';

const STRONG = 'violet tractor moonlight 7';
const JSON_HEADERS = { 'content-type': 'application/json' };
const HUGE = JSON.stringify({ name: 'x'.repeat(2 << 20) });
const rand = (): string => randomBytes(4).toString('hex');

interface World {
  nodeA: string;
  nodeB: string;
  siteA: string;
  siteB: string;
  superId: string;
  nodeAdmin: { id: string; token: string };
  siteAdmin: { id: string; token: string };
  nodeKey: string;
}

for (const dialect of DIALECTS) {
  describe(`admin API (${dialect})`, () => {
    let t: TestServer;
    let w: World;
    /** Every response body this suite saw, for the secrets check. */
    const bodies: string[] = [];
    /** Token values: each may appear only in the one response that created it. */
    const createdTokens = new Map<string, number>();
    const secrets = new Set<string>([TEST_PASSWORD, STRONG]);

    async function api(method: string, path: string, o: Parameters<TestServer['api']>[2] = {}): Promise<ApiResponse> {
      const res = await t.api(method, path, o);
      bodies.push(typeof res.body === 'string' ? res.body : JSON.stringify(res.body ?? null));
      return res;
    }

    const tokenOf = (c: Caller): string | null =>
      ({ super: t.adminToken, node_admin: w.nodeAdmin.token, site_admin: w.siteAdmin.token, none: null, node: w.nodeKey })[c];
    const userIdOf = (c: Caller): string | undefined => ({ super: w.superId, node_admin: w.nodeAdmin.id, site_admin: w.siteAdmin.id, none: undefined, node: undefined })[c];
    const repos = (): TestServer['server']['ctx']['repos'] => t.server.ctx.repos;
    const freshUser = async (): Promise<string> => (await repos().users.create({ email: `victim-${rand()}@example.com`, passwordHash: 'scrypt$x', role: 'site_admin' })).id;
    const freshNode = async (): Promise<string> => (await repos().nodes.create({ hostname: `n-${rand()}.example.com`, status: 'active' })).id;
    const freshProvider = async (): Promise<string> => (await repos().storageProviders.create({ name: `p-${rand()}`, type: 'local', rootPath: '/srv/backups' })).id;
    const freshApiToken = async (uid: string): Promise<string> => (await repos().tokens.create({ userId: uid, tokenHash: hashToken(generateToken('api')), kind: 'api', name: 'victim' })).id;

    async function snapshot(): Promise<string> {
      const r = repos();
      const users = await Promise.all((await r.users.list()).map(async (u) => ({ ...u, nodes: await r.users.assignedNodeIds(u.id), sites: await r.users.assignedSiteIds(u.id) })));
      const nodes = (await r.nodes.list()).map((n) => ({ ...n, lastSeen: null }));
      const tokens = await Promise.all(users.map(async (u) => (await r.tokens.listForUser(u.id)).map((x) => ({ ...x, lastUsedAt: null }))));
      const audit = (await r.audit.list({ limit: 100_000 })).length;
      return JSON.stringify({ users, nodes, providers: await r.storageProviders.list(), tokens, audit, joinCodes: (await r.joinCodes.listOpen()).length });
    }

    before(async () => {
      t = await startTestServer(dialect);
      const { nodeA, nodeB, keyA, keyB, siteA, siteB, superId, nodeAdmin, siteAdmin } = await twoNodeFleet(t);
      for (const key of [keyA, keyB]) secrets.add(key).add(hashToken(key));
      w = { nodeA, nodeB, siteA, siteB, superId, nodeAdmin, siteAdmin, nodeKey: keyA };
    });
    after(() => t.close());

    it('creates, reads, changes and deletes users, with assignments, and audits each change', async () => {
      const email = `Ops-${rand()}@Example.com`;
      const created = await api('POST', '/api/v1/users', { body: { email, password: STRONG, role: 'node_admin' } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      assert.equal(created.body.email, email.toLowerCase());
      assert.deepEqual(created.body.node_ids, []);
      assert.equal((await api('POST', '/api/v1/users', { body: { email: email.toUpperCase(), password: STRONG, role: 'site_admin' } })).status, 409);
      assert.ok((await api('GET', '/api/v1/users')).body.users.some((u: { id: string }) => u.id === id));

      assert.equal((await api('PUT', `/api/v1/users/${id}/nodes/${w.nodeA}`)).status, 200);
      assert.equal((await api('PUT', `/api/v1/users/${id}/nodes/${w.nodeA}`)).status, 200, 'assigning twice is fine');
      assert.equal((await api('PUT', `/api/v1/users/${id}/sites/${w.siteB}`)).status, 200);
      const got = await api('GET', `/api/v1/users/${id}`);
      assert.deepEqual([got.body.node_ids, got.body.site_ids], [[w.nodeA], [w.siteB]]);

      // The new user signs in, sees themselves, and a password change signs their sessions out.
      const login = await api('POST', '/api/v1/auth/login', { body: { email, password: STRONG }, token: null });
      assert.equal(login.status, 200);
      const me = await api('GET', '/api/v1/auth/me', { token: login.body.token });
      assert.deepEqual([me.body.id, me.body.role, me.body.node_ids], [id, 'node_admin', [w.nodeA]]);
      const newPassword = 'quiet harbour lantern 93';
      secrets.add(newPassword);
      const patched = await api('PATCH', `/api/v1/users/${id}`, { body: { role: 'site_admin', password: newPassword } });
      assert.equal(patched.status, 200);
      assert.equal(patched.body.role, 'site_admin');
      assert.equal((await api('GET', '/api/v1/auth/me', { token: login.body.token })).status, 401);
      assert.equal((await api('POST', '/api/v1/auth/login', { body: { email, password: STRONG }, token: null })).status, 401);
      const again = await api('POST', '/api/v1/auth/login', { body: { email, password: newPassword }, token: null });
      assert.equal(again.status, 200);

      // Logout revokes only the token it was made with.
      assert.equal((await api('POST', '/api/v1/auth/logout', { token: again.body.token })).status, 204);
      assert.equal((await api('GET', '/api/v1/auth/me', { token: again.body.token })).status, 401);

      assert.equal((await api('DELETE', `/api/v1/users/${id}/nodes/${w.nodeA}`)).status, 204);
      assert.equal((await api('DELETE', `/api/v1/users/${id}/sites/${w.siteB}`)).status, 204);
      assert.deepEqual((await api('GET', `/api/v1/users/${id}`)).body.node_ids, []);
      assert.equal((await api('DELETE', `/api/v1/users/${id}`)).status, 204);
      assert.equal((await api('GET', `/api/v1/users/${id}`)).status, 404);

      // The last super_admin can neither go nor be demoted; nobody deletes themselves.
      assert.equal((await api('PATCH', `/api/v1/users/${w.superId}`, { body: { role: 'site_admin' } })).status, 409);
      assert.equal((await api('DELETE', `/api/v1/users/${w.superId}`)).status, 409);

      const actions = (await repos().audit.list({ targetId: id, limit: 50 })).map((e) => e.action).sort();
      assert.deepEqual(actions, ['auth.login', 'auth.login', 'auth.logout', 'user.assign_node', 'user.assign_node', 'user.assign_site', 'user.create', 'user.delete', 'user.unassign_node', 'user.unassign_site', 'user.update']);
    });

    it('creates API tokens shown once, lists them without values, and revokes only your own', async () => {
      const res = await api('POST', '/api/v1/tokens', { body: { name: 'ci script', expires_in_days: 30 }, token: w.siteAdmin.token });
      assert.equal(res.status, 201);
      assert.match(res.body.token, /^wpb_a_[A-Za-z0-9_-]{43}$/);
      createdTokens.set(res.body.token, bodies.length - 1);
      assert.ok(Date.parse(res.body.expires_at) > Date.now() + 29 * 86_400_000);
      const me = await api('GET', '/api/v1/auth/me', { token: res.body.token });
      assert.equal(me.body.id, w.siteAdmin.id, 'the API token works as its user');
      const list = await api('GET', '/api/v1/tokens', { token: w.siteAdmin.token });
      assert.equal(list.status, 200);
      const row = list.body.tokens.find((x: { id: string }) => x.id === res.body.id);
      assert.deepEqual([row.kind, row.name, row.current], ['api', 'ci script', false]);
      assert.ok(list.body.tokens.some((x: { current: boolean; kind: string }) => x.current && x.kind === 'session'));
      assert.ok(list.body.tokens.every((x: Record<string, unknown>) => !('token' in x) && !('token_hash' in x)));
      // Another non-super user's token is "not found"; the owner revokes it.
      assert.equal((await api('DELETE', `/api/v1/tokens/${res.body.id}`, { token: w.nodeAdmin.token })).status, 404);
      assert.equal((await api('DELETE', `/api/v1/tokens/${res.body.id}`, { token: w.siteAdmin.token })).status, 204);
      assert.equal((await api('GET', '/api/v1/auth/me', { token: res.body.token })).status, 401);
      const actions = (await repos().audit.list({ targetId: res.body.id })).map((e) => e.action).sort();
      assert.deepEqual(actions, ['token.create', 'token.revoke']);
    });

    it('lists nodes as far as the caller may see them, edits them, and makes hashed one-time join codes', async () => {
      const ids = async (token: string): Promise<string[]> => (await api('GET', '/api/v1/nodes', { token })).body.nodes.map((n: { id: string }) => n.id);
      assert.ok((await ids(t.adminToken)).includes(w.nodeB));
      assert.deepEqual(await ids(w.nodeAdmin.token), [w.nodeA]);
      assert.deepEqual(await ids(w.siteAdmin.token), []);
      const one = await api('GET', `/api/v1/nodes/${w.nodeA}`, { token: w.nodeAdmin.token });
      assert.deepEqual([one.body.hostname, one.body.has_key], ['a.example.com', true]);
      assert.ok(!('node_key_hash' in one.body));

      const node = await freshNode();
      const patched = await api('PATCH', `/api/v1/nodes/${node}`, { body: { hostname: 'renamed.example.com', status: 'disabled', quota_bytes: 5_000_000 } });
      assert.equal(patched.status, 200);
      assert.deepEqual([patched.body.hostname, patched.body.status, patched.body.quota_bytes], ['renamed.example.com', 'disabled', 5_000_000]);
      assert.equal((await api('PATCH', `/api/v1/nodes/${node}`, { body: { quota_bytes: null } })).body.quota_bytes, null);
      assert.equal((await api('DELETE', `/api/v1/nodes/${w.nodeB}`)).status, 409, 'a node with sites stays');
      assert.equal((await api('DELETE', `/api/v1/nodes/${node}`)).status, 204);
      assert.equal((await api('GET', `/api/v1/nodes/${node}`)).status, 404);

      const code = await api('POST', '/api/v1/nodes/join-codes');
      assert.equal(code.status, 201);
      assert.match(code.body.code, /^wpb_j_/);
      createdTokens.set(code.body.code, bodies.length - 1);
      const expires = Date.parse(code.body.expires_at) - Date.now();
      assert.ok(expires > 59 * 60_000 && expires <= 60 * 60_000);
      const open = await repos().joinCodes.listOpen();
      assert.ok(open.some((c) => c.codeHash === hashToken(code.body.code)), 'stored as its hash');
      assert.ok(!JSON.stringify(open).includes(code.body.code));
      const actions = (await repos().audit.list({ targetId: node })).map((e) => e.action).sort();
      assert.deepEqual(actions, ['node.delete', 'node.update', 'node.update']);
      assert.equal((await repos().audit.list({ targetType: 'join_code' })).length >= 1, true);
    });

    it('manages local and s3 storage providers, checks buckets first, and never returns a secret', async () => {
      const local = await api('POST', '/api/v1/storage-providers', { body: { name: `local-${rand()}`, type: 'local', root_path: '/srv/wpb', is_default: true } });
      assert.equal(local.status, 201, JSON.stringify(local.body));
      assert.deepEqual([local.body.type, local.body.root_path, local.body.is_default, local.body.has_credentials], ['local', '/srv/wpb', true, false]);

      const m = services().minio;
      secrets.add(m.secretKey);
      const bucket = await makeBucket('wpb-admin');
      try {
        const s3Body = { name: `s3-${rand()}`, type: 's3', endpoint: m.endpoint, bucket, region: m.region, prefix: 'fleet/', path_style: true, access_key_id: m.accessKey, secret_access_key: m.secretKey };
        const s3 = await api('POST', '/api/v1/storage-providers', { body: s3Body });
        assert.equal(s3.status, 201, JSON.stringify(s3.body));
        assert.deepEqual([s3.body.has_credentials, s3.body.access_key_id, s3.body.bucket, s3.body.is_default], [true, m.accessKey, bucket, false]);
        assert.ok(!('secret_access_key' in s3.body));
        const stored = await repos().storageProviders.credentials(s3.body.id);
        assert.equal(stored?.secretAccessKey, m.secretKey, 'kept, encrypted, for the server');

        const before = await snapshot();
        const wrongSecret = 'Wr0ngSecretKeyThatIsLongEnough';
        secrets.add(wrongSecret);
        const bad = await api('POST', '/api/v1/storage-providers', { body: { ...s3Body, name: `s3-${rand()}`, secret_access_key: wrongSecret } });
        assert.equal(bad.status, 400);
        assert.match(bad.body.error.message, /preflight/i);
        const noBucket = await api('POST', '/api/v1/storage-providers', { body: { ...s3Body, name: `s3-${rand()}`, bucket: `missing-${rand()}` } });
        assert.equal(noBucket.status, 400);
        assert.equal((await api('PATCH', `/api/v1/storage-providers/${s3.body.id}`, { body: { bucket: `missing-${rand()}` } })).status, 400);
        assert.equal((await api('PATCH', `/api/v1/storage-providers/${s3.body.id}`, { body: { secret_access_key: wrongSecret } })).status, 400);
        assert.equal(await snapshot(), before, 'failed preflights change nothing');

        const renamed = await api('PATCH', `/api/v1/storage-providers/${s3.body.id}`, { body: { name: `s3-renamed-${rand()}`, prefix: 'other/' } });
        assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
        assert.equal(renamed.body.prefix, 'other/');
        const def = await api('POST', `/api/v1/storage-providers/${s3.body.id}/default`);
        assert.equal(def.body.is_default, true);
        assert.equal((await api('GET', `/api/v1/storage-providers/${local.body.id}`)).body.is_default, false);
        const list = await api('GET', '/api/v1/storage-providers', { token: w.nodeAdmin.token });
        assert.equal(list.status, 200);
        assert.ok(list.body.storage_providers.some((p: { id: string }) => p.id === s3.body.id));
        assert.equal((await api('DELETE', `/api/v1/storage-providers/${s3.body.id}`)).status, 204);
        const actions = (await repos().audit.list({ targetId: s3.body.id })).map((e) => e.action).sort();
        assert.deepEqual(actions, ['storage.create', 'storage.delete', 'storage.set_default', 'storage.update']);
        assert.ok(!JSON.stringify(await repos().audit.list({ limit: 1000 })).includes(m.secretKey), 'no secret in the audit log');
      } finally {
        await removeBucket(bucket);
      }
      assert.equal((await api('DELETE', `/api/v1/storage-providers/${local.body.id}`)).status, 204);
    });

    it('stores SQL-looking and path-looking names literally', async () => {
      const sqlName = `x'); DROP TABLE storage_providers;-- ${rand()}`;
      const p = await api('POST', '/api/v1/storage-providers', { body: { name: sqlName, type: 'local', root_path: "/srv/it's; DROP TABLE nodes;--" } });
      assert.equal(p.status, 201);
      assert.equal((await api('GET', `/api/v1/storage-providers/${p.body.id}`)).body.name, sqlName);
      const traversal = await api('POST', '/api/v1/storage-providers', { body: { name: '../../etc/passwd', type: 'local', root_path: '/srv/x' } });
      assert.equal(traversal.status, 201);
      assert.equal(traversal.body.name, '../../etc/passwd');
      const tok = await api('POST', '/api/v1/tokens', { body: { name: "'; DELETE FROM tokens;--" } });
      assert.equal(tok.status, 201);
      createdTokens.set(tok.body.token, bodies.length - 1);
      assert.equal(tok.body.name, "'; DELETE FROM tokens;--");
      const email = `o'brien--${rand()}@example.com`;
      const u = await api('POST', '/api/v1/users', { body: { email, password: STRONG, role: 'site_admin' } });
      assert.equal(u.status, 201);
      assert.equal(u.body.email, email);
      assert.ok((await repos().nodes.list()).length >= 2, 'tables are all still there');
    });

    it('pages through the audit log without skipping entries that share a millisecond', async () => {
      const at = [5_000, 5_000, 5_000, 4_000, 4_000, 4_000, 3_000, 3_000];
      const ids: string[] = [];
      for (const ms of at) {
        const r = createRepos(t.server.ctx.db, { secrets: t.server.ctx.secrets, now: () => ms });
        ids.push((await r.audit.record({ action: 'test.page', targetType: 'pagetest' })).id);
      }
      for (const limit of [1, 2, 3, 4, 100]) {
        const seen: string[] = [];
        let before: number | null = null;
        for (let pages = 0; pages < 20; pages++) {
          const page: ApiResponse = await api('GET', `/api/v1/audit?target_type=pagetest&limit=${limit}${before === null ? '' : `&before=${before}`}`);
          assert.equal(page.status, 200);
          seen.push(...page.body.entries.map((e: { id: string }) => e.id));
          before = page.body.next_before;
          if (before === null) break;
        }
        assert.deepEqual([...seen].sort(), [...ids].sort(), `limit ${limit}`);
      }
    });

    it('answers every route for every role as the permission matrix says', async () => {
      interface Case {
        route: string;
        make(c: Caller, s: Scope): Promise<{ method: string; path: string; body?: unknown; token?: string | null }>;
        /** [own, foreign] per caller. */
        expect: Record<Caller, [number, number]>;
      }
      const superOnly = (ok: number): Record<Caller, [number, number]> => ({ super: [ok, ok], node_admin: [403, 403], site_admin: [403, 403], none: [401, 401], node: [403, 403] });
      const anyUser = (ok: number): Record<Caller, [number, number]> => ({ super: [ok, ok], node_admin: [ok, ok], site_admin: [ok, ok], none: [401, 401], node: [403, 403] });
      const nodeScoped = (ok: number): Record<Caller, [number, number]> => ({ super: [ok, ok], node_admin: [ok, 403], site_admin: [403, 403], none: [401, 401], node: [403, 403] });
      const nodeOf = (s: Scope): string => (s === 'own' ? w.nodeA : w.nodeB);
      const siteOf = (s: Scope): string => (s === 'own' ? w.siteA : w.siteB);
      const userFor = async (c: Caller, s: Scope): Promise<string> => (s === 'own' ? (userIdOf(c) ?? w.superId) : freshUser());
      const cases: Case[] = [
        { route: 'GET /users', make: async () => ({ method: 'GET', path: '/api/v1/users' }), expect: superOnly(200) },
        { route: 'POST /users', make: async () => ({ method: 'POST', path: '/api/v1/users', body: { email: `m-${rand()}@example.com`, password: STRONG, role: 'site_admin' } }), expect: superOnly(201) },
        { route: 'GET /users/{id}', make: async (c, s) => ({ method: 'GET', path: `/api/v1/users/${await userFor(c, s)}` }), expect: superOnly(200) },
        { route: 'PATCH /users/{id}', make: async () => ({ method: 'PATCH', path: `/api/v1/users/${await freshUser()}`, body: { role: 'node_admin' } }), expect: superOnly(200) },
        { route: 'DELETE /users/{id}', make: async () => ({ method: 'DELETE', path: `/api/v1/users/${await freshUser()}` }), expect: superOnly(204) },
        { route: 'PUT /users/{id}/nodes/{node_id}', make: async (_c, s) => ({ method: 'PUT', path: `/api/v1/users/${await freshUser()}/nodes/${nodeOf(s)}` }), expect: superOnly(200) },
        { route: 'DELETE /users/{id}/nodes/{node_id}', make: async (_c, s) => ({ method: 'DELETE', path: `/api/v1/users/${await freshUser()}/nodes/${nodeOf(s)}` }), expect: superOnly(204) },
        { route: 'PUT /users/{id}/sites/{site_id}', make: async (_c, s) => ({ method: 'PUT', path: `/api/v1/users/${await freshUser()}/sites/${siteOf(s)}` }), expect: superOnly(200) },
        { route: 'DELETE /users/{id}/sites/{site_id}', make: async (_c, s) => ({ method: 'DELETE', path: `/api/v1/users/${await freshUser()}/sites/${siteOf(s)}` }), expect: superOnly(204) },
        { route: 'GET /auth/me', make: async () => ({ method: 'GET', path: '/api/v1/auth/me' }), expect: anyUser(200) },
        {
          route: 'POST /auth/logout',
          make: async (c) => {
            const uid = userIdOf(c);
            if (!uid) return { method: 'POST', path: '/api/v1/auth/logout' };
            const token = generateToken('session');
            await repos().tokens.create({ userId: uid, tokenHash: hashToken(token), kind: 'session', name: 'matrix', expiresAt: Date.now() + 60_000 });
            return { method: 'POST', path: '/api/v1/auth/logout', token };
          },
          expect: anyUser(204),
        },
        { route: 'GET /tokens', make: async () => ({ method: 'GET', path: '/api/v1/tokens' }), expect: anyUser(200) },
        { route: 'POST /tokens', make: async () => ({ method: 'POST', path: '/api/v1/tokens', body: { name: 'matrix' } }), expect: anyUser(201) },
        {
          route: 'DELETE /tokens/{id}',
          make: async (c, s) => ({ method: 'DELETE', path: `/api/v1/tokens/${await freshApiToken(s === 'own' ? (userIdOf(c) ?? w.superId) : await freshUser())}` }),
          expect: { super: [204, 204], node_admin: [204, 404], site_admin: [204, 404], none: [401, 401], node: [403, 403] },
        },
        { route: 'GET /nodes', make: async () => ({ method: 'GET', path: '/api/v1/nodes' }), expect: anyUser(200) },
        { route: 'GET /nodes/{id}', make: async (_c, s) => ({ method: 'GET', path: `/api/v1/nodes/${nodeOf(s)}` }), expect: nodeScoped(200) },
        { route: 'PATCH /nodes/{id}', make: async (_c, s) => ({ method: 'PATCH', path: `/api/v1/nodes/${nodeOf(s)}`, body: { quota_bytes: 10 ** 12 } }), expect: nodeScoped(200) },
        {
          route: 'DELETE /nodes/{id}',
          make: async (_c, s) => {
            const node = await freshNode();
            if (s === 'own') await repos().users.assignNode(w.nodeAdmin.id, node);
            return { method: 'DELETE', path: `/api/v1/nodes/${node}` };
          },
          expect: nodeScoped(204),
        },
        { route: 'POST /nodes/join-codes', make: async () => ({ method: 'POST', path: '/api/v1/nodes/join-codes' }), expect: superOnly(201) },
        { route: 'GET /storage-providers', make: async () => ({ method: 'GET', path: '/api/v1/storage-providers' }), expect: { ...superOnly(200), node_admin: [200, 200] } },
        { route: 'POST /storage-providers', make: async () => ({ method: 'POST', path: '/api/v1/storage-providers', body: { name: `m-${rand()}`, type: 'local', root_path: '/srv/m' } }), expect: superOnly(201) },
        { route: 'GET /storage-providers/{id}', make: async () => ({ method: 'GET', path: `/api/v1/storage-providers/${await freshProvider()}` }), expect: { ...superOnly(200), node_admin: [200, 200] } },
        { route: 'PATCH /storage-providers/{id}', make: async () => ({ method: 'PATCH', path: `/api/v1/storage-providers/${await freshProvider()}`, body: { root_path: '/srv/other' } }), expect: superOnly(200) },
        { route: 'DELETE /storage-providers/{id}', make: async () => ({ method: 'DELETE', path: `/api/v1/storage-providers/${await freshProvider()}` }), expect: superOnly(204) },
        { route: 'POST /storage-providers/{id}/default', make: async () => ({ method: 'POST', path: `/api/v1/storage-providers/${await freshProvider()}/default` }), expect: superOnly(200) },
        { route: 'GET /audit', make: async () => ({ method: 'GET', path: '/api/v1/audit?limit=5' }), expect: superOnly(200) },
      ];
      const wrong: string[] = [];
      for (const k of cases) {
        for (const c of CALLERS) {
          for (const [i, s] of (['own', 'foreign'] as const).entries()) {
            const req = await k.make(c, s);
            const res = await api(req.method, req.path, { body: req.body, token: req.token === undefined ? tokenOf(c) : req.token });
            if (res.body?.token) createdTokens.set(res.body.token, bodies.length - 1);
            if (res.body?.code) createdTokens.set(res.body.code, bodies.length - 1);
            const want = k.expect[c][i];
            if (res.status !== want) wrong.push(`${k.route} as ${c} (${s}): ${res.status}, expected ${want} ${JSON.stringify(res.body)}`);
          }
        }
      }
      assert.deepEqual(wrong, []);
      // The node key still works and nothing changed the matrix's own fixtures.
      assert.equal((await repos().nodes.get(w.nodeA))?.hasKey, true);
    });

    it('refuses bad input on every route with 4xx and changes nothing', async () => {
      const unknown = randomUUID();
      const victim = await freshUser();
      const provider = await freshProvider();
      const m = services().minio;
      const cases: [string, string, { body?: unknown; raw?: string; headers?: Record<string, string> }, number][] = [
        ['POST', '/api/v1/users', { body: { email: 42, password: STRONG, role: 'site_admin' } }, 400],
        ['POST', '/api/v1/users', { body: { email: 'weak@example.com', password: 'short', role: 'site_admin' } }, 400],
        ['POST', '/api/v1/users', { body: { email: 'weak@example.com', password: 'Password2024!', role: 'site_admin' } }, 400],
        ['POST', '/api/v1/users', { body: { email: 'god@example.com', password: STRONG, role: 'god' } }, 400],
        ['POST', '/api/v1/users', { body: { email: 'x@example.com', password: STRONG, role: 'site_admin', is_admin: true } }, 400],
        ['POST', '/api/v1/users', { body: { email: "a'); DROP TABLE users;--@x.com", password: STRONG, role: 'site_admin' } }, 400],
        ['POST', '/api/v1/users', { body: { email: 'admin@example.com', password: STRONG, role: 'site_admin' } }, 409],
        ['POST', '/api/v1/users', { body: [1, 2] }, 400],
        ['POST', '/api/v1/users', {}, 400],
        ['POST', '/api/v1/users', { raw: '{"email":', headers: JSON_HEADERS }, 400],
        ['POST', '/api/v1/users', { raw: HUGE, headers: JSON_HEADERS }, 413],
        ['GET', '/api/v1/users/not-a-uuid', {}, 400],
        ['GET', `/api/v1/users/${unknown}`, {}, 404],
        ['GET', '/api/v1/users/..%2F..%2Fetc%2Fpasswd', {}, 400],
        ['GET', "/api/v1/users/1'%20OR%20'1'='1", {}, 400],
        ['PATCH', `/api/v1/users/${victim}`, { body: {} }, 400],
        ['PATCH', `/api/v1/users/${victim}`, { body: { role: 1 } }, 400],
        ['PATCH', `/api/v1/users/${victim}`, { body: { password: 'weak' } }, 400],
        ['PATCH', `/api/v1/users/${victim}`, { body: { email: 'new@example.com' } }, 400],
        ['PATCH', `/api/v1/users/${unknown}`, { body: { role: 'site_admin' } }, 404],
        ['PATCH', `/api/v1/users/${victim}`, { raw: HUGE, headers: JSON_HEADERS }, 413],
        ['DELETE', `/api/v1/users/${unknown}`, {}, 404],
        ['DELETE', '/api/v1/users/42', {}, 400],
        ['PUT', `/api/v1/users/${victim}/nodes/${unknown}`, {}, 404],
        ['PUT', `/api/v1/users/${unknown}/nodes/${w.nodeA}`, {}, 404],
        ['PUT', `/api/v1/users/${victim}/nodes/x`, {}, 400],
        ['PUT', `/api/v1/users/${victim}/sites/${unknown}`, {}, 404],
        ['DELETE', `/api/v1/users/${victim}/nodes/${unknown}`, {}, 404],
        ['DELETE', `/api/v1/users/${unknown}/sites/${w.siteA}`, {}, 404],
        ['POST', '/api/v1/auth/logout', { body: { all: true } }, 400],
        ['POST', '/api/v1/tokens', { body: { name: 5 } }, 400],
        ['POST', '/api/v1/tokens', { body: { name: '' } }, 400],
        ['POST', '/api/v1/tokens', { body: { name: 'x\u0000y' } }, 400],
        ['POST', '/api/v1/tokens', { body: { name: 'x', expires_in_days: '7' } }, 400],
        ['POST', '/api/v1/tokens', { body: { name: 'x', expires_in_days: 0 } }, 400],
        ['POST', '/api/v1/tokens', { body: { name: 'x'.repeat(101) } }, 400],
        ['POST', '/api/v1/tokens', { raw: HUGE, headers: JSON_HEADERS }, 413],
        ['DELETE', `/api/v1/tokens/${unknown}`, {}, 404],
        ['DELETE', '/api/v1/tokens/abc', {}, 400],
        ['GET', `/api/v1/nodes/${unknown}`, {}, 404],
        ['PATCH', `/api/v1/nodes/${w.nodeA}`, { body: { status: 'pending' } }, 400],
        ['PATCH', `/api/v1/nodes/${w.nodeA}`, { body: { quota_bytes: -1 } }, 400],
        ['PATCH', `/api/v1/nodes/${w.nodeA}`, { body: { quota_bytes: '1' } }, 400],
        ['PATCH', `/api/v1/nodes/${w.nodeA}`, { body: { quota_bytes: 1.5 } }, 400],
        ['PATCH', `/api/v1/nodes/${w.nodeA}`, { body: { hostname: '../../etc/passwd' } }, 400],
        ['PATCH', `/api/v1/nodes/${w.nodeA}`, { body: { hostname: "x'; DROP TABLE nodes;--" } }, 400],
        ['PATCH', `/api/v1/nodes/${w.nodeA}`, { body: {} }, 400],
        ['PATCH', `/api/v1/nodes/${w.nodeA}`, { body: { node_key_hash: 'x' } }, 400],
        ['PATCH', `/api/v1/nodes/${w.nodeA}`, { raw: HUGE, headers: JSON_HEADERS }, 413],
        ['PATCH', `/api/v1/nodes/${unknown}`, { body: { status: 'active' } }, 404],
        ['DELETE', `/api/v1/nodes/${unknown}`, {}, 404],
        ['DELETE', `/api/v1/nodes/${w.nodeA}`, {}, 409],
        ['POST', '/api/v1/nodes/join-codes', { body: { node_id: 'x' } }, 400],
        ['POST', '/api/v1/nodes/join-codes', { body: { hostname: 'web.example.com' } }, 400],
        ['POST', '/api/v1/nodes/join-codes', { body: { node_id: unknown } }, 404],
        ['POST', '/api/v1/nodes/not-a-uuid/rotate-key', {}, 400],
        ['POST', `/api/v1/nodes/${unknown}/rotate-key`, {}, 404],
        ['POST', `/api/v1/nodes/${w.nodeA}/rotate-key`, { body: { now: true } }, 400],
        ['POST', `/api/v1/nodes/${unknown}/revoke-key`, {}, 404],
        ['PATCH', `/api/v1/users/${victim}`, { body: { disabled: 'yes' } }, 400],
        ['POST', '/api/v1/nodes/join-codes', { raw: HUGE, headers: JSON_HEADERS }, 413],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 'ftp' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 'local' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 'local', root_path: '/srv/../etc' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 'local', root_path: 'relative/dir' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 'local', root_path: '/srv/x', bucket: 'abc' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 's3', bucket: 'abc', access_key_id: 'a' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 's3', bucket: 'Bad_Bucket', access_key_id: 'a', secret_access_key: 'b' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 's3', bucket: 'abc', endpoint: 'ftp://x', access_key_id: 'a', secret_access_key: 'b' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 's3', bucket: 'abc', prefix: '../x/', endpoint: m.endpoint, access_key_id: 'a', secret_access_key: 'b' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 's3', bucket: 'abc', endpoint: m.endpoint, region: m.region, access_key_id: m.accessKey, secret_access_key: 'nope-nope-nope' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 7, type: 'local', root_path: '/srv/x' } }, 400],
        ['POST', '/api/v1/storage-providers', { body: { name: 'f', type: 'local', root_path: '/srv/x', path_style: 'yes' } }, 400],
        ['POST', '/api/v1/storage-providers', { raw: HUGE, headers: JSON_HEADERS }, 413],
        ['PATCH', `/api/v1/storage-providers/${provider}`, { body: {} }, 400],
        ['PATCH', `/api/v1/storage-providers/${provider}`, { body: { is_default: 'yes' } }, 400],
        ['PATCH', `/api/v1/storage-providers/${provider}`, { body: { bucket: 'abc' } }, 400],
        ['PATCH', `/api/v1/storage-providers/${provider}`, { body: { root_path: '/srv/./x/../../root' } }, 400],
        ['PATCH', `/api/v1/storage-providers/${provider}`, { body: { type: 's3' } }, 400],
        ['PATCH', `/api/v1/storage-providers/${unknown}`, { body: { name: 'x' } }, 404],
        ['GET', `/api/v1/storage-providers/${unknown}`, {}, 404],
        ['DELETE', `/api/v1/storage-providers/${unknown}`, {}, 404],
        ['POST', `/api/v1/storage-providers/${unknown}/default`, {}, 404],
        ['POST', `/api/v1/storage-providers/${provider}/default`, { body: { x: 1 } }, 400],
        ['GET', '/api/v1/audit?limit=0', {}, 400],
        ['GET', '/api/v1/audit?limit=abc', {}, 400],
        ['GET', '/api/v1/audit?before=-1', {}, 400],
        ['GET', '/api/v1/audit?user_id=1', {}, 400],
        ['GET', '/api/v1/audit?foo=1', {}, 400],
      ];
      const wrong: string[] = [];
      const start = await snapshot();
      for (const [method, path, o, want] of cases) {
        const res = await api(method, path, o);
        if (res.status !== want) wrong.push(`${method} ${path} ${JSON.stringify(o.body ?? o.raw?.slice(0, 40))}: ${res.status}, expected ${want} ${JSON.stringify(res.body)}`);
        else if (res.body?.error?.code === undefined) wrong.push(`${method} ${path}: no error body`);
        const now = await snapshot();
        if (now !== start) {
          wrong.push(`${method} ${path} ${JSON.stringify(o.body)} changed something`);
          break;
        }
      }
      assert.deepEqual(wrong, []);
    });

    it('never put a password, hash, node key or storage secret in any response', async () => {
      const hashes = await Promise.all((await repos().users.list()).map(async (u) => (await repos().users.credentialsByEmail(u.email))?.passwordHash ?? ''));
      const all = [...secrets, ...hashes.filter((h) => h.length > 20), 'scrypt$', 'node_key_hash', 'password_hash', 'credentials_enc'];
      assert.ok(bodies.length > 300, `saw ${bodies.length} bodies`);
      for (const [i, body] of bodies.entries()) {
        for (const s of all) assert.ok(!body.includes(s), `response ${i} holds a secret (${s.slice(0, 6)}…): ${body.slice(0, 200)}`);
        for (const [token, at] of createdTokens) if (i !== at) assert.ok(!body.includes(token), `response ${i} repeats a token created by response ${at}`);
      }
    });
  });
}
