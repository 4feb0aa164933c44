import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestServer, twoNodeFleet, type TestServer, type TwoNodeFleet } from '../../helpers/server.ts';
import { waitFor } from '../../helpers/wait.ts';

// Caps on what one caller holds open (issue 7 §4): event streams per user and in total, agent
// long-polls per node key. Excess gets 429 with Retry-After and a message naming the limit;
// every slot comes back when the client hangs up, and when the server closes.

interface Open {
  status: number;
  retryAfter: string | null;
  body?: { error: { code: string; message: string } };
  close(): void;
}

async function open(url: string, method: string, token: string): Promise<Open> {
  const ac = new AbortController();
  const res = await fetch(url, { method, headers: { authorization: `Bearer ${token}`, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) }, body: method === 'POST' ? '{}' : undefined, signal: ac.signal });
  if (res.status === 429) return { status: 429, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Open['body'], close: () => {} };
  // Streams and polls stay open: read nothing more, hang up on close().
  return { status: res.status, retryAfter: null, close: () => ac.abort() };
}

for (const dialect of DIALECTS) {
  describe(`stream and poll caps (${dialect})`, () => {
    let t: TestServer;
    let f: TwoNodeFleet;
    before(async () => {
      t = await startTestServer(dialect, { pollWaitMs: 600_000, pollRecheckMs: 600_000, limits: { streamsPerUser: 2, streamsTotal: 3, pollsPerNode: 1 } });
      f = await twoNodeFleet(t);
    });
    after(() => t.close());

    const events = (site: string): string => `${t.url}/api/v1/sites/${site}/backup/events`;
    const caps = (): TestServer['server']['ctx']['caps'] => t.server.ctx.caps;

    it('caps event streams per user and in total, with 429 and Retry-After, and frees a slot when a client hangs up', async () => {
      const [s1, s2] = [await open(events(f.siteA), 'GET', f.siteAdmin.token), await open(events(f.siteA), 'GET', f.siteAdmin.token)];
      assert.deepEqual([s1.status, s2.status], [200, 200]);
      const third = await open(events(f.siteA), 'GET', f.siteAdmin.token);
      assert.equal(third.status, 429);
      assert.ok(Number(third.retryAfter) > 0, 'Retry-After is set');
      assert.equal(third.body?.error.code, 'too_many_streams');
      assert.match(third.body?.error.message ?? '', /one user may hold 2 at once \(server option --max-streams-per-user\)/);

      // Another user still gets one: the third stream of the server.
      const other = await open(events(f.siteA), 'GET', f.nodeAdmin.token);
      assert.equal(other.status, 200);
      const overTotal = await open(events(f.siteA), 'GET', t.adminToken);
      assert.equal(overTotal.status, 429);
      assert.match(overTotal.body?.error.message ?? '', /maximum of 3 event streams \(server option --max-streams\)/);

      // A client hanging up frees its slot.
      s1.close();
      await waitFor('the hung-up stream to release its slot', async () => caps().streams.held(f.siteAdmin.id) === 1);
      const again = await open(events(f.siteA), 'GET', f.siteAdmin.token);
      assert.equal(again.status, 200);
      for (const s of [s2, other, again]) s.close();
      await waitFor('every stream slot to come back', async () => caps().streams.held() === 0);
    });

    it('caps long-polls per node key, and frees the slot when the agent hangs up', async () => {
      const poll = `${t.url}/api/v1/agent/poll`;
      const first = await openPoll(poll, f.keyA);
      await waitFor('the first poll to wait', async () => t.server.ctx.jobNotifier.waiting(f.nodeA) === 1);
      const second = await open(poll, 'POST', f.keyA);
      assert.equal(second.status, 429);
      assert.ok(Number(second.retryAfter) > 0);
      assert.match(second.body?.error.message ?? '', /a node key may hold 1 at once \(server option --max-polls-per-node\)/);
      // Another node's key is counted apart.
      const otherNode = await openPoll(poll, f.keyB);
      await waitFor('node B to wait', async () => t.server.ctx.jobNotifier.waiting(f.nodeB) === 1);
      first.close();
      await waitFor('the hung-up poll to release its slot', async () => caps().polls.held(f.nodeA) === 0 && t.server.ctx.jobNotifier.waiting(f.nodeA) === 0);
      const third = await openPoll(poll, f.keyA);
      await waitFor('the new poll to wait', async () => t.server.ctx.jobNotifier.waiting(f.nodeA) === 1);
      third.close();
      otherNode.close();
      await waitFor('every poll slot to come back, and no poll to wait', async () => caps().polls.held() === 0 && t.server.ctx.jobNotifier.waiting() === 0);
    });

    it('releases every slot when the server closes, and waiting polls answer at once', async () => {
      const s = await open(events(f.siteA), 'GET', f.siteAdmin.token);
      assert.equal(s.status, 200);
      const answer = fetch(`${t.url}/api/v1/agent/poll`, { method: 'POST', headers: { authorization: `Bearer ${f.keyA}`, 'content-type': 'application/json' }, body: '{}' });
      await waitFor('the poll to wait', async () => caps().polls.held(f.nodeA) === 1 && t.server.ctx.jobNotifier.waiting(f.nodeA) === 1);
      const closing = t.server.app.close();
      // pollWaitMs and the re-check are 10 minutes: only the close can answer it.
      const res = await answer;
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { job: null, job_limit: 1 });
      await closing;
      assert.equal(caps().streams.held(), 0);
      assert.equal(caps().polls.held(), 0);
      s.close();
    });
  });
}

/** A poll left waiting (its fetch is not awaited past the request). */
async function openPoll(url: string, key: string): Promise<{ close(): void }> {
  const ac = new AbortController();
  fetch(url, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}', signal: ac.signal }).catch(() => undefined);
  return { close: () => ac.abort() };
}
