import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAIN } from '../helpers/cli.ts';
import { TEST_PASSWORD, type ApiResponse } from '../helpers/server.ts';
import { TEST_HOME } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';
import { postgresTarget, sqliteTarget, type Target } from '../server/db/targets.ts';

// One machine, one command: `wpbackup server` runs the API and a local agent; the first
// admin comes from `wpbackup users create` while it runs; a site added through the API is
// backed up to local storage and downloaded through the server-signed link.

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`wpbackup server with its local agent (${dialect})`, { timeout: 180_000 }, () => {
    let site: FixtureSite;
    let target: Target;
    let server: ChildProcess;
    let url: string;
    let out = '';
    let env: NodeJS.ProcessEnv;
    let work: string;
    before(async () => {
      site = await createFixtureSite({ name: `embedded-${dialect}` });
      target = dialect === 'sqlite' ? await sqliteTarget() : await postgresTarget();
      work = mkdtempSync(join(TEST_HOME, 'emb-'));
      env = { PATH: process.env.PATH, HOME: process.env.HOME, ...(target.options.databaseUrl ? { DATABASE_URL: target.options.databaseUrl } : {}) };
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      server = spawn(process.execPath, [MAIN, 'server', '--port', String(port), '--data-dir', target.options.dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      server.stdout?.on('data', (b: Buffer) => (out += b));
      server.stderr?.on('data', (b: Buffer) => (out += b));
      await waitFor('the embedded agent to start', async () => /Local agent: node/.test(out) || server.exitCode !== null, { ms: 10_000, context: () => out }).catch(() => undefined);
      assert.match(out, /No users yet\. Create the first admin/);
    });
    after(async () => {
      if (server.exitCode === null) server.kill('SIGKILL');
      await site.cleanup();
      await target.cleanup();
      rmSync(work, { recursive: true, force: true });
    });

    it('creates the first admin from the CLI, backs up a site through the API, and serves the download', async () => {
      execFileSync(process.execPath, [MAIN, 'users', 'create', '--email', 'owner@example.com', '--role', 'super_admin', '--data-dir', target.options.dataDir], { env, input: `${TEST_PASSWORD}\n` });
      const call = async (method: string, path: string, token?: string, body?: unknown): Promise<ApiResponse> => {
        const res = await fetch(url + path, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
        return { status: res.status, body: await res.json(), headers: res.headers };
      };
      const login = await call('POST', '/api/v1/auth/login', undefined, { email: 'owner@example.com', password: TEST_PASSWORD });
      assert.equal(login.status, 200);
      const token = login.body.token as string;
      const nodes = (await call('GET', '/api/v1/nodes', token)).body.nodes as { id: string; status: string }[];
      assert.equal(nodes.length, 1, 'the local agent joined as the one node');
      const created = await call('POST', '/api/v1/sites', token, { node_id: nodes[0]?.id, name: 'embedded.example.com', wp_path: site.dir });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      assert.equal((await call('POST', `/api/v1/sites/${id}/backup/start`, token)).status, 202);
      const stages = new Set<string>();
      let status: { status: string; stage: string | null; backup_id: string | null; error: string | null } | undefined;
      await waitFor(
        'the backup to end',
        async () => {
          status = (await call('GET', `/api/v1/sites/${id}/backup/status`, token)).body;
          if (status?.stage) stages.add(status.stage);
          return !!status && ['completed', 'failed', 'stopped'].includes(status.status);
        },
        { ms: 60_000, every: 50, context: () => out },
      ).catch(() => undefined);
      assert.equal(status?.status, 'completed', `${status?.error}\n${out}`);
      assert.ok(stages.size >= 2, `saw stages ${[...stages].join(', ')}`);
      const dl = await call('GET', `/api/v1/backups/backups/${status?.backup_id}/download`, token);
      assert.equal(dl.status, 200);
      assert.equal(dl.body.expires_in_seconds, 3600);
      const archive = Buffer.from(await (await fetch(dl.body.url)).arrayBuffer());
      assert.equal(archive.length, dl.body.size);
      const file = join(work, 'backup.tar.zst');
      writeFileSync(file, archive);
      const listing = execFileSync('tar', ['-I', 'zstd', '-tf', file], { encoding: 'utf8' });
      for (const entry of ['database.sql', 'wp-content/', 'manifest.json', site.files.unicode]) assert.ok(listing.includes(entry), entry);
    });

    it('stops cleanly on SIGTERM', async () => {
      const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
      server.kill('SIGTERM');
      assert.equal(await exited, 0);
    });
  });
}
