import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../src/server/auth/passwords.ts';
import { base32Decode, totp } from '../../src/server/auth/totp.ts';
import { MAIN } from '../helpers/cli.ts';
import { DIALECTS, startTestServer, TEST_PASSWORD, type TestServer } from '../helpers/server.ts';

// `wpbackup login` against a running server: password (and second factor) from stdin, an API
// token out, the session it used signed out; and `wpbackup users reset-mfa`.

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `answer` may write more stdin once stderr shows something (the enrollment key). */
function cli(args: string[], env: NodeJS.ProcessEnv, stdin: string, answer?: (stderr: string) => string | undefined): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const run: Run = { code: null, stdout: '', stderr: '' };
  let answered = false;
  child.stdout.setEncoding('utf8').on('data', (s: string) => (run.stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    run.stderr += s;
    const more = answered ? undefined : answer?.(run.stderr);
    if (more !== undefined) {
      answered = true;
      child.stdin.end(more);
    }
  });
  if (answer) child.stdin.write(stdin);
  else child.stdin.end(stdin);
  return new Promise((resolve) => child.on('close', (code) => resolve({ ...run, code })));
}

const tokenOf = (out: string): string | undefined => /^export WPBACKUP_TOKEN=(wpb_a_\S+)$/m.exec(out)?.[1];

for (const dialect of DIALECTS) {
  describe(`wpbackup login (${dialect})`, () => {
    let t: TestServer;
    let env: NodeJS.ProcessEnv;
    before(async () => {
      t = await startTestServer(dialect, { requireMfa: ['node_admin'] });
      env = { WPBACKUP_URL: t.url, WPBACKUP_DATA_DIR: t.target.options.dataDir, ...(t.target.options.databaseUrl ? { DATABASE_URL: t.target.options.databaseUrl } : {}) };
    });
    after(() => t.close());

    it('signs in with the password from stdin and prints an API token; the session is signed out', async () => {
      const u = await t.userWithRole('site_admin');
      const sessionsBefore = (await t.server.ctx.repos.tokens.listForUser(u.id)).filter((x) => x.kind === 'session').length;
      const run = await cli(['login', '--email', u.email, '--name', 'laptop'], env, `${TEST_PASSWORD}\n`);
      assert.equal(run.code, 0, run.stderr);
      const token = tokenOf(run.stdout);
      assert.ok(token, run.stdout);
      assert.ok(!run.stdout.includes(TEST_PASSWORD) && !run.stderr.includes(TEST_PASSWORD));
      assert.equal((await t.api('GET', '/api/v1/auth/me', { token })).body.email, u.email);
      const mine = await t.server.ctx.repos.tokens.listForUser(u.id);
      assert.equal(mine.filter((x) => x.kind === 'session').length, sessionsBefore, 'the session it used is gone');
      assert.ok(mine.some((x) => x.kind === 'api' && x.name === 'laptop'));
      const wrong = await cli(['login', '--email', u.email], env, 'not the password at all\n');
      assert.equal(wrong.code, 2);
      assert.match(wrong.stderr, /Wrong email or password/);
    });

    it('asks an enrolled account for its code (here a recovery code), and refuses a wrong one', async () => {
      const u = await t.userWithRole('site_admin');
      const e = await t.api('POST', '/api/v1/auth/mfa/enroll', { token: u.token });
      const c = await t.api('POST', '/api/v1/auth/mfa/confirm', { token: u.token, body: { code: totp(base32Decode(e.body.secret), Date.now()) } });
      const recovery = c.body.recovery_codes as string[];
      const wrong = await cli(['login', '--email', u.email], env, `${TEST_PASSWORD}\naaaa-aaaa-aaaa-aaaa\n`);
      assert.equal(wrong.code, 2);
      assert.match(wrong.stderr, /Wrong or already used code/);
      assert.equal(tokenOf(wrong.stdout), undefined);
      const passwordOnly = await cli(['login', '--email', u.email], env, `${TEST_PASSWORD}\n`);
      assert.equal(passwordOnly.code, 2, 'no code, no token');
      assert.equal(tokenOf(passwordOnly.stdout), undefined);
      const ok = await cli(['login', '--email', u.email], env, `${TEST_PASSWORD}\n${recovery[0]}\n`);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal((await t.api('GET', '/api/v1/auth/me', { token: tokenOf(ok.stdout) ?? null })).status, 200);
    });

    it('walks a role that must have MFA through enrollment, showing the key and the recovery codes once', async () => {
      const email = `enroll-${Date.now()}@example.com`;
      await t.server.ctx.repos.users.create({ email, passwordHash: await hashPassword(TEST_PASSWORD), role: 'node_admin' });
      const run = await cli(['login', '--email', email], env, `${TEST_PASSWORD}\n`, (stderr) => {
        const key = /key: ([A-Z2-7]+)/.exec(stderr)?.[1];
        return key && /uri: otpauth:\S+\n/.test(stderr) ? `${totp(base32Decode(key), Date.now())}\n` : undefined;
      });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /otpauth:\/\/totp\//);
      assert.equal([...run.stderr.matchAll(/^ {2}[a-z2-7]{4}(-[a-z2-7]{4}){3}$/gm)].length, 10, run.stderr);
      assert.equal((await t.api('GET', '/api/v1/auth/mfa', { token: tokenOf(run.stdout) ?? null })).body.enabled, true);
    });

    it('`users reset-mfa` removes a second factor (audited), after which the password alone signs in', async () => {
      const u = await t.userWithRole('site_admin');
      const e = await t.api('POST', '/api/v1/auth/mfa/enroll', { token: u.token });
      await t.api('POST', '/api/v1/auth/mfa/confirm', { token: u.token, body: { code: totp(base32Decode(e.body.secret), Date.now()) } });
      assert.equal((await t.api('POST', '/api/v1/auth/login', { body: { email: u.email, password: TEST_PASSWORD }, token: null })).body.mfa_required, true);
      const run = await cli(['users', 'reset-mfa', '--email', u.email.toUpperCase()], env, '');
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /Second factor removed/);
      assert.ok((await t.server.ctx.repos.audit.list({ targetId: u.id })).some((a) => a.action === 'user.mfa_reset'));
      assert.match((await t.api('POST', '/api/v1/auth/login', { body: { email: u.email, password: TEST_PASSWORD }, token: null })).body.token, /^wpb_s_/);
      const unknown = await cli(['users', 'reset-mfa', '--email', 'nobody@example.com'], env, '');
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /No user has the email/);
    });
  });
}
