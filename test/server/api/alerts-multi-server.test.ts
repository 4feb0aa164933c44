import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { alertsIdle } from '../../../src/server/alerts/dispatch.ts';
import { alertsOnce } from '../../../src/server/alerts/pass.ts';
import { onJobEnded } from '../../../src/server/alerts/conditions.ts';
import { startServer, type RunningServer } from '../../../src/server/start.ts';
import { mailpitChannel, mailTo, Receiver, uniqueAddress } from '../../helpers/alerts.ts';
import { startTestServer, type TestServer } from '../../helpers/server.ts';

// Two servers on one PostgreSQL, both running the alert pass at the same moments and both
// told of the same failed job: each alert still goes out exactly once (the raise, reminder and
// delivery claims are conditional UPDATEs only one server wins).

const HOUR = 3_600_000;

describe('alerts with two servers on one PostgreSQL', () => {
  let t: TestServer;
  let second: RunningServer;
  let clock = Date.now();
  const receiver = new Receiver();

  before(async () => {
    await receiver.start();
    t = await startTestServer('postgres', { now: () => clock });
    // The same database and data dir (so the same secret key), another process's worth of server.
    second = await startServer({ port: 0, host: '127.0.0.1', dataDir: t.target.options.dataDir, databaseUrl: t.target.options.databaseUrl, env: {}, now: () => clock });
    assert.equal((await t.api('PATCH', '/api/v1/alerts/settings', { body: { agent_offline_minutes: 60 } })).status, 200);
  });
  after(async () => {
    await second?.close();
    await t?.close();
    await receiver.close();
  });

  it('sends the dead man\'s switch, a failure, its reminder and an offline agent once each', async () => {
    const repos = t.server.ctx.repos;
    const node = await repos.nodes.create({ hostname: `web-${randomBytes(3).toString('hex')}.example.com`, status: 'active' });
    const site = await repos.sites.create({ nodeId: node.id, name: 'twice.example.com', wpPath: '/var/www/twice' });
    const stale = await repos.sites.create({ nodeId: node.id, name: 'stale.example.com', wpPath: '/var/www/stale' });
    const mail = uniqueAddress('twice');
    assert.equal((await t.api('POST', '/api/v1/alerts/channels', { body: mailpitChannel('mail', [mail], null) })).status, 201);
    const hook = await t.api('POST', '/api/v1/alerts/channels', { body: { name: 'hook', type: 'webhook', webhook: { url: `${receiver.url}/hook` } } });
    receiver.secret = hook.body.secret;
    assert.equal((await t.api('PUT', `/api/v1/sites/${stale.id}/alerts`, { body: { freshness_hours: 1 } })).status, 200);

    // The same failed job told to both servers at once (as if both had ended it).
    await repos.jobs.enqueueBackup(site.id);
    const job = await repos.jobs.claimNext(node.id, 600_000);
    assert.ok(job);
    const failed = await repos.jobs.finish(job.id, node.id, { state: 'failed', error: 'disk full (during backup_files)' });
    assert.ok(failed);
    await Promise.all([onJobEnded(t.server.ctx, failed), onJobEnded(second.ctx, failed)]);

    // Two hours on: the stale site's switch and the silent agent, seen by both passes at once.
    clock += 2 * HOUR;
    await Promise.all([alertsOnce(t.server.ctx, clock), alertsOnce(second.ctx, clock)]);
    // A day on: one reminder of each condition still raised.
    clock += 24 * HOUR;
    await Promise.all([alertsOnce(t.server.ctx, clock), alertsOnce(second.ctx, clock)]);
    await Promise.all([alertsIdle(t.server.ctx), alertsIdle(second.ctx)]);

    const kinds = receiver.events().map((e) => `${e.event}${e.reminder ? ' (reminder)' : ''} ${e.site?.id === stale.id ? 'stale' : e.site?.id === site.id ? 'site' : 'node'}`).sort();
    assert.deepEqual(kinds, [
      'agent.offline (reminder) node', 'agent.offline node', 'backup.failed (reminder) site', 'backup.failed site',
      'backup.stale (reminder) stale', 'backup.stale stale',
    ].sort());
    assert.ok(receiver.got.every((r) => r.signed));
    assert.equal((await mailTo(mail)).length, kinds.length, 'one mail per webhook POST');
  });
});
