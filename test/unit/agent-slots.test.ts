import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runAgent } from '../../src/agent/agent.ts';
import type { AgentClient } from '../../src/agent/client.ts';
import type { AgentJob, PollResponse } from '../../src/api/types.ts';

// The agent's loop runs up to its node's job limit at once (the poll reply says it) and polls
// only while it has a free slot. A fake client hands out clean-up jobs whose finish call waits
// for the test, so "running" is a state the test holds the jobs in, without timing.

function resetJob(n: number): AgentJob {
  return { job_id: `job-${n}`, type: 'reset', site: { id: `site-${n}`, name: `s${n}`, wp_path: `/var/www/s${n}`, excludes: [] }, node_id: 'node', key: '', lease_seconds: 60 };
}

function fakeServer(limit: number) {
  let n = 0;
  const finishing: { id: string; done: () => void }[] = [];
  let wake: () => void = () => {};
  const changed = (): Promise<void> => new Promise((r) => (wake = r));
  let polls = 0;
  const client = {
    server: 'http://fake',
    keyRotationAsked: false,
    async poll(): Promise<PollResponse> {
      polls++;
      wake();
      return { job: resetJob(++n), job_limit: limit };
    },
    finish(id: string): Promise<{ state: string }> {
      return new Promise((resolve) => {
        finishing.push({ id, done: () => resolve({ state: 'done' }) });
        wake();
      });
    },
  } as unknown as AgentClient;
  return { client, finishing, changed, polls: () => polls };
}

async function until(changed: () => Promise<void>, cond: () => boolean): Promise<void> {
  while (!cond()) await changed();
}

describe('agent job slots', () => {
  for (const limit of [1, 3]) {
    it(`runs ${limit} job(s) at once when the node's limit is ${limit}, and polls again only when one ends`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'wpb-slots-'));
      const ac = new AbortController();
      const s = fakeServer(limit);
      const agent = runAgent({ client: s.client, dataDir, signal: ac.signal });
      try {
        await until(s.changed, () => s.finishing.length === limit);
        // Every slot is busy: no further poll while none of them ends.
        assert.equal(s.polls(), limit);
        assert.deepEqual(s.finishing.map((f) => f.id), Array.from({ length: limit }, (_, i) => `job-${i + 1}`));
        s.finishing.shift()?.done();
        await until(s.changed, () => s.finishing.length === limit);
        assert.equal(s.polls(), limit + 1);
      } finally {
        ac.abort();
        for (const f of s.finishing) f.done();
        await agent;
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
});
