import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alertsIdle } from '../../../src/server/alerts/dispatch.ts';
import { alertsOnce } from '../../../src/server/alerts/pass.ts';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import { agentOf, mailpitChannel, mailText, mailTo, Receiver, uniqueAddress } from '../../helpers/alerts.ts';
import { DIALECTS, startTestServer, type TestServer } from '../../helpers/server.ts';
import { waitFor } from '../../helpers/wait.ts';

// Alerts end to end, on a real Mailpit and a real HTTP receiver that checks each webhook's
// signature, with the server's clock in the test's hand (hours pass by assignment, never by
// waiting). Each case has its own site, and its channels hear only of that site.

const HOUR = 3_600_000;

for (const dialect of DIALECTS) {
  describe(`alerts (${dialect})`, () => {
    let t: TestServer;
    let clock = Date.now();
    const receiver = new Receiver();
    let nodeId = '';
    let key = '';
    let providerId = '';
    const root = mkdtempSync(join(tmpdir(), 'wpb-alerts-'));
    const ctx = (): TestServer['server']['ctx'] => t.server.ctx;
    let agent: ReturnType<typeof agentOf>;

    before(async () => {
      await receiver.start();
      t = await startTestServer(dialect, { now: () => clock, pollWaitMs: 100, leaseMs: 600_000 });
      key = generateToken('node');
      nodeId = (await ctx().repos.nodes.create({ hostname: 'web1.example.com', status: 'active', nodeKeyHash: hashToken(key) })).id;
      providerId = (await ctx().repos.storageProviders.create({ name: 'local', type: 'local', rootPath: root, isDefault: true })).id;
      agent = agentOf(t, key, providerId);
      // An API token: days pass on the server's clock, and a session would expire.
      const token = await t.api('POST', '/api/v1/tokens', { body: { name: 'alerts test' } });
      assert.equal(token.status, 201, JSON.stringify(token.body));
      t.adminToken = token.body.token;
      // Days pass in these tests while the agent's last_seen does not: no offline-agent alerts here.
      const s = await t.api('PATCH', '/api/v1/alerts/settings', { body: { agent_offline_minutes: 10080 } });
      assert.equal(s.status, 200, JSON.stringify(s.body));
    });
    after(async () => {
      await t?.close();
      await receiver.close();
      rmSync(root, { recursive: true, force: true });
    });

    /** A fresh site, an email channel (Mailpit) and a webhook channel that hear only of it. */
    async function setup(what: string): Promise<{ siteId: string; mail: string; webhookId: string; hook: string }> {
      const name = `${what}-${randomBytes(3).toString('hex')}.example.com`;
      const siteId = (await ctx().repos.sites.create({ nodeId, name, wpPath: `/var/www/${name}` })).id;
      const mail = uniqueAddress(what);
      const email = await t.api('POST', '/api/v1/alerts/channels', { body: mailpitChannel(`mail-${name}`, [mail], [siteId]) });
      assert.equal(email.status, 201, JSON.stringify(email.body));
      const hook = `/hook/${randomBytes(4).toString('hex')}`;
      const webhook = await t.api('POST', '/api/v1/alerts/channels', { body: { name: `hook-${name}`, type: 'webhook', site_ids: [siteId], webhook: { url: receiver.url + hook } } });
      assert.equal(webhook.status, 201, JSON.stringify(webhook.body));
      assert.match(webhook.body.secret, /^whsec_/);
      receiver.secret = webhook.body.secret;
      return { siteId, mail, webhookId: webhook.body.id, hook };
    }

    const settled = async (): Promise<void> => {
      await ctx().jobEnded.idle();
      await alertsIdle(ctx());
    };
    const hooksAt = (path: string) => receiver.got.filter((r) => r.path === path);
    const eventsAt = (path: string, kind?: string) => hooksAt(path).map((r) => JSON.parse(r.body)).filter((e) => !kind || e.event === kind);

    it('a failing backup sends exactly one mail (Mailpit) and one signed webhook POST', async () => {
      const { siteId, mail, hook } = await setup('fail');
      await agent.fail(siteId);
      await settled();
      const mails = await waitFor('the mail in Mailpit', async () => {
        const m = await mailTo(mail);
        return m.length > 0 && m;
      });
      assert.equal(mails.length, 1, JSON.stringify(mails.map((m) => m.Subject)));
      assert.match(mails[0]?.Subject ?? '', /^\[wpbackup\] Backup of fail-\S+ failed$/);
      const text = await mailText(mails[0]?.ID ?? '');
      assert.match(text, /failed during backup_db/);
      assert.match(text, /Can't connect to local server/);
      assert.ok(text.includes(`${t.url}/api/v1/sites/${siteId}`), text);
      const posts = hooksAt(hook);
      assert.equal(posts.length, 1);
      assert.equal(posts[0]?.signed, true, 'the signature matches HMAC-SHA256(secret, body)');
      const body = JSON.parse(posts[0]?.body ?? '{}');
      assert.equal(body.event, 'backup.failed');
      assert.equal(body.detail.stage, 'backup_db');
      assert.match(body.detail.error, /Can't connect/);
      assert.equal(body.site.url, `${t.url}/api/v1/sites/${siteId}`);
    });

    it('an upload refused for its quota is a failed backup too, and storage near its quota is told', async () => {
      const { siteId, hook } = await setup('quota');
      await ctx().repos.sites.update(siteId, { quotaBytes: 70 });
      // The archive of agent.succeed is 64 bytes: 91% of the quota (the threshold is 90%).
      await agent.succeed(siteId);
      await settled();
      assert.deepEqual(eventsAt(hook).map((e) => e.event), ['storage.quota']);
      assert.equal(eventsAt(hook)[0].detail.used_bytes, 64);
      // A part bigger than the quota plus the margin: the server fails the job itself (services/quota.ts).
      const jobId = await ctx().repos.jobs.enqueueBackup(siteId, { storageId: providerId });
      assert.ok(jobId);
      const polled = await t.api('POST', '/api/v1/agent/poll', { token: key, body: {} });
      const base = `/api/v1/agent/jobs/${polled.body.job.job_id}/upload`;
      assert.equal((await t.api('POST', `${base}/start`, { token: key, body: {} })).status, 200);
      const refused = await t.api('POST', `${base}/parts`, { token: key, body: { part_numbers: [1], part_size: 200 * 1024 * 1024 } });
      assert.equal(refused.status, 413, JSON.stringify(refused.body));
      await settled();
      assert.deepEqual(eventsAt(hook).map((e) => e.event), ['storage.quota', 'backup.failed']);
      assert.match(eventsAt(hook, 'backup.failed')[0].detail.error, /The upload was refused/);
    });

    it('stores the SMTP password, the signing secret and the ping URL encrypted', async () => {
      const password = `pw-${randomBytes(8).toString('hex')}`;
      const ch = await t.api('POST', '/api/v1/alerts/channels', { body: mailpitChannel(`enc-${randomBytes(3).toString('hex')}`, [uniqueAddress('enc')], [], password) });
      assert.equal(ch.status, 201);
      assert.equal(ch.body.has_secret, true);
      assert.ok(!JSON.stringify(ch.body).includes(password));
      const rows = await ctx().db.query<{ secret_enc: string; config: string }>('SELECT secret_enc, config FROM alert_channels');
      assert.ok(rows.length >= 2);
      for (const r of rows) {
        assert.match(r.secret_enc, /^v1\./, 'sealed by the secret box');
        assert.ok(!r.secret_enc.includes(password) && !r.config.includes(password) && !r.secret_enc.includes('whsec_'));
      }
      const pings = await ctx().db.query<{ ping_url_enc: string }>('SELECT ping_url_enc FROM alert_site_settings WHERE ping_url_enc IS NOT NULL');
      for (const r of pings) assert.match(r.ping_url_enc, /^v1\./);
    });

    it('hourly failures: one alert, one daily reminder, then one "recovered"', async () => {
      const { siteId, mail, hook } = await setup('hourly');
      for (let h = 0; h < 30; h++) {
        clock += HOUR;
        await agent.fail(siteId, `disk full (run ${h})`);
        await settled();
        await alertsOnce(ctx(), clock);
      }
      await agent.succeed(siteId);
      await settled();
      clock += HOUR;
      await alertsOnce(ctx(), clock);
      const events = eventsAt(hook);
      assert.deepEqual(events.map((e) => `${e.event}${e.reminder ? ' (reminder)' : ''}`), ['backup.failed', 'backup.failed (reminder)', 'site.recovered']);
      assert.ok(hooksAt(hook).every((r) => r.signed));
      assert.match(events[0].detail.error, /run 0/);
      const subjects = (await mailTo(mail)).map((m) => m.Subject.replace(/hourly-\S+/, 'SITE')).sort();
      assert.deepEqual(subjects, ['[wpbackup] Backup of SITE failed', '[wpbackup] Reminder: Backup of SITE failed', '[wpbackup] SITE recovered: a backup completed']);
    });

    it("the dead man's switch fires once when no backup completes within the window, then recovers", async () => {
      const { siteId, hook } = await setup('stale');
      const set = await t.api('PUT', `/api/v1/sites/${siteId}/alerts`, { body: { freshness_hours: 2 } });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      assert.equal(set.body.freshness_hours, 2);
      assert.equal(set.body.default_freshness_hours, null, 'no schedule, no default switch');
      const hourly = await t.api('PUT', `/api/v1/sites/${siteId}/schedule`, { body: { preset: 'hourly' } });
      assert.equal(hourly.status, 200, JSON.stringify(hourly.body));
      assert.equal((await t.api('GET', `/api/v1/sites/${siteId}/alerts`)).body.default_freshness_hours, 2, 'twice an hourly schedule');
      assert.equal((await t.api('PUT', `/api/v1/sites/${siteId}/schedule`, { body: { disabled: true } })).status, 200);
      clock += HOUR;
      await alertsOnce(ctx(), clock);
      assert.deepEqual(eventsAt(hook), [], 'within the window: nothing');
      clock += 2 * HOUR;
      await alertsOnce(ctx(), clock);
      clock += HOUR;
      await alertsOnce(ctx(), clock);
      assert.deepEqual(eventsAt(hook).map((e) => e.event), ['backup.stale']);
      const state = await t.api('GET', `/api/v1/sites/${siteId}/alerts`);
      assert.deepEqual(state.body.active.map((a: { kind: string }) => a.kind), ['backup.stale']);
      await agent.succeed(siteId);
      await settled();
      await alertsOnce(ctx(), clock);
      assert.deepEqual(eventsAt(hook).map((e) => e.event), ['backup.stale', 'site.recovered']);
      assert.equal(eventsAt(hook, 'site.recovered')[0].detail.after, 'backup.stale');
      assert.deepEqual((await t.api('GET', `/api/v1/sites/${siteId}/alerts`)).body.active, []);
    });

    it('retries a webhook that answers 500 twice, with backoff, and the delivery log shows each attempt', async () => {
      const { webhookId, hook } = await setup('retry');
      receiver.statuses = [500, 500];
      const first = await t.api('POST', `/api/v1/alerts/channels/${webhookId}/test`);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal(first.body.state, 'pending');
      assert.equal(first.body.attempts, 1);
      assert.equal(Date.parse(first.body.next_attempt_at), clock + 30_000, 'the first retry 30 s later');
      clock += 10_000;
      await alertsOnce(ctx(), clock);
      assert.equal(hooksAt(hook).length, 1, 'not retried before its time');
      clock += 20_000;
      await alertsOnce(ctx(), clock);
      clock += 60_000;
      await alertsOnce(ctx(), clock);
      assert.equal(hooksAt(hook).length, 2, 'the third attempt waits 2 minutes');
      clock += 60_000;
      await alertsOnce(ctx(), clock);
      assert.equal(hooksAt(hook).length, 3);
      assert.ok(hooksAt(hook).every((r) => r.signed));
      const log = await t.api('GET', `/api/v1/alerts/channels/${webhookId}/deliveries`);
      assert.equal(log.status, 200);
      const [d] = log.body.deliveries;
      assert.equal(d.state, 'sent');
      assert.equal(d.attempts, 3);
      assert.deepEqual(d.history.map((a: { status: number }) => a.status), [500, 500, 200]);
      assert.match(d.history[0].error, /HTTP 500/);
      assert.equal(d.kind, 'test');
    });

    it('pings the site\'s ping URL at start, on success, and with /fail and the error on failure', async () => {
      const { siteId } = await setup('ping');
      const uuid = randomBytes(16).toString('hex');
      // The server will POST to the URL: only a super_admin sets one; the node's own admin may set the window.
      const { id: adminId } = await t.userWithRole('node_admin');
      await ctx().repos.users.assignNode(adminId, nodeId);
      const nodeAdmin = generateToken('api');
      await ctx().repos.tokens.create({ userId: adminId, tokenHash: hashToken(nodeAdmin), kind: 'api', name: 'alerts' });
      assert.equal((await t.api('PUT', `/api/v1/sites/${siteId}/alerts`, { token: nodeAdmin, body: { ping_url: `${receiver.url}/ping/${uuid}` } })).status, 403);
      assert.equal((await t.api('PUT', `/api/v1/sites/${siteId}/alerts`, { token: nodeAdmin, body: { freshness_hours: 72 } })).status, 200);
      const set = await t.api('PUT', `/api/v1/sites/${siteId}/alerts`, { body: { ping_url: `${receiver.url}/ping/${uuid}` } });
      assert.equal(set.status, 200);
      assert.equal(set.body.has_ping_url, true);
      assert.equal(set.body.freshness_hours, 72, 'setting one leaves the other as it was');
      assert.ok(!JSON.stringify(set.body).includes(uuid), 'the ping URL is not shown back');
      await agent.succeed(siteId);
      await settled();
      await agent.fail(siteId, 'tar: wp-content: Cannot open');
      await settled();
      const pings = receiver.got.filter((r) => r.path.startsWith(`/ping/${uuid}`));
      assert.deepEqual(pings.map((p) => p.path), [`/ping/${uuid}/start`, `/ping/${uuid}`, `/ping/${uuid}/start`, `/ping/${uuid}/fail`]);
      assert.match(pings[3]?.body ?? '', /tar: wp-content: Cannot open/);
      const state = await t.api('GET', `/api/v1/sites/${siteId}/alerts`);
      assert.deepEqual(state.body.pings.map((p: { kind: string; state: string }) => `${p.kind} ${p.state}`).sort(), ['ping/fail sent', 'ping/start sent', 'ping/start sent', 'ping/success sent']);
      assert.ok(!JSON.stringify(state.body).includes(uuid));
    });

    it('a user subscription mails its user about the sites they may read, and successes only when opted in', async () => {
      const { siteId } = await setup('subs');
      const other = (await ctx().repos.sites.create({ nodeId, name: `other-${randomBytes(3).toString('hex')}`, wpPath: `/var/www/o-${randomBytes(3).toString('hex')}` })).id;
      const mail = uniqueAddress('siteadmin');
      const { id } = await t.userWithRole('site_admin', mail);
      const user = { id, token: generateToken('api') };
      await ctx().repos.tokens.create({ userId: id, tokenHash: hashToken(user.token), kind: 'api', name: 'alerts' });
      await ctx().repos.users.assignSite(user.id, siteId);
      const channels = await t.api('GET', '/api/v1/alerts/channels', { token: user.token });
      assert.equal(channels.status, 200);
      const ch = channels.body.channels.find((c: { name: string }) => c.name.startsWith('mail-subs-'));
      assert.equal(ch.email, null, 'a user who may not manage channels sees no settings');
      assert.equal((await t.api('POST', '/api/v1/alerts/subscriptions', { token: user.token, body: { channel_id: ch.id, site_ids: [other] } })).status, 403);
      const sub = await t.api('POST', '/api/v1/alerts/subscriptions', { token: user.token, body: { channel_id: ch.id, on_success: true } });
      assert.equal(sub.status, 201, JSON.stringify(sub.body));
      await agent.fail(other);
      await agent.fail(siteId);
      await agent.succeed(siteId);
      await settled();
      const subjects = (await mailTo(mail)).map((m) => m.Subject.replace(/subs-\S+/, 'SITE')).sort();
      assert.deepEqual(subjects, ['[wpbackup] Backup of SITE completed', '[wpbackup] Backup of SITE failed', '[wpbackup] SITE recovered: a backup completed']);
      assert.equal((await t.api('DELETE', `/api/v1/alerts/subscriptions/${sub.body.id}`)).status, 404, "an admin cannot remove someone else's subscription");
      assert.equal((await t.api('DELETE', `/api/v1/alerts/subscriptions/${sub.body.id}`, { token: user.token })).status, 204);
    });
  });
}
