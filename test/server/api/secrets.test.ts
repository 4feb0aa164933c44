import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { base32Decode, totp } from '../../../src/server/auth/totp.ts';
import { mailpit } from '../../helpers/alerts.ts';
import { makeBucket, removeBucket } from '../../helpers/s3.ts';
import { DIALECTS } from '../../helpers/server.ts';
import { services } from '../../helpers/services.ts';
import { waitFor } from '../../helpers/wait.ts';
import { postgresTarget, sqliteTarget, type Target } from '../db/targets.ts';

// No secret leaks out of a running server: not in a response body, not in its log (request
// lines, job start/stage/end lines, errors), not in any process's argv. The server runs in a
// child process with request logging on and the server's logger at debug on fd 1
// (startServer({ logRequests: true, logger })); the child's stdout and stderr are the log.
// Secrets reach the child only through stdin and request bodies, never argv or files (the
// metrics token: the file the server generates in its data dir).

const START = new URL('../../../src/server/start.ts', import.meta.url).href;
const LOG = new URL('../../../src/log.ts', import.meta.url).href;
const PASSWORDS = new URL('../../../src/server/auth/passwords.ts', import.meta.url).href;

// The child: reads the first admin's email and password from stdin, starts the server with
// request logging, creates that admin, prints READY <url>, and stops on SIGTERM.
const CHILD = `
import { createInterface } from 'node:readline';
import { startServer } from ${JSON.stringify(START)};
import { createLogger } from ${JSON.stringify(LOG)};
import { hashPassword } from ${JSON.stringify(PASSWORDS)};
const rl = createInterface({ input: process.stdin });
const line = await new Promise((r) => rl.once('line', r));
rl.close();
const { email, password } = JSON.parse(line);
const s = await startServer({ port: 0, host: '127.0.0.1', dataDir: process.env.WPB_DATA_DIR, databaseUrl: process.env.DATABASE_URL || undefined, leaseMs: 60000, pollWaitMs: 200, env: {}, logRequests: true, logger: createLogger({ level: 'debug' }) });
await s.ctx.repos.users.create({ email, passwordHash: await hashPassword(password), role: 'super_admin' });
process.stderr.write('READY ' + s.url + '\\n');
process.on('SIGTERM', () => { s.close().then(() => process.exit(0), () => process.exit(1)); });
`;

const strong = (): string => `amber ${randomBytes(6).toString('hex')} harbour 42`;

interface Seen {
  what: string;
  body: string;
}

