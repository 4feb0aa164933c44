import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoalescedReads } from '../../src/server/db/coalesced-reads.ts';
import { NodeTouches } from '../../src/server/node-touches.ts';

// Database work gathered into fewer statements. Reads by id gathered while others are in flight
// (db/coalesced-reads.ts), with a loader the test releases by hand: which ids went in which
// query, and who got what. Nodes' last_seen written together (node-touches.ts). The real
// statements, sites.getMany and nodes.touchMany, run on both databases in test/server/db/cases-fleet.ts.

interface Row {
  id: string;
}

function gatedLoader(): { load: (ids: string[]) => Promise<Row[]>; calls: string[][]; release: (i: number, rows?: Row[] | Error) => void } {
  const calls: string[][] = [];
  const gates: ((rows: Row[] | Error) => void)[] = [];
  const load = (ids: string[]): Promise<Row[]> => {
    calls.push(ids);
    return new Promise((resolve, reject) => gates.push((r) => (r instanceof Error ? reject(r) : resolve(r))));
  };
  const release = (i: number, rows?: Row[] | Error): void => gates[i]?.(rows ?? (calls[i] ?? []).filter((id) => !id.startsWith('unknown')).map((id) => ({ id })));
  return { load, calls, release };
}

describe('coalesced reads by id', () => {
  it('sends at once while fewer than maxInFlight run, then gathers the rest into one query each turn', async () => {
    const l = gatedLoader();
    const reads = new CoalescedReads<Row>({ load: l.load, idOf: (r) => r.id, maxInFlight: 2, maxBatch: 3 });
    const a = reads.get('a');
    const b = reads.get('b');
    assert.deepEqual(l.calls, [['a'], ['b']], 'the first two go at once, alone');
    const rest = ['c', 'd', 'c', 'unknown-e', 'f'].map((id) => reads.get(id));
    assert.equal(l.calls.length, 2, 'the rest wait for a turn');
    l.release(0);
    assert.deepEqual(await a, { id: 'a' });
    assert.deepEqual(l.calls[2], ['c', 'd', 'unknown-e'], 'one query for the waiting ids, each once, at most maxBatch');
    l.release(1);
    await b;
    assert.deepEqual(l.calls[3], ['f']);
    l.release(2);
    l.release(3);
    assert.deepEqual(await Promise.all(rest), [{ id: 'c' }, { id: 'd' }, { id: 'c' }, undefined, { id: 'f' }]);
  });

  it('fails every read of a failed query, and goes on with the next', async () => {
    const l = gatedLoader();
    const reads = new CoalescedReads<Row>({ load: l.load, idOf: (r) => r.id, maxInFlight: 1, maxBatch: 10 });
    const first = reads.get('a');
    const waiting = [reads.get('b'), reads.get('c')];
    l.release(0, new Error('connection lost'));
    await assert.rejects(first, /connection lost/);
    l.release(1, new Error('still lost'));
    for (const w of waiting) await assert.rejects(w, /still lost/);
    const after = reads.get('d');
    l.release(2);
    assert.deepEqual(await after, { id: 'd' });
  });

  it('reads an id with a NUL alone, so that the database refusing it fails no other read', async () => {
    const calls: string[][] = [];
    const load = async (ids: string[]): Promise<Row[]> => {
      calls.push(ids);
      await new Promise((r) => setImmediate(r));
      if (ids.some((id) => id.includes('\u0000'))) throw new Error('invalid byte sequence for encoding "UTF8": 0x00');
      return ids.map((id) => ({ id }));
    };
    const reads = new CoalescedReads<Row>({ load, idOf: (r) => r.id, maxInFlight: 1, maxBatch: 10 });
    const [a, nul, b, c] = await Promise.allSettled(['a', 'x\u0000', 'b', 'c'].map((id) => reads.get(id)));
    assert.deepEqual([a, b, c], ['a', 'b', 'c'].map((id) => ({ status: 'fulfilled', value: { id } })));
    assert.equal(nul?.status, 'rejected');
    assert.deepEqual(calls, [['a'], ['x\u0000'], ['b', 'c']]);
  });
});

describe('node touches', () => {
  it('writes the nodes heard from together, each once, on flush or a moment later', async () => {
    const writes: string[][] = [];
    let wrote: () => void = () => {};
    const touches = new NodeTouches(async (ids) => {
      writes.push(ids);
      wrote();
    }, 10);
    const later = new Promise<void>((resolve) => (wrote = resolve));
    touches.add('a');
    touches.add('b');
    touches.add('a');
    await later;
    assert.deepEqual(writes, [['a', 'b']]);
    touches.add('c');
    await touches.flush();
    assert.deepEqual(writes, [['a', 'b'], ['c']]);
    await touches.flush();
    assert.equal(writes.length, 2, 'nothing pending: nothing written');
  });
});
