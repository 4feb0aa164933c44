import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
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
  });
}