for (const dialect of DIALECTS) {
  describe(`secrets stay secret (${dialect})`, () => {
    let target: Target;
    let child: ChildProcess;
    let url = '';
    let log = '';
    let bucket = '';
    const argvs = new Set<string>();
    let sampler: NodeJS.Timeout | undefined;
    const responses: Seen[] = [];

    function sampleArgv(): void {
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          argvs.add(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '));
        } catch {
          // the process ended meanwhile
        }
      }
    }

    async function api(what: string, method: string, path: string, token: string | null, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      responses.push({ what, body: text });
      sampleArgv();
      return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    }

    const adminEmail = 'root@example.com';
    const adminPassword = strong();

    before(async () => {
      target = dialect === 'sqlite' ? await sqliteTarget() : await postgresTarget();
      sampler = setInterval(sampleArgv, 25);
      child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
        env: { ...process.env, WPB_DATA_DIR: target.options.dataDir, DATABASE_URL: target.options.databaseUrl ?? '' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      child.stdout?.on('data', (d: Buffer) => (log += d.toString('utf8')));
      child.stderr?.on('data', (d: Buffer) => (log += d.toString('utf8')));
      child.stdin?.end(`${JSON.stringify({ email: adminEmail, password: adminPassword })}\n`);
      url = await waitFor(
        'the server to start',
        async () => {
          if (child.exitCode !== null) throw new Error(`the server exited: ${log}`);
          return /READY (\S+)/.exec(log)?.[1];
        },
        { ms: 30_000, context: () => log },
      );
      bucket = await makeBucket('wpb-secrets');
    });
    after(async () => {
      clearInterval(sampler);
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await target.cleanup();
      if (bucket) await removeBucket(bucket);
    });

    it('never shows a secret in a response, a log line or a process argv', async () => {
      const m = services().minio;
      /** Values that must appear nowhere at all. */
      const never = new Set<string>([adminPassword, m.secretKey]);
      /** Token values, with the index of the one response allowed to carry them. */
      const tokens = new Map<string, number>();
      const created = (v: unknown): void => {
        assert.equal(typeof v, 'string');
        tokens.set(v as string, responses.length - 1);
      };

      const login = await api('admin login', 'POST', '/api/v1/auth/login', null, { email: adminEmail, password: adminPassword });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      created(login.body.token);
      const admin = login.body.token as string;
      const wrong = await api('wrong password', 'POST', '/api/v1/auth/login', null, { email: adminEmail, password: `${adminPassword}x` });
      assert.equal(wrong.status, 401);
      never.add(`${adminPassword}x`);

      const s3 = await api('s3 provider', 'POST', '/api/v1/storage-providers', admin, {
        name: 'minio', type: 's3', endpoint: m.endpoint, bucket, region: m.region, path_style: true, access_key_id: m.accessKey, secret_access_key: m.secretKey, is_default: true,
      });
      assert.equal(s3.status, 201, JSON.stringify(s3.body));
      const badSecret = `Wr0ng${randomBytes(8).toString('hex')}`;
      never.add(badSecret);
      const bad = await api('s3 provider, wrong secret', 'POST', '/api/v1/storage-providers', admin, {
        name: 'minio-bad', type: 's3', endpoint: m.endpoint, bucket, region: m.region, path_style: true, access_key_id: m.accessKey, secret_access_key: badSecret,
      });
      assert.equal(bad.status, 400);
      assert.equal((await api('s3 provider read', 'GET', `/api/v1/storage-providers/${s3.body.id as string}`, admin)).status, 200);

      const people: { email: string; password: string; role: string; token?: string }[] = [
        { email: 'ops@example.com', password: strong(), role: 'node_admin' },
        { email: 'site@example.com', password: strong(), role: 'site_admin' },
      ];
      for (const p of people) {
        never.add(p.password);
        const u = await api(`create ${p.email}`, 'POST', '/api/v1/users', admin, { email: p.email, password: p.password, role: p.role });
        assert.equal(u.status, 201, JSON.stringify(u.body));
        const l = await api(`login ${p.email}`, 'POST', '/api/v1/auth/login', null, { email: p.email, password: p.password });
        assert.equal(l.status, 200);
        created(l.body.token);
        p.token = l.body.token as string;
        const tok = await api(`api token ${p.email}`, 'POST', '/api/v1/tokens', p.token, { name: 'script' });
        assert.equal(tok.status, 201);
        created(tok.body.token);
        assert.equal((await api(`me via api token ${p.email}`, 'GET', '/api/v1/auth/me', tok.body.token as string)).status, 200);
        assert.equal((await api(`tokens ${p.email}`, 'GET', '/api/v1/tokens', p.token)).status, 200);
      }
      // A second factor: the TOTP secret and the recovery codes are shown once, by enrollment and
      // confirmation; the sign-in challenge once, by the password step. None of them anywhere else.
      const ops = people[0];
      assert.ok(ops?.token);
      const enroll = await api('mfa enroll', 'POST', '/api/v1/auth/mfa/enroll', ops.token);
      assert.equal(enroll.status, 200, JSON.stringify(enroll.body));
      created(enroll.body.secret);
      const confirm = await api('mfa confirm', 'POST', '/api/v1/auth/mfa/confirm', ops.token, { code: totp(base32Decode(enroll.body.secret as string), Date.now()) });
      assert.equal(confirm.status, 200, JSON.stringify(confirm.body));
      const recovery = confirm.body.recovery_codes as string[];
      for (const c of recovery) created(c);
      const challenge = await api('mfa login, password', 'POST', '/api/v1/auth/login', null, { email: ops.email, password: ops.password });
      assert.equal(challenge.body.mfa_required, true);
      created(challenge.body.challenge);
      const second = await api('mfa login, recovery code', 'POST', '/api/v1/auth/login/mfa', null, { challenge: challenge.body.challenge, code: recovery[0] });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      created(second.body.token);
      assert.equal((await api('mfa status', 'GET', '/api/v1/auth/mfa', second.body.token as string)).body.recovery_codes_left, 9);

      const newPassword = strong();
      never.add(newPassword);
      const users = (await api('users', 'GET', '/api/v1/users', admin)).body.users as { id: string; email: string }[];
      const siteUser = users.find((u) => u.email === 'site@example.com')?.id ?? '';
      assert.equal((await api('password change', 'PATCH', `/api/v1/users/${siteUser}`, admin, { password: newPassword })).status, 200);

      const code = await api('join code', 'POST', '/api/v1/nodes/join-codes', admin);
      assert.equal(code.status, 201);
      created(code.body.code);
      const join = await api('join', 'POST', '/api/v1/agent/join', null, { code: code.body.code, hostname: 'web1.example.com' });
      assert.equal(join.status, 200, JSON.stringify(join.body));
      created(join.body.node_key);
      const nodeKey = join.body.node_key as string;
      const nodeId = join.body.node_id as string;

      const site = await api('site', 'POST', '/api/v1/sites', admin, { node_id: nodeId, name: 'example.com', wp_path: '/var/www/example' });
      assert.equal(site.status, 201, JSON.stringify(site.body));
      const siteId = site.body.id as string;
      const start = await api('backup start', 'POST', `/api/v1/sites/${siteId}/backup/start`, admin);
      assert.equal(start.status, 202, JSON.stringify(start.body));
      const poll = await api('poll', 'POST', '/api/v1/agent/poll', nodeKey);
      assert.equal(poll.status, 200);
      const job = poll.body.job as { job_id: string } | null;
      assert.ok(job, 'the agent got the job');
      const progress = await api('progress', 'POST', `/api/v1/agent/jobs/${job.job_id}/progress`, nodeKey, { status: 'running', progress: 10, stage: 'backup_db', stage_detail: 'dumping', error: null });
      assert.equal(progress.status, 200);
      const upload = await api('upload start', 'POST', `/api/v1/agent/jobs/${job.job_id}/upload/start`, nodeKey);
      assert.equal(upload.status, 200, JSON.stringify(upload.body));
      const parts = await api('part urls', 'POST', `/api/v1/agent/jobs/${job.job_id}/upload/parts`, nodeKey, { part_numbers: [1] });
      assert.equal(parts.status, 200);
      const signature = /X-Amz-Signature=([0-9a-f]+)/.exec(String((parts.body.urls as Record<string, string>)['1']))?.[1];
      assert.ok(signature, 'a presigned part URL');
      created(signature);
      assert.equal((await api('status', 'GET', `/api/v1/sites/${siteId}/backup/status`, admin)).status, 200);
      const stop = await api('stop', 'POST', `/api/v1/sites/${siteId}/backup/stop`, admin);
      assert.ok(stop.status === 200 || stop.status === 202, JSON.stringify(stop.body));
      const fin = await api('finish', 'POST', `/api/v1/agent/jobs/${job.job_id}/finish`, nodeKey, { status: 'stopped', stage: 'backup_db', error: null });
      assert.equal(fin.status, 200, JSON.stringify(fin.body));
      assert.equal((await api('status after stop', 'GET', `/api/v1/sites/${siteId}/backup/status`, admin)).status, 200);
      // Alerts: an SMTP password and a site's ping URL go in and never come out; a webhook's signing
      // secret comes out once, in the answer that creates the channel. Test alerts exercise the senders.
      const smtpPassword = `smtp ${randomBytes(8).toString('hex')}`;
      const pingUrl = `http://127.0.0.1:9/ping/${randomBytes(16).toString('hex')}`;
      never.add(smtpPassword);
      never.add(pingUrl.slice('http://127.0.0.1:9/ping/'.length));
      const mp = mailpit();
      const mailCh = await api('email channel', 'POST', '/api/v1/alerts/channels', admin, {
        name: 'ops mail', type: 'email', email: { host: mp.smtpHost, port: mp.smtpPort, tls: 'none', user: 'wpbackup', password: smtpPassword, from: 'wpb@example.com', to: ['ops@example.com'] },
      });
      assert.equal(mailCh.status, 201, JSON.stringify(mailCh.body));
      const hookCh = await api('webhook channel', 'POST', '/api/v1/alerts/channels', admin, { name: 'ops hook', type: 'webhook', webhook: { url: 'http://127.0.0.1:9/hook' } });
      assert.equal(hookCh.status, 201, JSON.stringify(hookCh.body));
      created(hookCh.body.secret);
      assert.equal((await api('site ping url', 'PUT', `/api/v1/sites/${siteId}/alerts`, admin, { ping_url: pingUrl })).status, 200);
      assert.equal((await api('test mail', 'POST', `/api/v1/alerts/channels/${mailCh.body.id as string}/test`, admin)).body.state, 'sent');
      assert.equal((await api('test webhook', 'POST', `/api/v1/alerts/channels/${hookCh.body.id as string}/test`, admin)).status, 200);
      assert.equal((await api('channels', 'GET', '/api/v1/alerts/channels', admin)).status, 200);
      assert.equal((await api('deliveries', 'GET', `/api/v1/alerts/channels/${hookCh.body.id as string}/deliveries`, admin)).status, 200);
      assert.equal((await api('site alerts', 'GET', `/api/v1/sites/${siteId}/alerts`, admin)).status, 200);
      // Node key rotation and revocation: a key leaves the server only in the agent's one-time fetch
      // (and a re-join), never to the admin, never in a log.
      assert.equal((await api('rotate key', 'POST', `/api/v1/nodes/${nodeId}/rotate-key`, admin)).status, 202);
      assert.equal((await api('poll before handover', 'POST', '/api/v1/agent/poll', nodeKey)).status, 200);
      const handover = await api('key handover', 'POST', '/api/v1/agent/rotate-key', nodeKey);
      assert.equal(handover.status, 200, JSON.stringify(handover.body));
      created(handover.body.node_key);
      assert.equal((await api('poll with the new key', 'POST', '/api/v1/agent/poll', handover.body.node_key as string)).status, 200);
      assert.equal((await api('poll with the old key', 'POST', '/api/v1/agent/poll', nodeKey)).status, 401);
      assert.equal((await api('node after rotation', 'GET', `/api/v1/nodes/${nodeId}`, admin)).status, 200);
      assert.equal((await api('revoke key', 'POST', `/api/v1/nodes/${nodeId}/revoke-key`, admin)).status, 200);
      const rejoinCode = await api('re-join code', 'POST', '/api/v1/nodes/join-codes', admin, { node_id: nodeId });
      assert.equal(rejoinCode.status, 201);
      created(rejoinCode.body.code);
      const rejoin = await api('re-join', 'POST', '/api/v1/agent/join', null, { code: rejoinCode.body.code, hostname: 'web1.example.com' });
      assert.equal(rejoin.status, 200, JSON.stringify(rejoin.body));
      created(rejoin.body.node_key);
      assert.equal((await api('poll after re-join', 'POST', '/api/v1/agent/poll', rejoin.body.node_key as string)).status, 200);
      const ownPassword = strong();
      never.add(ownPassword);
      const siteLogin = await api('login with new password', 'POST', '/api/v1/auth/login', null, { email: 'site@example.com', password: newPassword });
      created(siteLogin.body.token);
      assert.equal((await api('own password change', 'POST', '/api/v1/auth/password', siteLogin.body.token as string, { current_password: newPassword, new_password: ownPassword })).status, 204);
      assert.equal((await api('audit', 'GET', '/api/v1/audit?limit=200', admin)).status, 200);
      assert.equal((await api('logout', 'POST', '/api/v1/auth/logout', people[0]?.token ?? null)).status, 204);
      // The metrics token: only in its file; a scrape with it and one with a user's token.
      const metricsToken = readFileSync(joinPath(target.options.dataDir, 'metrics.token'), 'utf8').trim();
      never.add(metricsToken);
      const scrape = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
      assert.equal(scrape.status, 200);
      responses.push({ what: 'metrics', body: await scrape.text() });
      assert.equal((await api('metrics with a session', 'GET', '/metrics', admin)).status, 401);
      // The job's lines: its start (the poll), its stage, its end (the stopped finish).
      await waitFor('the job lines', async () => ['job.start', 'job.stage', 'job.end'].every((e) => log.includes(`"event":"${e}","job":"${job.job_id}"`)), { context: () => log.slice(-4000) });
      // A request's last line is written once its response is sent, which may be after the client has it.
      await waitFor('the server to log every request', async () => (log.match(/"request completed"/g) ?? []).length >= responses.length, { context: () => log.slice(-4000) });
      sampleArgv();

      const problems: string[] = [];
      const short = (s: string): string => `${s.slice(0, 8)}…`;
      for (const [i, r] of responses.entries()) {
        for (const s of never) if (r.body.includes(s)) problems.push(`response ${i} (${r.what}) holds the secret ${short(s)}`);
        for (const [tok, at] of tokens) if (i !== at && r.body.includes(tok)) problems.push(`response ${i} (${r.what}) repeats a token created by response ${at} (${responses[at]?.what})`);
      }
      const lines = log.split('\n');
      assert.ok(lines.filter((l) => l.includes('"req"')).length >= responses.length, `the server logged its requests (${lines.length} lines)`);
      for (const [n, l] of lines.entries()) {
        for (const s of [...never, ...tokens.keys()]) if (l.includes(s)) problems.push(`log line ${n} holds ${short(s)}: ${l.slice(0, 200)}`);
      }
      assert.ok([...argvs].some((a) => a.includes('startServer')), 'the server process was among those sampled');
      for (const a of argvs) for (const s of [...never, ...tokens.keys()]) if (a.includes(s)) problems.push(`a process argv holds ${short(s)}: ${a.slice(0, 200)}`);
      assert.deepEqual(problems, []);
      assert.ok(tokens.has(nodeKey));
    });
  });
}
