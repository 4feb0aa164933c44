import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../../src/server/auth/passwords.ts';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import { startServer, type RunningServer } from '../../../src/server/start.ts';
import { streamAccessTiming } from '../../../src/server/stream-access.ts';
import { makeBucket, removeBucket } from '../../helpers/s3.ts';
import { openEvents } from '../../helpers/sse.ts';
import { TEST_PASSWORD, type ApiResponse } from '../../helpers/server.ts';
import { services } from '../../helpers/services.ts';
import { waitFor } from '../../helpers/wait.ts';
import { postgresTarget, type Target } from '../db/targets.ts';

// Two server processes' worth of servers on one PostgreSQL database, sharing only the
// database and WPBACKUP_SECRET_KEY: any server answers any request, and a job goes to
// exactly one of many concurrent polls spread over both.

describe('two servers on one PostgreSQL database', () => {
  let target: Target;
  let a: RunningServer;
  let b: RunningServer;
  let otherDataDir: string;
  let token: string;
  let nodeKey: string;
  let siteId: string;

  const call = async (s: RunningServer, method: string, path: string, auth: string, body?: unknown): Promise<Omit<ApiResponse, 'headers'>> => {
    const res = await fetch(s.url + path, { method, headers: { authorization: `Bearer ${auth}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  before(async () => {
    target = await postgresTarget();
    otherDataDir = mkdtempSync(join(tmpdir(), 'wpb-second-'));
    const env = { WPBACKUP_SECRET_KEY: randomBytes(32).toString('base64') };
    // Ten polls of one node key at once: more than the default cap per key (4) allows.
    const common = { port: 0, host: '127.0.0.1', databaseUrl: target.options.databaseUrl, env, pollWaitMs: 1500, limits: { pollsPerNode: 10 } };
    a = await startServer({ ...common, dataDir: target.options.dataDir });
    b = await startServer({ ...common, dataDir: otherDataDir });
    await a.ctx.repos.users.create({ email: 'ops@example.com', passwordHash: await hashPassword(TEST_PASSWORD), role: 'super_admin' });
    const login = await fetch(`${b.url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'ops@example.com', password: TEST_PASSWORD }) });
    token = ((await login.json()) as { token: string }).token;
    nodeKey = generateToken('node');
    const node = await a.ctx.repos.nodes.create({ hostname: 'web1.example.com', status: 'active', nodeKeyHash: hashToken(nodeKey) });
    const site = await call(a, 'POST', '/api/v1/sites', token, { node_id: node.id, name: 'shared.example.com', wp_path: '/var/www/shared' });
    assert.equal(site.status, 201);
    siteId = site.body.id;
  });
  after(async () => {
    await a.close();
    await b.close();
    await target.cleanup();
    rmSync(otherDataDir, { recursive: true, force: true });
  });

  it('a token from one server works on the other, and a start on one is a conflict on the other', async () => {
    assert.equal((await call(b, 'POST', `/api/v1/sites/${siteId}/backup/start`, token)).status, 202);
    assert.equal((await call(a, 'GET', `/api/v1/sites/${siteId}/backup/status`, token)).body.status, 'running');
    assert.equal((await call(a, 'POST', `/api/v1/sites/${siteId}/backup/start`, token)).status, 409);
  });

  it('hands the job to exactly one of ten concurrent polls over both servers', async () => {
    const polls = await Promise.all(Array.from({ length: 10 }, (_, i) => call(i % 2 ? a : b, 'POST', '/api/v1/agent/poll', nodeKey, {})));
    assert.ok(polls.every((p) => p.status === 200));
    const jobs = polls.map((p) => p.body.job).filter(Boolean);
    assert.equal(jobs.length, 1);
    const jobId = jobs[0].job_id as string;
    const report = { status: 'running', progress: 42, stage: 'create_bundle', stage_detail: 'half way', error: null };
    assert.equal((await call(a, 'POST', `/api/v1/agent/jobs/${jobId}/progress`, nodeKey, report)).body.cancel, false);
    const seen = await call(b, 'GET', `/api/v1/sites/${siteId}/backup/status`, token);
    assert.equal(seen.body.progress, 42);
    assert.equal(seen.body.stage, 'create_bundle');
    // A stop asked of one server reaches the agent through the other, within the other's
    // authentication cache window (auth/auth-cache.ts: 1 s; auth-cache.test.ts holds it to that).
    assert.equal((await call(b, 'POST', `/api/v1/sites/${siteId}/backup/stop`, token)).status, 202);
    await waitFor('the stop to reach the agent through the other server', async () => (await call(a, 'POST', `/api/v1/agent/jobs/${jobId}/progress`, nodeKey, report)).body.cancel === true, { ms: 5_000 });
  });

  it('counts failed sign-ins across both servers: the limits hold however requests are spread', async () => {
    const attempt = async (s: RunningServer, email: string, password: string): Promise<number> => {
      const res = await fetch(`${s.url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
      await res.text();
      return res.status;
    };
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push(await attempt(i % 2 ? a : b, 'ops@example.com', 'wrong password here'));
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429], 'the 6th failure, on either server, is one too many');
    assert.equal(await attempt(a, 'ops@example.com', TEST_PASSWORD), 429);
    assert.equal(await attempt(b, 'ops@example.com', TEST_PASSWORD), 429);
    // A burst split over both servers gets no more than the 5 tries one server would give.
    const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(i % 2 ? a : b, 'burst@example.com', 'wrong password here')));
    assert.equal(burst.filter((st) => st === 401).length, 5, JSON.stringify(burst));
    assert.equal(burst.filter((st) => st === 429).length, 7);
  });

  it('encrypted storage credentials written by one server are usable by the other', async () => {
    const m = services().minio;
    const bucket = await makeBucket();
    try {
      const body = { name: 'minio', type: 's3', endpoint: m.endpoint, bucket, region: m.region, path_style: true, access_key_id: m.accessKey, secret_access_key: m.secretKey };
      const created = await call(a, 'POST', '/api/v1/storage-providers', token, body);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const creds = await b.ctx.repos.storageProviders.credentials(created.body.id);
      assert.equal(JSON.stringify(creds).includes(m.secretKey), true, 'the other server decrypts the secret');
      assert.equal((await call(b, 'DELETE', `/api/v1/storage-providers/${created.body.id}`, token)).status, 204);
    } finally {
      await removeBucket(bucket);
    }
  });
  describe('ending access on one server is honoured by the other', () => {
    const login = async (s: RunningServer, email: string): Promise<string> => {
      const res = await fetch(`${s.url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: TEST_PASSWORD }) });
      return ((await res.json()) as { token: string }).token;
    };
    const newUser = async (role: 'site_admin' | 'node_admin'): Promise<{ id: string; email: string }> => {
      const email = `${role}-${randomBytes(3).toString('hex')}@example.com`;
      const u = await a.ctx.repos.users.create({ email, passwordHash: await hashPassword(TEST_PASSWORD), role });
      return { id: u.id, email };
    };

    it('a token revoked, a user disabled or a password changed on A is refused by B at the next request', async () => {
      for (const how of ['revoke', 'disable', 'password'] as const) {
        const u = await newUser('site_admin');
        const session = await login(b, u.email);
        assert.equal((await call(b, 'GET', '/api/v1/auth/me', session)).status, 200);
        if (how === 'revoke') {
          const id = (await call(b, 'GET', '/api/v1/tokens', session)).body.tokens[0].id as string;
          assert.equal((await call(a, 'DELETE', `/api/v1/tokens/${id}`, token)).status, 204);
        }
        if (how === 'disable') assert.equal((await call(a, 'PATCH', `/api/v1/users/${u.id}`, token, { disabled: true })).status, 200);
        if (how === 'password') assert.equal((await call(a, 'PATCH', `/api/v1/users/${u.id}`, token, { password: 'saffron meadow quarry 61' })).status, 200);
        assert.equal((await call(b, 'GET', '/api/v1/auth/me', session)).status, 401, how);
      }
    });

    it("an event stream open on B ends within seconds when A removes the user's assignment", async () => {
      const saved = streamAccessTiming.recheckMs;
      streamAccessTiming.recheckMs = 500;
      try {
        const u = await newUser('site_admin');
        await a.ctx.repos.users.assignSite(u.id, siteId);
        const { status, stream } = await openEvents(`${b.url}/api/v1/sites/${siteId}/backup/events`, await login(b, u.email));
        assert.equal(status, 200);
        await stream.saw('event: status');
        assert.equal((await call(a, 'DELETE', `/api/v1/users/${u.id}/sites/${siteId}`, token)).status, 204);
        assert.match(await stream.ended(5_000), /event: access_ended/);
      } finally {
        streamAccessTiming.recheckMs = saved;
      }
    });

    it("a node key rotated through A is taken over by B, and a revocation on A is refused by B", async () => {
      const key = generateToken('node');
      const node = await a.ctx.repos.nodes.create({ hostname: 'web2.example.com', status: 'active', nodeKeyHash: hashToken(key) });
      assert.equal((await call(a, 'POST', `/api/v1/nodes/${node.id}/rotate-key`, token)).status, 202);
      const next = (await call(b, 'POST', '/api/v1/agent/rotate-key', key, {})).body.node_key as string;
      assert.equal((await call(a, 'POST', '/api/v1/agent/poll', next, {})).status, 200);
      assert.equal((await call(b, 'POST', '/api/v1/agent/poll', key, {})).status, 401);
      assert.equal((await call(b, 'POST', '/api/v1/agent/poll', next, {})).status, 200);
      assert.equal((await call(a, 'POST', `/api/v1/nodes/${node.id}/revoke-key`, token)).status, 200);
      assert.equal((await call(b, 'POST', '/api/v1/agent/poll', next, {})).status, 401);
    });
  });
});
