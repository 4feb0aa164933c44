import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../../src/server/start.ts';
import { runCli } from '../../helpers/cli.ts';
import { captureLog, type CapturedLog } from '../../helpers/log.ts';

// Errors reach the server's log (not only with --log-requests) with their whole cause chain
// and without the secrets they carry; the user gets the usual 500 body, no detail. And the
// CLI refuses bad log and metrics options by name, with the bad-input exit code.

describe('the server logs errors with their causes', () => {
  let server: RunningServer;
  let log: CapturedLog;
  let dir: string;
  const nodeKey = `wpb_n_${'Z'.repeat(43)}`;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wpb-errlog-'));
    log = captureLog('info');
    server = await startServer({
      port: 0, host: '127.0.0.1', dataDir: dir, env: {}, logger: log.logger,
      extraRoutes: [(app) => app.get('/boom', async () => {
        const root = Object.assign(new Error(`connect to postgres://wpb:hunter2-pw@db/wpb failed for ${nodeKey}`), { code: 'ECONNREFUSED' });
        throw new Error('Could not read the site', { cause: new Error('The query failed', { cause: root }) });
      })],
    });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes one error line with the cause chain, redacted, and answers a plain 500', async () => {
    const res = await fetch(`${server.url}/boom`);
    assert.equal(res.status, 500);
    assert.deepEqual(await res.json(), { error: { code: 'internal', message: 'Something went wrong on the server; it was logged' } });
    const errors = log.entries().filter((e) => e.level === 'error');
    assert.equal(errors.length, 1, log.text());
    const err = errors[0]?.err as { message: string; cause: { message: string; cause: { message: string; code: string } } };
    assert.deepEqual([err.message, err.cause.message, err.cause.cause.code], ['Could not read the site', 'The query failed', 'ECONNREFUSED']);
    assert.match(err.cause.cause.message, /postgres:\/\/wpb:\[redacted\]@db\/wpb failed for wpb_n_\[redacted\]/);
    assert.ok(!log.text().includes('hunter2-pw') && !log.text().includes(nodeKey), 'no secret in the log');
    assert.equal(log.entries().filter((e) => e.msg === 'incoming request').length, 0, 'request lines stay opt-in');
  });
});

describe('wpbackup server and agent log options', () => {
  for (const [args, message] of [
    [['server', '--log-level', 'loud'], /--log-level must be one of fatal, error, warn, info, debug, trace, silent, not loud/],
    [['server', '--log-format', 'xml'], /--log-format must be json or pretty, not xml/],
    [['server', '--metrics-listen', 'nowhere', '--no-local-agent'], /--metrics-listen must be HOST:PORT, e\.g\. 127\.0\.0\.1:9464, not nowhere/],
    [['agent', '--server', 'http://127.0.0.1:9', '--log-format', 'xml'], /--log-format must be json or pretty, not xml/],
  ] as const) {
    it(`refuses ${args.slice(1).join(' ')} (exit 2)`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'wpb-logopt-'));
      try {
        const run = await runCli([...args, '--data-dir', dataDir, ...(args[0] === 'server' ? ['--port', '0'] : [])]);
        assert.equal(run.code, 2, run.stderr);
        assert.match(run.stderr, message);
        assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
});
