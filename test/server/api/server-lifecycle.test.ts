import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { describe, it } from 'node:test';
import pg from 'pg';
import type { Dialect } from '../../../src/server/db/db.ts';
import { DOWNLOAD_PATH } from '../../../src/server/local-download.ts';
import { startServer, type RunningServer } from '../../../src/server/start.ts';
import { DIALECTS, startTestServer, twoNodeFleet } from '../../helpers/server.ts';
import { services } from '../../helpers/services.ts';
import { waitFor } from '../../helpers/wait.ts';
import { postgresTarget, sqliteTarget, type Target } from '../db/targets.ts';

// What a server holds is released when it closes, and when its start fails half-way: the
// database handle above all (an SQLite file left open, a PostgreSQL pool left connected). A
// download link is signed under a key the data dir's secret key derives, so it outlives a
// restart and means nothing to a server with another data dir.

const makeTarget = (d: Dialect): Promise<Target> => (d === 'sqlite' ? sqliteTarget() : postgresTarget());

function start(target: Target, o: { dataDir?: string; env?: NodeJS.ProcessEnv; extraRoutes?: Parameters<typeof startServer>[0]['extraRoutes'] } = {}): Promise<RunningServer> {
  return startServer({ port: 0, host: '127.0.0.1', dataDir: o.dataDir ?? target.options.dataDir, databaseUrl: target.options.databaseUrl, env: o.env ?? {}, extraRoutes: o.extraRoutes });
}

/** Open connections to the target's database: SQLite files this process holds open, or PostgreSQL backends. */
async function openHandles(target: Target): Promise<number> {
  if (target.dialect === 'sqlite') {
    const fds = readdirSync('/proc/self/fd').map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    });
    return fds.filter((path) => path.startsWith(`${target.options.dataDir}/`) && /\.(db|sqlite)/.test(path)).length;
  }
  const name = new URL(target.options.databaseUrl ?? '').pathname.slice(1);
  const admin = new pg.Client({ connectionString: services().postgres.url });
  await admin.connect();
  try {
    const r = await admin.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1', [name]);
    return Number(r.rows[0]?.n ?? 0);
  } finally {
    await admin.end();
  }
}

/**
 * Waits until nothing holds the database open. The bound stays under the PostgreSQL pool's idle
 * timeout (10 s): past it, even a pool nobody closed would have dropped its connections.
 */
const closedAll = (target: Target): Promise<boolean> =>
  waitFor(`every connection to the ${target.dialect} database to close`, async () => (await openHandles(target)) === 0, { ms: 5_000 });

/** A request through a keep-alive agent: its response once the headers are in, and the socket it went on. */
function send(agent: Agent, url: string, o: { method?: string; token?: string; body?: string } = {}): Promise<{ res: IncomingMessage; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = o.token ? { authorization: `Bearer ${o.token}` } : {};
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    const req = request(url, { agent, method: o.method ?? 'GET', headers });
    req.on('error', reject);
    req.on('response', (res) => resolve({ res, socket: req.socket as Socket }));
    req.end(o.body);
  });
}

async function text(res: IncomingMessage): Promise<string> {
  let s = '';
  for await (const chunk of res) s += String(chunk);
  return s;
}

