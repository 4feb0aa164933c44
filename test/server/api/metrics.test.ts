import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import { loadMetricsToken, metricsTokenPath } from '../../../src/server/metrics-token.ts';
import { startServer, type RunningServer } from '../../../src/server/start.ts';
import { captureLog, type CapturedLog } from '../../helpers/log.ts';
import { parseMetrics, sample } from '../../helpers/prometheus.ts';
import { makeBucket, removeBucket } from '../../helpers/s3.ts';
import { DIALECTS, startTestServer, type TestServer } from '../../helpers/server.ts';
import { services } from '../../helpers/services.ts';
import { waitFor } from '../../helpers/wait.ts';

// GET /metrics after a real backup's lifecycle through the agent API (join, start, poll,
// progress through the stages, a multipart upload to MinIO, finish): the text parses strictly,
// and each series holds what happened. The fleet's gauges come from the database at scrape
// time, so a second server on the same database reports the same, and its own counters stay
// its own. The clock is the test's: "online" and durations move only when the test says so.

const T0 = Date.parse('2026-11-30T03:00:00Z');

for (const dialect of DIALECTS) {
  describe(`metrics (${dialect})`, () => {
    let t: TestServer;
    let log: CapturedLog;
    let bucket = '';
    let clock = T0;
    const now = (): number => clock;

    before(async () => {
      log = captureLog('info');
      t = await startTestServer(dialect, { now, pollWaitMs: 200, leaseMs: 600_000, logger: log.logger, metricsListen: '127.0.0.1:0' });
      bucket = await makeBucket('wpb-metrics');
      const m = services().minio;
      await t.server.ctx.repos.storageProviders.create({
        name: 'minio', type: 's3', endpoint: m.endpoint, bucket, region: m.region, pathStyle: true, isDefault: true,
        credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
      });
    });
    after(async () => {
      await t.close();
      if (bucket) await removeBucket(bucket);
    });

    async function scrape(server: RunningServer = t.server): Promise<Map<string, number>> {
      const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.ctx.metrics.token}` } });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
      return parseMetrics(text);
    }

    async function joinNode(): Promise<{ nodeId: string; key: string }> {
      const code = generateToken('join');
      await t.server.ctx.repos.joinCodes.create({ codeHash: hashToken(code), expiresAt: clock + 60_000 });
      const res = await t.api('POST', '/api/v1/agent/join', { body: { code, hostname: 'web1.example.com' }, token: null });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return { nodeId: res.body.node_id, key: res.body.node_key };
    }

    /** Start (as the admin) and claim (as the agent) a backup of the site; returns the job. */
    async function startAndClaim(siteId: string, key: string): Promise<{ job_id: string }> {
      const start = await t.api('POST', `/api/v1/sites/${siteId}/backup/start`);
      assert.equal(start.status, 202, JSON.stringify(start.body));
      const poll = await t.api('POST', '/api/v1/agent/poll', { token: key });
      assert.ok(poll.body.job, JSON.stringify(poll.body));
      return poll.body.job;
    }

    it('reports a backup\'s lifecycle: counters, stage and run durations, bytes, last success, queue and agents', async () => {
      const node = await joinNode();
      const site = await t.server.ctx.repos.sites.create({ nodeId: node.nodeId, name: 'shop.example.com', wpPath: '/var/www/shop' });
      const idle = await t.server.ctx.repos.sites.create({ nodeId: node.nodeId, name: 'never.example.com', wpPath: '/var/www/never' });

      let m = await scrape();
      assert.equal(sample(m, 'wpbackup_agents_online'), 0, 'joined but never heard from');
      assert.equal(sample(m, 'wpbackup_nodes{status="active"}'), 1);
      assert.equal(sample(m, 'wpbackup_backups_total{status="completed"}'), 0);

      const start = await t.api('POST', `/api/v1/sites/${site.id}/backup/start`);
      assert.equal(start.status, 202);
      m = await scrape();
      assert.equal(sample(m, 'wpbackup_queue_depth'), 1);
      assert.equal(sample(m, 'wpbackup_sites{status="running"}'), 1);

      const k = { token: node.key };
      const poll = await t.api('POST', '/api/v1/agent/poll', k);
      const jobId = poll.body.job.job_id as string;
      m = await scrape();
      assert.equal(sample(m, 'wpbackup_queue_depth'), 0);
      assert.equal(sample(m, 'wpbackup_jobs_running'), 1);
      // "Last seen" is written beside the request, not before its answer (route.ts principalOf).
      await waitFor('the poll to be heard (agents_online 1)', async () => sample(await scrape(), 'wpbackup_agents_online') === 1);

      for (const stage of ['backup_db', 'backup_files', 'create_bundle', 'upload_remote']) {
        for (const progress of [10, 20]) {
          const r = await t.api('POST', `/api/v1/agent/jobs/${jobId}/progress`, { body: { status: 'running', progress, stage, stage_detail: stage, error: null }, ...k });
          assert.equal(r.status, 200, JSON.stringify(r.body));
        }
      }
      const archive = Buffer.from('an archive of forty-two bytes, more or so.');
      assert.equal((await t.api('POST', `/api/v1/agent/jobs/${jobId}/upload/start`, k)).status, 200);
      const urls = (await t.api('POST', `/api/v1/agent/jobs/${jobId}/upload/parts`, { body: { part_numbers: [1] }, ...k })).body.urls;
      const put = await fetch(urls['1'], { method: 'PUT', body: archive });
      assert.equal(put.status, 200);
      const complete = await t.api('POST', `/api/v1/agent/jobs/${jobId}/upload/complete`, {
        body: { parts: [{ part_number: 1, etag: put.headers.get('etag') }], size: archive.length, sha256: createHash('sha256').update(archive).digest('hex') }, ...k,
      });
      assert.equal(complete.status, 200, JSON.stringify(complete.body));
      clock += 90_000;
      const stageSeconds = { backup_db: 2.5, backup_files: 40, create_bundle: 0.5, upload_remote: 7 };
      const fin = await t.api('POST', `/api/v1/agent/jobs/${jobId}/finish`, { body: { status: 'completed', stage: null, error: null, source_bytes: 1000, stage_seconds: stageSeconds }, ...k });
      assert.equal(fin.status, 200, JSON.stringify(fin.body));
      await t.server.ctx.jobEnded.idle();
      t.server.ctx.metrics.alertsSent.inc({ channel: 'email', event: 'backup_failed' });

      m = await scrape();
      assert.equal(sample(m, 'wpbackup_backups_total{status="completed"}'), 1);
      assert.equal(sample(m, 'wpbackup_backups_total{status="failed"}'), 0);
      assert.equal(sample(m, 'wpbackup_uploaded_bytes_total'), archive.length);
      assert.equal(sample(m, 'wpbackup_backups_stored'), 1);
      assert.equal(sample(m, 'wpbackup_backups_stored_bytes'), archive.length);
      assert.equal(sample(m, 'wpbackup_backup_stage_duration_seconds_count{stage="backup_files"}'), 1);
      assert.equal(sample(m, 'wpbackup_backup_stage_duration_seconds_sum{stage="backup_files"}'), 40);
      assert.equal(sample(m, 'wpbackup_backup_stage_duration_seconds_bucket{le="30",stage="backup_files"}'), 0);
      assert.equal(sample(m, 'wpbackup_backup_stage_duration_seconds_bucket{le="60",stage="backup_files"}'), 1);
      assert.equal(sample(m, 'wpbackup_backup_stage_duration_seconds_sum{stage="backup_db"}'), 2.5);
      assert.equal(m.get('wpbackup_backup_stage_duration_seconds_count{stage="cleanup"}'), 0, 'no cleanup time was reported');
      assert.equal(sample(m, 'wpbackup_backup_duration_seconds_sum{status="completed"}'), 90);
      assert.equal(sample(m, `wpbackup_site_last_success_timestamp_seconds{site_id="${site.id}",site_name="shop.example.com"}`), clock / 1000);
      assert.ok(![...m.keys()].some((key) => key.includes(idle.id)), 'a site with no completed backup has no last-success series');
      assert.equal(sample(m, 'wpbackup_sites{status="completed"}'), 1);
      assert.equal(sample(m, 'wpbackup_sites{status="idle"}'), 1);
      assert.equal(sample(m, 'wpbackup_jobs_running'), 0);
      assert.equal(sample(m, 'wpbackup_alerts_sent_total{channel="email",event="backup_failed"}'), 1);

      // A failed run: counted, and the last success stays where it was.
      const lastSuccess = clock / 1000;
      const failing = await startAndClaim(site.id, node.key);
      clock += 30_000;
      assert.equal((await t.api('POST', `/api/v1/agent/jobs/${failing.job_id}/finish`, { body: { status: 'failed', stage: 'backup_db', error: 'mysqldump: access denied', stage_seconds: {} }, ...k })).status, 200);
      await t.server.ctx.jobEnded.idle();
      m = await scrape();
      assert.equal(sample(m, 'wpbackup_backups_total{status="failed"}'), 1);
      assert.equal(sample(m, 'wpbackup_backup_duration_seconds_sum{status="failed"}'), 30);
      assert.equal(sample(m, `wpbackup_site_last_success_timestamp_seconds{site_id="${site.id}",site_name="shop.example.com"}`), lastSuccess);
      assert.equal(sample(m, 'wpbackup_sites{status="failed"}'), 1);

      // The agent falls silent: offline once the window has passed, with no request needed.
      clock += 2 * t.server.ctx.config.pollWaitMs + 10_001;
      assert.equal(sample(await scrape(), 'wpbackup_agents_online'), 0);

      // One line per job start, stage and end, with the ids.
      const jobLines = log.entries().filter((e) => e.job === jobId);
      assert.deepEqual(jobLines.map((e) => [e.event, e.stage ?? e.state ?? null]), [
        ['job.start', null], ['job.stage', 'backup_db'], ['job.stage', 'backup_files'], ['job.stage', 'create_bundle'], ['job.stage', 'upload_remote'], ['job.end', 'done'],
      ]);
      for (const e of jobLines) assert.deepEqual([e.site, e.node, typeof e.time, e.level === 'info'], [site.id, node.nodeId, 'string', true], JSON.stringify(e));
      const failedEnd = log.entries().find((e) => e.job === failing.job_id && e.event === 'job.end');
      assert.equal(failedEnd?.level, 'warn');
      assert.match(String(failedEnd?.error), /access denied/);
    });

    it('answers a second server on the same database with the same fleet gauges, and keeps the counters apart', async () => {
      const other = await startServer({ port: 0, host: '127.0.0.1', dataDir: t.target.options.dataDir, databaseUrl: t.target.options.databaseUrl, env: {}, now, pollWaitMs: 200, logger: captureLog('silent').logger });
      try {
        const [a, b] = [await scrape(), await scrape(other)];
        for (const key of [...a.keys()].filter((k) => /^wpbackup_(sites|queue_depth|jobs_running|agents_online|nodes|site_last_success|backups_stored)/.test(k))) {
          assert.equal(b.get(key), a.get(key), key);
        }
        assert.equal(sample(a, 'wpbackup_backups_total{status="completed"}'), 1);
        assert.equal(sample(b, 'wpbackup_backups_total{status="completed"}'), 0, 'the other server ended no backup');
      } finally {
        await other.close();
      }
    });

    it('takes only the metrics token on the API address: no session, API token, node key or other token', async () => {
      const token = t.server.ctx.metrics.token;
      assert.match(token, /^wpb_m_[A-Za-z0-9_-]{43}$/);
      const file = metricsTokenPath(t.target.options.dataDir);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(loadMetricsToken(t.target.options.dataDir, {}), token, 'the same token on the next start');
      const apiToken = (await t.api('POST', '/api/v1/tokens', { body: { name: 'scraper' } })).body.token as string;
      for (const [what, header] of [
        ['no header', undefined], ['the admin session', `Bearer ${t.adminToken}`], ['an API token', `Bearer ${apiToken}`],
        ['another token', `Bearer wpb_m_${'A'.repeat(43)}`], ['the token without Bearer', token], ['the token as Basic', `Basic ${token}`],
      ] as const) {
        const res = await fetch(`${t.url}/metrics`, { headers: header ? { authorization: header } : {} });
        const body = (await res.json()) as { error: { code: string } };
        assert.equal(res.status, 401, what);
        assert.equal(body.error.code, 'unauthorized', what);
      }
      const doc = (await t.api('GET', '/api/openapi.json')).body;
      const op = doc.paths['/metrics'].get;
      assert.ok(op.responses['200'].content['text/plain'], 'documented as text/plain');
      assert.ok(op.responses['401'], 'documents the 401');
    });

    it('serves the same text without a token on --metrics-listen, and nothing else there', async () => {
      const listener = t.server.metricsListener;
      assert.ok(listener);
      const res = await fetch(listener.url);
      assert.equal(res.status, 200);
      const m = parseMetrics(await res.text());
      assert.equal(sample(m, 'wpbackup_backups_total{status="completed"}'), 1);
      assert.equal(sample(m, 'wpbackup_nodes{status="active"}'), 1);
      assert.equal((await fetch(listener.url.replace('/metrics', '/api/v1/sites'))).status, 404);
      assert.equal((await fetch(listener.url, { method: 'POST' })).status, 405);
    });
  });
}

describe('metrics token from the operator', () => {
  it('takes WPBACKUP_METRICS_TOKEN when set, and refuses a short one', async () => {
    const given = 'x'.repeat(40);
    assert.equal(loadMetricsToken('/nonexistent-not-read', { WPBACKUP_METRICS_TOKEN: given }), given);
    assert.throws(() => loadMetricsToken('/nonexistent-not-read', { WPBACKUP_METRICS_TOKEN: 'short' }), /WPBACKUP_METRICS_TOKEN must be at least 32/);
  });
});
