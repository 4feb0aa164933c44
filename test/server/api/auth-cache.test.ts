import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AuthCache, DEFAULT_AUTH_CACHE_MS } from '../../../src/server/auth/auth-cache.ts';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import type { ServerContext } from '../../../src/server/context.ts';
import type { NodeRow } from '../../../src/server/db/nodes.ts';
import { createRepos } from '../../../src/server/db/repos.ts';
import type { RunningServer } from '../../../src/server/start.ts';
import { DIALECTS, startTestServer, type TestServer, twoServersOnPostgres, type TwoServers } from '../../helpers/server.ts';
import { waitFor } from '../../helpers/wait.ts';

// The authentication cache of the two hottest routes (auth/auth-cache.ts): within its window a
// progress report or a status read does not read its credentials (or its held job) again; a
// change made through this server is seen by the next request; one made through another server
// on the same PostgreSQL as soon as its notice arrives (auth-notify.ts); one made without a notice
// (a direct write, a lost notice) once the window has passed; and a stale job never writes.
// The clock is the context's own (ContextOptions.now), moved by the tests: nothing sleeps.

const WINDOW = DEFAULT_AUTH_CACHE_MS;

interface Job {
  nodeId: string;
  siteId: string;
  jobId: string;
  key: string;
}

type Report = { status: string; progress: number; stage: string; stage_detail: string; error: null };
const report = (progress: number, stage = 'backup_files'): Report => ({ status: 'running', progress, stage, stage_detail: `${progress} %`, error: null });

/** A node with a key, a site and its backup job, claimed through the API of url. */
async function claimedJob(ctx: ServerContext, url: string): Promise<Job> {
  const key = generateToken('node');
  const name = `cache-${randomBytes(3).toString('hex')}.example.com`;
  const node = await ctx.repos.nodes.create({ hostname: name, status: 'active', nodeKeyHash: hashToken(key) });
  const site = await ctx.repos.sites.create({ nodeId: node.id, name, wpPath: `/var/www/${name}` });
  await ctx.repos.jobs.enqueueBackup(site.id);
  const res = await fetch(`${url}/api/v1/agent/poll`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}' });
  const body = (await res.json()) as { job: { job_id: string } | null };
  assert.ok(body.job, 'a job was handed out');
  return { nodeId: node.id, siteId: site.id, jobId: body.job.job_id, key };
}

/** Counts the credential reads of the two routes from now on. */
function countReads(ctx: ServerContext): { nodes: () => number; users: () => number } {
  const { nodes, tokens } = ctx.repos;
  const byKey = nodes.findByKeyHashWithJob.bind(nodes);
  const byToken = tokens.authenticateWithSite.bind(tokens);
  let n = 0;
  let u = 0;
  nodes.findByKeyHashWithJob = (...args) => (n++, byKey(...args));
  tokens.authenticateWithSite = (...args) => (u++, byToken(...args));
  return { nodes: () => n, users: () => u };
}

