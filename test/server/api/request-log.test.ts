import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../../src/server/start.ts';
import { waitFor } from '../../helpers/wait.ts';
import { sqliteTarget, type Target } from '../db/targets.ts';

// Request logs name every request but never a credential: bearer tokens live in headers
// (not logged), and the signed tokens in download and part-upload URLs are cut out.

describe('request log', () => {
  let target: Target;
  let server: RunningServer;
  let log = '';
  before(async () => {
    target = await sqliteTarget();
    const stream = new PassThrough();
    stream.on('data', (b: Buffer) => (log += b));
    server = await startServer({ port: 0, host: '127.0.0.1', dataDir: target.options.dataDir, env: {}, logRequests: true, logStream: stream });
  });
  after(async () => {
    await server.close();
    await target.cleanup();
  });

  it('logs each request with signed URL tokens and bearer tokens redacted', async () => {
    const downloadToken = 'c2lnbmVkLWRvd25sb2FkLXRva2Vu.abcdef0123456789';
    const partToken = 'sealed-part-token.0123456789abcdef';
    const bearer = 'wpb_a_' + 'x'.repeat(43);
    await fetch(`${server.url}/api/v1/downloads/${downloadToken}`);
    await fetch(`${server.url}/api/v1/agent/uploads/${partToken}/parts/1`, { method: 'PUT', body: 'x' });
    await fetch(`${server.url}/api/v1/sites`, { headers: { authorization: `Bearer ${bearer}` } });
    // A request's last line is written once its response is sent, which may be after the client has it.
    await waitFor('the log of all three requests', async () => (log.match(/"request completed"/g) ?? []).length >= 3, { context: () => log });
    assert.match(log, /\/api\/v1\/downloads\/\[redacted\]/);
    assert.match(log, /\/api\/v1\/agent\/uploads\/\[redacted\]\/parts\/1/);
    assert.match(log, /\/api\/v1\/sites/);
    for (const secret of [downloadToken, partToken, bearer]) assert.ok(!log.includes(secret), `${secret} is not in the log`);
  });
});
