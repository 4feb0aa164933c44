import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { generateToken, hashToken } from '../../src/server/auth/tokens.ts';
import { MAIN } from '../helpers/cli.ts';
import { DIALECTS, startTestServer, type TestServer } from '../helpers/server.ts';

// `wpbackup nodes join-code` mints a code in the server's database (running server, same data
// dir or DATABASE_URL); an agent joins with it once.

for (const dialect of DIALECTS) {
  describe(`wpbackup nodes join-code (${dialect})`, () => {
    let t: TestServer;
    let env: NodeJS.ProcessEnv;
    before(async () => {
      t = await startTestServer(dialect);
      env = { PATH: process.env.PATH, ...(t.target.options.databaseUrl ? { DATABASE_URL: t.target.options.databaseUrl } : {}) };
    });
    after(() => t.close());

    it('prints a code an agent can join with exactly once', async () => {
      const out = execFileSync(process.execPath, [MAIN, 'nodes', 'join-code', '--data-dir', t.target.options.dataDir, '--ttl', '5', '--json'], { env, encoding: 'utf8' });
      const { code, expires_at } = JSON.parse(out) as { code: string; expires_at: string };
      assert.match(code, /^wpb_j_/);
      assert.ok(Date.parse(expires_at) > Date.now() + 4 * 60_000);
      const join = await t.api('POST', '/api/v1/agent/join', { token: null, body: { code, hostname: 'web9.example.com' } });
      assert.equal(join.status, 200, JSON.stringify(join.body));
      assert.match(join.body.node_key, /^wpb_n_/);
      assert.equal((await t.api('POST', '/api/v1/agent/join', { token: null, body: { code, hostname: 'web9.example.com' } })).status, 403);
    });

    it('refuses a bad --ttl with exit 2 and a clear message', () => {
      const r = spawnSync(process.execPath, [MAIN, 'nodes', 'join-code', '--data-dir', t.target.options.dataDir, '--ttl', '0'], { env, encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /--ttl must be a whole number of minutes/);
    });
    it('rotate-key and revoke-key act on a node named by hostname, and join-code --node brings it back', async () => {
      const key = generateToken('node');
      const node = await t.server.ctx.repos.nodes.create({ hostname: 'cli-keys.example.com', status: 'active', nodeKeyHash: hashToken(key) });
      const cli = (...args: string[]): string => execFileSync(process.execPath, [MAIN, 'nodes', ...args, '--data-dir', t.target.options.dataDir, '--json'], { env, encoding: 'utf8' });
      assert.deepEqual(JSON.parse(cli('rotate-key', 'cli-keys.example.com')), { node_id: node.id, key_rotation_requested: true });
      assert.ok((await t.server.ctx.repos.nodes.get(node.id))?.keyRotationAt);
      assert.equal(JSON.parse(cli('revoke-key', node.id)).revoked, true);
      assert.equal((await t.api('POST', '/api/v1/agent/poll', { token: key, body: {} })).status, 401);
      const { code } = JSON.parse(cli('join-code', '--node', 'cli-keys.example.com')) as { code: string };
      const join = await t.api('POST', '/api/v1/agent/join', { token: null, body: { code, hostname: 'cli-keys.example.com' } });
      assert.equal(join.body.node_id, node.id);
      const audit = (await t.server.ctx.repos.audit.list({ limit: 20 })).filter((e) => e.targetId === node.id).map((e) => e.action);
      assert.ok(['node.key.rotate', 'node.key.revoke', 'node.join_code.create', 'node.rejoin'].every((a) => audit.includes(a)), audit.join());
      const r = spawnSync(process.execPath, [MAIN, 'nodes', 'rotate-key', 'no-such-node', '--data-dir', t.target.options.dataDir], { env, encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /No node no-such-node/);
    });
  });
}