async function call(url: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: { cancel?: boolean; status?: string } }> {
  const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

describe('the authentication cache on its own', () => {
  it('keeps nothing a read found when a change committed while it ran, and nothing past its window', () => {
    let clock = 1_000_000;
    const cache = new AuthCache({ now: () => clock });
    const node = { id: 'n1', status: 'active' } as NodeRow;
    const reading = cache.begin();
    cache.changed();
    cache.keepNode(reading, 'h', node);
    assert.equal(cache.node('h'), undefined, 'a read begun before the change may have found the old row');
    cache.keepNode(cache.begin(), 'h', node);
    assert.equal(cache.node('h'), node);
    clock += WINDOW - 1;
    assert.equal(cache.node('h'), node);
    clock += 1;
    assert.equal(cache.node('h'), undefined, 'read again once the window has passed');
    cache.keepNode(cache.begin(), 'd', { ...node, status: 'disabled' });
    assert.equal(cache.node('d'), undefined, 'a disabled node is never kept');
    const off = new AuthCache({ now: () => clock, ttlMs: 0 });
    off.keepNode(off.begin(), 'h', node);
    assert.equal(off.node('h'), undefined, 'a window of 0 keeps nothing');
  });
});

for (const dialect of DIALECTS) {
  describe(`the authentication cache of progress reports and status reads (${dialect})`, () => {
    let t: TestServer;
    let clock = Date.now();
    let reads: { nodes: () => number; users: () => number };
    before(async () => {
      t = await startTestServer(dialect, { pollWaitMs: 500, now: () => clock });
      reads = countReads(t.server.ctx);
    });
    after(async () => {
      await t.close();
    });
    const ctx = (): ServerContext => t.server.ctx;
    const send = (job: Job, r: Report = report(10)) => call(t.url, 'POST', `/api/v1/agent/jobs/${job.jobId}/progress`, job.key, r);
    const status = (siteId: string, token = t.adminToken) => call(t.url, 'GET', `/api/v1/sites/${siteId}/backup/status`, token);

    it('reads a report\'s key and job once per window, and sees a stop, an end, a revoked key or a disabled node made here at the next report', async () => {
      const job = await claimedJob(ctx(), t.url);
      const before = reads.nodes();
      assert.equal((await send(job)).body.cancel, false);
      assert.equal((await send(job, report(11))).body.cancel, false);
      assert.equal((await send(job, report(12))).body.cancel, false);
      assert.equal(reads.nodes(), before + 1, 'reports within the window read nothing');
      clock += WINDOW;
      assert.equal((await send(job, report(13))).body.cancel, false);
      assert.equal(reads.nodes(), before + 2, 'read again after the window');

      assert.equal((await t.api('POST', `/api/v1/sites/${job.siteId}/backup/stop`)).status, 202);
      assert.equal((await send(job, report(14))).body.cancel, true, 'a stop asked here reaches the next report');

      const ended = await claimedJob(ctx(), t.url);
      assert.equal((await send(ended)).body.cancel, false);
      const fin = await call(t.url, 'POST', `/api/v1/agent/jobs/${ended.jobId}/finish`, ended.key, { status: 'failed', stage: 'backup_files', error: 'disk full' });
      assert.equal(fin.status, 200, JSON.stringify(fin.body));
      assert.equal((await send(ended, report(11))).body.cancel, true, 'an ended job is not the agent\'s to run');

      const revoked = await claimedJob(ctx(), t.url);
      assert.equal((await send(revoked)).status, 200);
      assert.equal((await t.api('POST', `/api/v1/nodes/${revoked.nodeId}/revoke-key`)).status, 200);
      assert.equal((await send(revoked, report(11))).status, 401, 'a revoked key is refused at the next report');

      const disabled = await claimedJob(ctx(), t.url);
      assert.equal((await send(disabled)).status, 200);
      assert.equal((await t.api('PATCH', `/api/v1/nodes/${disabled.nodeId}`, { body: { status: 'disabled' } })).status, 200);
      assert.equal((await send(disabled, report(11))).status, 401, 'a disabled node is refused at the next report');
    });

    it('counts a written report, which checks the key and the job, as a read: the window starts again from it', async () => {
      const job = await claimedJob(ctx(), t.url);
      const before = reads.nodes();
      await send(job, report(10, 'backup_db'));
      clock += WINDOW - 100;
      await send(job, report(11, 'backup_files')); // a stage change: written at once (progress-cache.ts)
      clock += WINDOW - 100;
      assert.equal((await send(job, report(12, 'backup_files'))).body.cancel, false);
      assert.equal(reads.nodes(), before + 1, 'within the window of the written report: nothing read');
      clock += 100;
      await send(job, report(13, 'backup_files'));
      assert.equal(reads.nodes(), before + 2, 'read again once that window has passed');
    });

    it('reads a status reader\'s token once per window, the site every time, and refuses a token revoked, a user disabled or an assignment removed here at the next read', async () => {
      const job = await claimedJob(ctx(), t.url);
      const before = reads.users();
      const admin = await t.userWithRole('site_admin');
      await ctx().repos.users.assignSite(admin.id, job.siteId);
      assert.equal((await status(job.siteId, admin.token)).body.status, 'running');
      await send(job, report(40));
      assert.equal((await status(job.siteId, admin.token)).status, 200);
      assert.equal(reads.users(), before + 1, 'reads within the window authenticate from memory');
      await ctx().repos.jobs.finish(job.jobId, job.nodeId, { state: 'failed', error: 'gone' });
      assert.equal((await status(job.siteId, admin.token)).body.status, 'failed', 'the site itself is read every time');

      assert.equal((await t.api('DELETE', `/api/v1/users/${admin.id}/sites/${job.siteId}`)).status, 204);
      assert.equal((await status(job.siteId, admin.token)).status, 403, 'a removed assignment is refused at the next read');

      const revoked = await t.userWithRole('site_admin');
      await ctx().repos.users.assignSite(revoked.id, job.siteId);
      assert.equal((await status(job.siteId, revoked.token)).status, 200);
      const tokenId = (await call(t.url, 'GET', '/api/v1/tokens', revoked.token)).body as unknown as { tokens: { id: string }[] };
      assert.equal((await call(t.url, 'DELETE', `/api/v1/tokens/${tokenId.tokens[0]?.id}`, revoked.token)).status, 204);
      assert.equal((await status(job.siteId, revoked.token)).status, 401, 'a revoked token is refused at the next read');

      const disabled = await t.userWithRole('site_admin');
      await ctx().repos.users.assignSite(disabled.id, job.siteId);
      assert.equal((await status(job.siteId, disabled.token)).status, 200);
      assert.equal((await t.api('PATCH', `/api/v1/users/${disabled.id}`, { body: { disabled: true } })).status, 200);
      assert.equal((await status(job.siteId, disabled.token)).status, 401, 'a disabled user is refused at the next read');
    });

    it('sees what another writer changed in the database once the window has passed', async () => {
      const job = await claimedJob(ctx(), t.url);
      assert.equal((await send(job)).body.cancel, false);
      const user = await t.userWithRole('super_admin');
      assert.equal((await status(job.siteId, user.token)).status, 200);
      // Around the repositories: as another server or `wpbackup` on the same database would.
      await ctx().db.exec('UPDATE jobs SET cancel_requested = 1 WHERE id = ?', [job.jobId]);
      await ctx().db.exec('DELETE FROM tokens WHERE user_id = ?', [user.id]);
      assert.equal((await send(job, report(11))).body.cancel, false, 'within the window: the kept job');
      assert.equal((await status(job.siteId, user.token)).status, 200, 'within the window: the kept token');
      clock += WINDOW;
      assert.equal((await send(job, report(12))).body.cancel, true);
      assert.equal((await status(job.siteId, user.token)).status, 401);
    });

    it('never writes a report whose kept key another writer revoked: the ended lease stays ended', async () => {
      const job = await claimedJob(ctx(), t.url);
      assert.equal((await send(job, report(10, 'backup_db'))).body.cancel, false);
      // revokeKey through repositories that announce nothing: as `wpbackup nodes revoke-key` on SQLite.
      const silent = createRepos(ctx().db, { secrets: ctx().secrets, now: () => clock });
      assert.equal(await silent.nodes.revokeKey(job.nodeId), true);
      // Within the window the key is the kept one; a stage change is written at once (progress-cache.ts): refused.
      assert.equal((await send(job, report(20, 'backup_files'))).body.cancel, true);
      const row = await ctx().repos.jobs.get(job.jobId);
      assert.ok(row?.leaseUntil !== null && row !== undefined && row.leaseUntil < clock, 'the lease the revocation ended was not renewed');
      assert.equal((await ctx().repos.sites.backupState(job.siteId))?.stage, 'backup_db', 'the refused report was not written');
      assert.equal((await send(job, report(21, 'backup_files'))).status, 401, 'the key is read again at once');
    });
  });
}

describe('two servers on one PostgreSQL: a change on one reaches the other by notice, or within the window', () => {
  let servers: TwoServers;
  let a: RunningServer;
  let b: RunningServer;
  let token: string;
  let clock = Date.now();

  before(async () => {
    servers = await twoServersOnPostgres({ pollWaitMs: 500, now: () => clock });
    ({ a, b, token } = servers);
  });
  after(() => servers.close());
  const send = (job: Job, r: Report) => call(a.url, 'POST', `/api/v1/agent/jobs/${job.jobId}/progress`, job.key, r);

  it('a stop or a key revoked through B reaches the agent reporting to A by B\'s notice, the clock standing still', async () => {
    const stopped = await claimedJob(a.ctx, a.url);
    assert.equal((await send(stopped, report(10))).body.cancel, false);
    const revoked = await claimedJob(a.ctx, a.url);
    assert.equal((await send(revoked, report(10))).status, 200);
    assert.equal((await call(b.url, 'POST', `/api/v1/sites/${stopped.siteId}/backup/stop`, token)).status, 202);
    assert.equal((await call(b.url, 'POST', `/api/v1/nodes/${revoked.nodeId}/revoke-key`, token)).status, 200);
    // The notice travels on A's listening connection: waited for, not slept on.
    await waitFor('A to see the stop', async () => (await send(stopped, report(11))).body.cancel === true, { ms: 10_000 });
    await waitFor('A to refuse the revoked key', async () => (await send(revoked, report(11))).status === 401, { ms: 10_000 });
  });

  it('a job ended without a notice (one lost) is never written by A\'s kept copy, and is seen once the window has passed', async () => {
    const job = await claimedJob(a.ctx, a.url);
    assert.equal((await send(job, report(10, 'backup_db'))).body.cancel, false);
    // The same finish as B's, through repositories that announce nothing: a notice lost.
    const silent = createRepos(b.ctx.db, { secrets: b.ctx.secrets, now: () => clock });
    assert.equal((await silent.jobs.finish(job.jobId, job.nodeId, { state: 'failed', error: 'disk full' }))?.state, 'failed');
    assert.equal((await send(job, report(11, 'backup_db'))).body.cancel, false, 'within the window: A\'s kept job, not written (same stage)');
    // A stage change is written at once (progress-cache.ts): conditional on the job, so refused.
    assert.equal((await send(job, report(20, 'backup_files'))).body.cancel, true);
    const site = await a.ctx.repos.sites.backupState(job.siteId);
    assert.equal(site?.status, 'failed');
    assert.notEqual(site?.stage, 'backup_files', 'the refused report left the ended run alone');
    assert.equal((await a.ctx.repos.jobs.get(job.jobId))?.state, 'failed');
    const other = await claimedJob(a.ctx, a.url);
    assert.equal((await send(other, report(10))).body.cancel, false);
    await silent.jobs.requestCancel(other.siteId);
    assert.equal((await send(other, report(11))).body.cancel, false, 'within the window: A\'s kept job');
    clock += WINDOW;
    assert.equal((await send(other, report(12))).body.cancel, true, 'read again once the window has passed');
  });
});
