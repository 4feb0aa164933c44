import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawnAgent } from '../helpers/agent.ts';
import { DIALECTS, startTestServer, type TestServer } from '../helpers/server.ts';
import { TEST_HOME } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait.ts';

// A real agent process and node keys: an admin rotates the key and the running agent switches to
// the new one (stored in agent.json, 0600) without a restart and keeps working; the old key is
// refused. A revoked key makes the agent's calls fail with 401 and a log line saying what to do; a
// re-join code brings the same node back.

for (const dialect of DIALECTS) {
  describe(`agent process and node keys (${dialect})`, () => {
    let t: TestServer;
    let work: string;
    let agent: ChildProcess | undefined;
    let out = '';
    let nodeId = '';
    let siteId = '';
    const dataDir = (): string => join(work, 'agent');
    const identity = (): { node_id: string; node_key: string } => JSON.parse(readFileSync(join(dataDir(), 'agent.json'), 'utf8'));
    const until = <T>(what: string, fn: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> => waitFor(what, fn, { ms, context: () => `agent output:\n${out}` });

    const start = (code?: string): void => {
      agent = spawnAgent({ serverUrl: t.url, dataDir: dataDir(), args: ['--scan-root', join(work, 'www')], env: code ? { WPBACKUP_JOIN_CODE: code } : {}, onOutput: (s) => (out += s) });
    };
    const stop = async (): Promise<void> => {
      if (!agent || agent.exitCode !== null) return;
      const exited = new Promise((r) => agent?.once('exit', r));
      agent.kill('SIGTERM');
      await exited;
    };
    /** A reset job on the node's site, done by the agent: proof that it still polls and reports. */
    const agentRunsAJob = async (): Promise<void> => {
      const job = (await t.server.ctx.repos.jobs.resetSite(siteId)).reset;
      await until(`reset job ${job.id} to be done by the agent`, async () => (await t.server.ctx.repos.jobs.get(job.id))?.state === 'done');
    };
    const poll = (key: string): ReturnType<TestServer['api']> => t.api('POST', '/api/v1/agent/poll', { token: key, body: {} });

    before(async () => {
      t = await startTestServer(dialect, { pollWaitMs: 500 });
      work = mkdtempSync(join(TEST_HOME, 'agent-keys-'));
      mkdirSync(join(work, 'www'));
      const code = await t.api('POST', '/api/v1/nodes/join-codes');
      start(code.body.code as string);
      await until('the agent to join', async () => /joined .* as node/.test(out));
      nodeId = identity().node_id;
      siteId = (await t.server.ctx.repos.sites.create({ nodeId, name: 'keys.example.com', wpPath: join(work, 'www', 'site') })).id;
    });
    after(async () => {
      await stop();
      await t.close();
      rmSync(work, { recursive: true, force: true });
    });

    it('rotates the key of a running agent: it stores and uses the new key, keeps working, and the old key is refused', async () => {
      const oldKey = identity().node_key;
      await agentRunsAJob();
      assert.equal((await t.api('POST', `/api/v1/nodes/${nodeId}/rotate-key`)).status, 202);
      await until('the agent to switch keys', async () => (await t.api('GET', `/api/v1/nodes/${nodeId}`)).body.key_rotation_requested_at === null);
      assert.match(out, /node key rotated/);
      const newKey = identity().node_key;
      assert.notEqual(newKey, oldKey);
      assert.equal(statSync(join(dataDir(), 'agent.json')).mode & 0o777, 0o600);
      assert.equal((await poll(oldKey)).status, 401);
      assert.equal(out.includes(newKey) || out.includes(oldKey), false, 'the agent never prints a key');
      await agentRunsAJob();
      assert.equal(agent?.exitCode, null, 'the same process, never restarted');
    });

    it('revoked: the agent’s calls get 401 and it says to re-join; a re-join code brings the same node back', async () => {
      const revokedKey = identity().node_key;
      assert.equal((await t.api('POST', `/api/v1/nodes/${nodeId}/revoke-key`)).status, 200);
      // The poll's own message: the agent's scan may be refused first and log a line of its own.
      await until('the agent to log the refusal', async () => /server refused this node key .* re-join code/.test(out));
      assert.match(out, /HTTP 401.*revoked/);
      await stop();
      const code = await t.api('POST', '/api/v1/nodes/join-codes', { body: { node_id: nodeId } });
      assert.equal(code.status, 201);
      out = '';
      start(code.body.code as string);
      await until('the agent to re-join', async () => out.includes(`as node ${nodeId}`));
      assert.equal(identity().node_id, nodeId);
      assert.notEqual(identity().node_key, revokedKey);
      await agentRunsAJob();
      assert.equal((await poll(revokedKey)).status, 401);
    });
  });
}
