import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { arrivalTimes, LoadClient, openLoop, quantile } from '../../bench/open-loop.ts';

// npm run bench:api's load generator (bench/open-loop.ts) is the instrument issue 9's latency
// target is read with: requests fall due on a schedule whatever the server does, and a stall
// shows in the latency of every request that fell due during it (no coordinated omission).

/** A PRNG with a seed (mulberry32), so the Poisson arrivals are the same on every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A server that answers at once, except that from its `stallAt`-th request on it holds every
 * response for `stallMs` (a GC pause, a lock, a busy loop), then answers them all.
 */
async function stallingServer(stallAt: number, stallMs: number): Promise<{ url: string; received: () => number; close: () => Promise<void> }> {
  let received = 0;
  let held: ServerResponse[] | null = null;
  const answer = (res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 11 }).end('{"ok":true}');
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      received++;
      if (received === stallAt) {
        held = [];
        setTimeout(() => {
          const all = held ?? [];
          held = null;
          for (const r of all) answer(r);
        }, stallMs);
      }
      if (held) held.push(res);
      else answer(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received: () => received,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

describe('open-loop load generator (bench/open-loop.ts)', () => {
  it('schedules exactly the rate with even arrivals, and about it with Poisson ones', () => {
    const even = arrivalTimes(200, 2, 'even', Math.random);
    assert.equal(even.length, 399, 'every 5 ms from 5 ms to 1995 ms');
    assert.ok(Math.abs((even[1] as number) - (even[0] as number) - 5) < 1e-9);
    const poisson = arrivalTimes(2000, 10, 'poisson', seeded(9));
    assert.ok(Math.abs(poisson.length - 20_000) < 600, `${poisson.length} arrivals for 20,000 expected`);
    const gaps = poisson.slice(1).map((t, i) => t - (poisson[i] as number));
    assert.ok(quantile(gaps, 0.99) > 4 * quantile(gaps, 0.5), 'bursts and lulls, as independent clients make');
  });

  for (const maxConnections of [256, 4]) {
    it(`counts a stall in every request that fell due during it, from when it fell due (at most ${maxConnections} connections)`, async () => {
      const server = await stallingServer(40, 300);
      try {
        // 200 requests/s evenly: one every 5 ms, so ~60 fall due while the server holds its answers.
        const r = await openLoop({ url: server.url, rate: 200, seconds: 1, arrivals: 'even', maxConnections, next: () => ({ method: 'POST', path: '/x', headers: { 'content-type': 'application/json' }, body: '{}' }) });
        assert.equal(r.sent, 199);
        assert.equal(r.errors, 0);
        assert.equal(r.latencies.length, 199);
        assert.equal(server.received(), 199, 'every request reached the server');
        assert.deepEqual([...r.statuses], [[200, 199]]);
        // The 40 requests due in the stall's first 200 ms waited at least its last 100 ms.
        assert.ok(r.latencies.filter((ms) => ms >= 100).length >= 40, `latencies: ${r.latencies.map((x) => x.toFixed(0)).join(' ')}`);
        assert.ok(quantile(r.latencies, 1) >= 290, 'the first held request waited the whole stall');
        if (maxConnections === 4) assert.equal(r.connections, 4, 'no more connections than allowed: the rest waited their turn, and the wait counted');
        else assert.ok(r.connections > 40, 'requests that found every connection busy opened new ones');
      } finally {
        await server.close();
      }
    });
  }

  it('follows a server that ends each connection after its answer: a waiting request goes out on a new one', async () => {
    const server = createServer((_req, res) => res.writeHead(200, { connection: 'close', 'content-length': 2 }).end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      // One connection at most, half a millisecond apart: requests wait for it, and each answer ends it.
      const r = await openLoop({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, rate: 2000, seconds: 0.1, arrivals: 'even', maxConnections: 1, next: () => ({ method: 'GET', path: '/' }) });
      assert.equal(r.errors, 0);
      assert.equal(r.latencies.length, r.sent);
      assert.equal(r.connections, r.sent, 'a connection per request');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('keeps its connections from one run to the next, and counts a lost connection as an error', async () => {
    let n = 0;
    const server = createServer((req, res) => {
      n++;
      if (n === 5) {
        req.socket.destroy();
        return;
      }
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = new LoadClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const first = await client.run({ rate: 100, seconds: 0.5, arrivals: 'even', next: () => ({ method: 'GET', path: '/' }) });
      assert.equal(first.errors, 1);
      assert.equal(first.latencies.length, first.sent - 1);
      const second = await client.run({ rate: 20, seconds: 0.5, arrivals: 'even', next: () => ({ method: 'GET', path: '/' }) });
      assert.equal(second.errors, 0);
      assert.equal(second.connections, 0, 'the first run\'s connections carried the second');
    } finally {
      client.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