for (const dialect of DIALECTS) {
  describe(`Server start and shutdown (${dialect})`, () => {
    it('closing ends every connection: a long poll it answers, an event stream, a download under way, one with no request yet', async () => {
      const download = new PassThrough();
      const t = await startTestServer(dialect, {
        pollWaitMs: 600_000,
        pollRecheckMs: 600_000,
        extraRoutes: [
          (app) =>
            app.get('/test/download', async (_req, reply) => {
              download.write('first part ');
              return reply.send(download);
            }),
        ],
      });
      // An idle kept-alive connection lasts keepAliveTimeout: ten minutes here, so within waitFor's
      // bound only the close can end these. (Before, close() waited Fastify's 72 s for each.)
      t.server.app.server.keepAliveTimeout = 600_000;
      const agent = new Agent({ keepAlive: true });
      let early: Socket | undefined;
      try {
        const f = await twoNodeFleet(t);
        const poll = send(agent, `${t.url}/api/v1/agent/poll`, { method: 'POST', token: f.keyA, body: '{}' });
        await waitFor('the poll to wait', async () => t.server.ctx.jobNotifier.waiting(f.nodeA) === 1 && t.server.ctx.caps.polls.held(f.nodeA) === 1);
        const stream = await send(agent, `${t.url}/api/v1/sites/${f.siteA}/backup/events`, { token: f.siteAdmin.token });
        assert.equal(stream.res.statusCode, 200);
        const streamEnded = text(stream.res).catch(() => 'aborted');
        const loading = await send(agent, `${t.url}/test/download`);
        assert.equal(loading.res.statusCode, 200);
        // Clients open connections ahead of their requests (browsers, fetch's pool).
        const accepted = once(t.server.app.server, 'connection');
        early = connect(Number(new URL(t.url).port), '127.0.0.1').on('error', () => {});
        await accepted;

        const closing = t.server.app.close();
        const polled = await poll;
        assert.equal(polled.res.statusCode, 200);
        assert.equal(polled.res.headers.connection, 'close', 'the poll the close answered says its connection ends');
        assert.deepEqual(JSON.parse(await text(polled.res)), { job: null, job_limit: 1 });
        // A response under way when the close began finishes, then its connection ends.
        download.end('last part');
        assert.equal(await text(loading.res), 'first part last part');
        assert.match(await streamEnded, /event: status/, 'the client saw the event stream end');
        const connections = (): Promise<number> => new Promise((resolve, reject) => t.server.app.server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
        await waitFor('the server to end every connection', async () => (await connections()) === 0, { context: () => `client sockets open: ${[polled.socket, stream.socket, loading.socket, early].filter((sk) => !sk?.destroyed).length}` });
        await closing;
      } finally {
        agent.destroy();
        early?.destroy();
        await t.close();
      }
    });

    it('closing the server closes the storage clients, the job notifier and the database', async () => {
      const target = await makeTarget(dialect);
      try {
        const server = await start(target);
        const { ctx } = server;
        const m = services().minio;
        const p = await ctx.repos.storageProviders.create({
          name: 'minio', type: 's3', endpoint: m.endpoint, region: m.region, bucket: 'any-bucket', pathStyle: true, credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
        });
        const { storage } = await ctx.storage.require(p.id);
        let storageClosed = 0;
        const close = storage.close?.bind(storage);
        storage.close = () => {
          storageClosed++;
          close?.();
        };
        assert.ok((await openHandles(target)) > 0, 'the running server holds the database open');
        await server.close();
        assert.equal(storageClosed, 1, "the registry's S3 client was closed");
        assert.equal(ctx.storage.size, 0);
        assert.equal(ctx.jobNotifier.closed, true);
        await assert.rejects(ctx.db.get('SELECT 1'), 'the database handle is closed');
        assert.ok(await closedAll(target));
        await server.close(); // a second close finds nothing left to release
      } finally {
        await target.cleanup();
      }
    });

    it('a start that fails after opening the database closes it (bad secret key)', async () => {
      const target = await makeTarget(dialect);
      try {
        await assert.rejects(start(target, { env: { WPBACKUP_SECRET_KEY: 'not-a-key' } }), /WPBACKUP_SECRET_KEY/);
        assert.ok(await closedAll(target));
      } finally {
        await target.cleanup();
      }
    });

    it('a start that fails while building the API closes the database', async () => {
      const target = await makeTarget(dialect);
      try {
        const broken = (): void => {
          throw new Error('route module failed');
        };
        await assert.rejects(start(target, { extraRoutes: [broken] }), /route module failed/);
        assert.ok(await closedAll(target));
      } finally {
        await target.cleanup();
      }
    });

    it('a download link still works after a restart with the same data dir, and not with another', async () => {
      const target = await makeTarget(dialect);
      const otherDir = await mkdtemp(join(tmpdir(), 'wpb-other-'));
      const root = await mkdtemp(join(tmpdir(), 'wpb-local-'));
      try {
        const first = await start(target);
        const p = await first.ctx.repos.storageProviders.create({ name: 'disk', type: 'local', rootPath: root });
        const { storage } = await first.ctx.storage.require(p.id);
        await storage.put('n/s/site_20260101_000000.tar.zst', Readable.from([Buffer.from('archive')]));
        const link = new URL(await storage.presignGet('n/s/site_20260101_000000.tar.zst', 3600));
        assert.ok(link.pathname.startsWith(DOWNLOAD_PATH));
        assert.equal((await fetch(link)).status, 200);
        await first.close();

        const again = await start(target);
        try {
          const res = await fetch(`${again.url}${link.pathname}`);
          assert.equal(res.status, 200);
          assert.equal(await res.text(), 'archive');
        } finally {
          await again.close();
        }

        const other = await start(target, { dataDir: otherDir });
        try {
          const res = await fetch(`${other.url}${link.pathname}`);
          assert.equal(res.status, 403);
          assert.match(((await res.json()) as { error: { message: string } }).error.message, /not valid/);
        } finally {
          await other.close();
        }
      } finally {
        await target.cleanup();
        await rm(otherDir, { recursive: true, force: true });
        await rm(root, { recursive: true, force: true });
      }
    });
  });
}
