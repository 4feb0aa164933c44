import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { MAIN } from '../helpers/cli.ts';
import { DIALECTS, startTestServer, type TestServer } from '../helpers/server.ts';

// `wpbackup users create|list` against the same database a running server uses: the user it
// makes can sign in at once. The password comes from stdin and never from the command line.

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runUsers(args: string[], env: NodeJS.ProcessEnv, stdin: string): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, 'users', ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const run: Run = { code: null, stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (s: string) => (run.stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (run.stderr += s));
  child.stdin.end(stdin);
  return new Promise((resolve) => child.on('close', (code) => resolve({ ...run, code })));
}

for (const dialect of DIALECTS) {
  describe(`wpbackup users (${dialect}, server running)`, () => {
    let t: TestServer;
    let env: NodeJS.ProcessEnv;
    before(async () => {
      t = await startTestServer(dialect);
      env = { WPBACKUP_DATA_DIR: t.target.options.dataDir, ...(t.target.options.databaseUrl ? { DATABASE_URL: t.target.options.databaseUrl } : {}) };
    });
    after(() => t.close());

    it('creates a user from stdin who can then sign in, and lists them', async () => {
      const password = 'granite owl whistles 2049';
      const run = await runUsers(['create', '--email', 'Cli.User@Example.com', '--role', 'node_admin', '--data-dir', t.target.options.dataDir], env, `${password}\nignored second line\n`);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /Created node_admin cli\.user@example\.com/);
      assert.ok(!run.stdout.includes(password) && !run.stderr.includes(password));
      const login = await t.api('POST', '/api/v1/auth/login', { body: { email: 'cli.user@example.com', password }, token: null });
      assert.equal(login.status, 200);
      const me = await t.api('GET', '/api/v1/auth/me', { token: login.body.token });
      assert.equal(me.body.role, 'node_admin');
      const audit = await t.server.ctx.repos.audit.list({ targetId: me.body.id });
      assert.ok(audit.some((e) => e.action === 'user.create'));

      const list = await runUsers(['list', '--json'], env, '');
      assert.equal(list.code, 0, list.stderr);
      const emails = list.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { email: string }).email);
      assert.ok(emails.includes('cli.user@example.com') && emails.includes('admin@example.com'));
    });

    it('refuses a weak password, a bad role and a taken email with exit 2, creating nothing', async () => {
      const before = await t.server.ctx.repos.users.count();
      const weak = await runUsers(['create', '--email', 'weak@example.com', '--role', 'site_admin'], env, 'password123\n');
      assert.equal(weak.code, 2);
      assert.match(weak.stderr, /at least 12 characters/);
      const common = await runUsers(['create', '--email', 'weak@example.com', '--role', 'site_admin'], env, 'Password2024!\n');
      assert.equal(common.code, 2);
      assert.match(common.stderr, /too common/);
      const empty = await runUsers(['create', '--email', 'weak@example.com', '--role', 'site_admin'], env, '');
      assert.equal(empty.code, 2);
      const role = await runUsers(['create', '--email', 'x@example.com', '--role', 'root'], env, 'granite owl whistles 2049\n');
      assert.equal(role.code, 2);
      const taken = await runUsers(['create', '--email', 'ADMIN@example.com', '--role', 'site_admin'], env, 'granite owl whistles 2049\n');
      assert.equal(taken.code, 2);
      assert.match(taken.stderr, /already exists/);
      assert.equal(await t.server.ctx.repos.users.count(), before);
      assert.equal((await t.api('POST', '/api/v1/auth/login', { body: { email: 'weak@example.com', password: 'password123' }, token: null })).status, 401);
    });
  });
}
