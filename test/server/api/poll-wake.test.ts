import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import type { JobsRepo } from '../../../src/server/db/jobs.ts';
import { startServer, type RunningServer } from '../../../src/server/start.ts';
import { DIALECTS, startTestServer, twoNodeFleet, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';
import { waitFor } from '../../helpers/wait.ts';
import { postgresTarget, type Target } from '../db/targets.ts';

// Waiting for a job costs no claim per 250 ms (issue 7 §4): a poll claims once, then waits for
// the job notifier (in process), PostgreSQL NOTIFY (across servers) or a slow re-check.
// Polls here wait 10 minutes with a 10-minute re-check unless said otherwise, so a poll that
// answers with a job was woken by the event, not by a timer.

const LONG = 600_000;

/** Counts claimNext calls (each is one claiming UPDATE, a write transaction on SQLite). */
function countClaims(jobs: JobsRepo): { count: () => number } {
  const original = jobs.claimNext.bind(jobs);
  let n = 0;
  jobs.claimNext = (...args) => {
    n++;
    return original(...args);
  };
  return { count: () => n };
}

async function poll(url: string, key: string, signal?: AbortSignal): Promise<{ status: number; body: { job: { job_id: string; site: { id: string } } | null } }> {
  const res = await fetch(`${url}/api/v1/agent/poll`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}', signal });
  return { status: res.status, body: (await res.json()) as never };
}

for (const dialect of DIALECTS) {
  describe(`agent poll wake-up (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    before(async () => {
      t = await startTestServer(dialect, { pollWaitMs: LONG, pollRecheckMs: LONG });
      f = await twoNodeFleet(t);
      // Node A holds the first test's job while later tests hand it more: lift the one-backup default.
      for (const n of [f.nodeA, f.nodeB]) await t.server.ctx.repos.nodes.update(n, { jobLimit: 8 });
    });
    after(() => t.close());

    it('a waiting poll gets a job queued through the API, woken by the notifier', async () => {
      const claims = countClaims(t.server.ctx.repos.jobs);
      const waiting = poll(t.url, f.keyA);
      await waitFor('the poll to wait', async () => t.server.ctx.jobNotifier.waiting(f.nodeA) === 1);
      assert.equal(claims.count(), 1, 'one claim before waiting');
      const start = await t.api('POST', `/api/v1/sites/${f.siteA}/backup/start`);
      assert.equal(start.status, 202, JSON.stringify(start.body));
      const res = await waiting;
      assert.equal(res.status, 200);
      assert.equal(res.body.job?.site.id, f.siteA);
      assert.equal(claims.count(), 2, 'one more claim, on the wake-up');
    });

    it('a poll whose agent hung up before the handler ran claims nothing and frees its slot', async () => {
      // The agent goes away while its poll is being authenticated: the response's 'close' has
      // come and gone by the time the handler would listen for it.
      const nodes = t.server.ctx.repos.nodes;
      const original = nodes.findByKeyHash.bind(nodes);
      const keyHash = hashToken(f.keyA);
      let entered!: () => void;
      let open!: () => void;
      const inAuth = new Promise<void>((r) => (entered = r));
      const gate = new Promise<void>((r) => (open = r));
      nodes.findByKeyHash = async (hash) => {
        if (hash === keyHash) {
          entered();
          await gate;
        }
        return original(hash);
      };
      // Polls of node A that began waiting. Authentication comes first (route.ts, onRequest), so a
      // poll whose agent hung up meanwhile never reaches the handler: it neither waits nor claims.
      const notifier = t.server.ctx.jobNotifier;
      const subscribe = notifier.subscribe.bind(notifier);
      let subscribed = 0;
      notifier.subscribe = (nodeId, wake) => {
        if (nodeId === f.nodeA) subscribed++;
        return subscribe(nodeId, wake);
      };
      const connections = (): Promise<number> => new Promise((resolve, reject) => t.server.app.server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
      try {
        const before = await connections();
        const req = request(`${t.url}/api/v1/agent/poll`, { method: 'POST', agent: false, headers: { authorization: `Bearer ${f.keyA}`, 'content-type': 'application/json' } });
        req.on('error', () => {});
        req.end('{}');
        await inAuth;
        req.destroy();
        await waitFor('the server to see the agent hang up', async () => (await connections()) <= before);
      } finally {
        nodes.findByKeyHash = original;
        open();
      }
      try {
        const ended = async (): Promise<boolean> => t.server.ctx.caps.polls.held(f.nodeA) === 0 && notifier.waiting(f.nodeA) === 0;
        await waitFor('the hung-up poll to hold no slot and wait for nothing', ended, { ms: 5000, context: () => `${subscribed} polls began waiting, ${notifier.waiting(f.nodeA)} wait, ${t.server.ctx.caps.polls.held(f.nodeA)} slots held` });
        const site = await t.server.ctx.repos.sites.create({ nodeId: f.nodeA, name: 'hangup.example.com', wpPath: '/var/www/hangup' });
        assert.equal((await t.api('POST', `/api/v1/sites/${site.id}/backup/start`)).status, 202);
        const res = await poll(t.url, f.keyA);
        assert.equal(res.body.job?.site.id, site.id, 'a live poll gets the job, not the one whose agent is gone');
        assert.equal(subscribed, 1, 'only the live poll began waiting: the hung-up one never reached the handler');
      } finally {
        notifier.subscribe = subscribe;
      }
    });

    it('a job for another node does not wake this node\'s poll', async () => {
      const ac = new AbortController();
      const waiting = poll(t.url, f.keyA, ac.signal).catch(() => undefined);
      await waitFor('the poll to wait', async () => t.server.ctx.jobNotifier.waiting(f.nodeA) === 1);
      const claims = countClaims(t.server.ctx.repos.jobs);
      assert.equal((await t.api('POST', `/api/v1/sites/${f.siteB}/backup/start`)).status, 202);
      // Node B's poll takes B's job; node A's poll claimed nothing meanwhile.
      const b = await poll(t.url, f.keyB);
      assert.equal(b.body.job?.site.id, f.siteB);
      assert.equal(claims.count(), 1, "only node B's claim");
      ac.abort();
      await waiting;
      await waitFor('the aborted poll to leave', async () => t.server.ctx.jobNotifier.waiting(f.nodeA) === 0);
    });
  });

  describe(`an idle poll (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    before(async () => {
      // The default re-check (5 s), and polls of 1.5 s.
      t = await startTestServer(dialect, { pollWaitMs: 1500 });
      f = await twoNodeFleet(t);
    });
    after(() => t.close());

    it('claims once, not every 250 ms', async () => {
      const claims = countClaims(t.server.ctx.repos.jobs);
      const res = await poll(t.url, f.keyA);
      assert.deepEqual(res.body, { job: null, job_limit: 1 });
      // The old loop claimed about six times in 1.5 s (once per 250 ms).
      assert.equal(claims.count(), 1);
    });
  });
}

describe('agent polls across two servers on one PostgreSQL', () => {
  let target: Target;
  let a: RunningServer;
  let b: RunningServer;
  let otherDataDir: string;
  let nodeKey: string;
  let nodeId: string;
  let siteId: string;

  before(async () => {
    target = await postgresTarget();
    otherDataDir = mkdtempSync(join(tmpdir(), 'wpb-second-'));
    const env = { WPBACKUP_SECRET_KEY: randomBytes(32).toString('base64') };
    const common = { port: 0, host: '127.0.0.1', databaseUrl: target.options.databaseUrl, env, pollWaitMs: LONG, pollRecheckMs: LONG };
    a = await startServer({ ...common, dataDir: target.options.dataDir });
    b = await startServer({ ...common, dataDir: otherDataDir });
    nodeKey = generateToken('node');
    nodeId = (await a.ctx.repos.nodes.create({ hostname: 'web1.example.com', status: 'active', nodeKeyHash: hashToken(nodeKey) })).id;
    siteId = (await a.ctx.repos.sites.create({ nodeId, name: 'shared.example.com', wpPath: '/var/www/shared' })).id;
  });
  after(async () => {
    await a.close();
    await b.close();
    await target.cleanup();
    rmSync(otherDataDir, { recursive: true, force: true });
  });

  it('a poll waiting on server A gets a job queued through server B (NOTIFY)', async () => {
    const claims = countClaims(a.ctx.repos.jobs);
    const waiting = poll(a.url, nodeKey);
    await waitFor('the poll to wait on A', async () => a.ctx.jobNotifier.waiting(nodeId) === 1);
    // Queued by B's repository: A hears of it only through PostgreSQL.
    await b.ctx.repos.jobs.enqueueBackup(siteId);
    const res = await waiting;
    assert.equal(res.body.job?.site.id, siteId);
    assert.equal(claims.count(), 2);
    assert.ok(await b.ctx.repos.jobs.finish(res.body.job.job_id, nodeId, { state: 'cancelled' }));
  });

  it('the listener reconnects after its connection is killed, and wakes polls again', async () => {
    const before = a.jobListener?.connects ?? 0;
    assert.ok(before >= 1, 'A listens');
    const admin = new pg.Client({ connectionString: target.options.databaseUrl });
    await admin.connect();
    try {
      const killed = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'wpbackup-listen' AND datname = current_database()`);
      assert.ok(killed.rowCount && killed.rowCount >= 2, 'both listeners were killed');
    } finally {
      await admin.end();
    }
    await waitFor('A to listen again', async () => (a.jobListener?.connects ?? 0) > before, { ms: 30_000 });
    const waiting = poll(a.url, nodeKey);
    await waitFor('the poll to wait on A', async () => a.ctx.jobNotifier.waiting(nodeId) === 1);
    await b.ctx.repos.jobs.enqueueBackup(siteId);
    assert.equal((await waiting).body.job?.site.id, siteId);
  });
});
