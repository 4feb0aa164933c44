import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { MAIN } from '../helpers/cli.ts';
import { mailpit, mailTo, Receiver, uniqueAddress } from '../helpers/alerts.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

// `wpbackup alerts ...` over the API: add channels (the SMTP password from stdin, the webhook
// secret printed once), test them, read the delivery log, subscribe and unsubscribe, remove.

describe('wpbackup alerts', () => {
  let t: TestServer;
  let env: NodeJS.ProcessEnv;
  const receiver = new Receiver();
  before(async () => {
    await receiver.start();
    t = await startTestServer('sqlite');
    const token = await t.api('POST', '/api/v1/tokens', { body: { name: 'cli' } });
    env = { PATH: process.env.PATH, WPBACKUP_URL: t.url, WPBACKUP_TOKEN: token.body.token };
  });
  after(async () => {
    await t.close();
    await receiver.close();
  });

  /** The CLI as a child (asynchronously: the server answers from this process). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read JSON bodies loosely
  const cli = async (args: string[], input = ''): Promise<{ status: number | null; stdout: string; stderr: string; json: () => any }> => {
    const child = spawn(process.execPath, [MAIN, 'alerts', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.end(input);
    const status = await new Promise<number | null>((r) => child.on('close', r));
    return { status, stdout, stderr, json: () => JSON.parse(stdout) };
  };

  it('adds, tests, lists, logs, subscribes, unsubscribes and removes', async () => {
    const hook = await cli(['channels', 'add', '--name', 'ops hook', '--url', `${receiver.url}/cli`, '--json']);
    assert.equal(hook.status, 0, hook.stderr);
    const h = hook.json();
    assert.match(h.secret, /^whsec_/);
    receiver.secret = h.secret;
    const m = mailpit();
    const to = uniqueAddress('cli');
    const password = 'smtp password from stdin';
    const mail = await cli(['channels', 'add', '--name', 'ops mail', '--smtp-host', m.smtpHost, '--smtp-port', String(m.smtpPort), '--tls', 'none', '--smtp-user', 'wpb',
      '--smtp-password-stdin', '--from', 'wpb@example.com', '--to', to, '--json'], `${password}\n`);
    assert.equal(mail.status, 0, mail.stderr);
    assert.equal(mail.json().has_secret, true);
    assert.ok(!mail.stdout.includes(password));

    const tested = await cli(['channels', 'test', h.id]);
    assert.equal(tested.status, 0, tested.stderr);
    assert.match(tested.stdout, /sent\s+test/);
    assert.equal(receiver.got.length, 1);
    assert.equal(receiver.got[0]?.signed, true);
    assert.equal((await cli(['channels', 'test', mail.json().id])).status, 0);
    assert.equal((await mailTo(to)).length, 1);

    const list = (await cli(['channels', 'list', '--json'])).json();
    assert.deepEqual(list.channels.map((c: { name: string }) => c.name), ['ops hook', 'ops mail']);
    const log = (await cli(['deliveries', '--channel', h.id, '--json'])).json();
    assert.equal(log.deliveries.length, 1);
    assert.equal(log.deliveries[0].state, 'sent');

    const sub = await cli(['subscribe', '--channel', mail.json().id, '--json']);
    assert.equal(sub.status, 0, sub.stderr);
    const refused = await cli(['subscribe', '--channel', h.id]);
    assert.equal(refused.status, 2, 'a webhook cannot be subscribed to: a clear error, exit 2');
    assert.match(refused.stderr, /is a webhook; subscribe to an email channel/);
    assert.equal((await cli(['unsubscribe', sub.json().id])).status, 0);
    assert.equal((await cli(['channels', 'remove', h.id])).status, 0);
    assert.equal((await cli(['channels', 'list', '--json'])).json().channels.length, 1);
    const bad = await cli(['channels', 'add', '--name', 'x']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /Give either --url/);
  });
});
