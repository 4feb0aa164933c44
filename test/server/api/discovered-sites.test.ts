import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { scanAndReport } from '../../../src/agent/agent.ts';
import { AgentClient } from '../../../src/agent/client.ts';
import { generateToken, hashToken } from '../../../src/server/auth/tokens.ts';
import { DIALECTS, startTestServer, type TestServer } from '../../helpers/server.ts';
import { captureLog } from '../../helpers/log.ts';

// Agents report what their scan found (POST /api/v1/agent/scan); users list it per node and
// adopt entries as sites (POST /api/v1/sites/adopt).

const entry = (path: string, extra: Record<string, unknown> = {}) => ({ path, name: path.split('/').pop(), db_name: 'wp', table_prefix: 'wp_', wp_version: '6.5.2', error: null, ...extra });

/** A minimal WordPress root: wp-settings.php, wp-config.php (with a password) and version.php. */
function fakeWordPress(dir: string): void {
  mkdirSync(join(dir, 'wp-includes'), { recursive: true });
  mkdirSync(join(dir, 'wp-content'), { recursive: true });
  writeFileSync(join(dir, 'wp-settings.php'), '<?php\n');
  writeFileSync(join(dir, 'wp-includes', 'version.php'), "<?php\n$wp_version = '6.4.3';\n");
  writeFileSync(
    join(dir, 'wp-config.php'),
    "<?php\ndefine( 'DB_NAME', 'shop_db' );\ndefine( 'DB_USER', 'shop' );\ndefine( 'DB_PASSWORD', 'hunter2-secret' );\ndefine( 'DB_HOST', 'localhost' );\n$table_prefix = 'shp_';\nrequire_once ABSPATH . 'wp-settings.php';\n",
  );
}

for (const dialect of DIALECTS) {
  describe(`discovered sites (${dialect})`, () => {
    let t: TestServer;
    let nodeA: string;
    let nodeB: string;
    let keyA: string;
    let keyB: string;
    let nodeAdmin: { id: string; token: string };
    let root: string;

    before(async () => {
      t = await startTestServer(dialect);
      const r = t.server.ctx.repos;
      keyA = generateToken('node');
      keyB = generateToken('node');
      nodeA = (await r.nodes.create({ hostname: 'a.example.com', status: 'active', nodeKeyHash: hashToken(keyA) })).id;
      nodeB = (await r.nodes.create({ hostname: 'b.example.com', status: 'active', nodeKeyHash: hashToken(keyB) })).id;
      nodeAdmin = await t.userWithRole('node_admin');
      await r.users.assignNode(nodeAdmin.id, nodeA);
      root = mkdtempSync(join(tmpdir(), 'wpb-scan-'));
    });
    after(async () => {
      await t.close();
      rmSync(root, { recursive: true, force: true });
    });

    const scan = (key: string, sites: unknown[]) => t.api('POST', '/api/v1/agent/scan', { body: { sites }, token: key });
    const list = async (nodeId: string, token?: string) => {
      const res = await t.api('GET', `/api/v1/nodes/${nodeId}/discovered-sites`, { token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.discovered_sites as { path: string; name: string; db_name: string | null; adopted: boolean; node_id: string }[];
    };

    it('stores a scan, and the next scan replaces it', async () => {
      let res = await scan(keyA, [entry('/var/www/one'), entry('/var/www/two')]);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.stored, 2);
      assert.deepEqual((await list(nodeA)).map((d) => d.path), ['/var/www/one', '/var/www/two']);
      res = await scan(keyA, [entry('/var/www/two', { name: 'renamed' }), entry('/var/www/three', { db_name: null, table_prefix: null, wp_version: null, error: 'Cannot read wp-config.php' })]);
      assert.equal(res.status, 200);
      const after = await list(nodeA);
      assert.deepEqual(after.map((d) => d.path), ['/var/www/three', '/var/www/two']);
      assert.equal(after.find((d) => d.path === '/var/www/two')?.name, 'renamed');
      assert.equal(after[0]?.db_name, null);
      assert.ok(after.every((d) => d.node_id === nodeA && d.adopted === false));
      // Node B's list is its own.
      assert.deepEqual(await list(nodeB), []);
    });

    it('refuses malformed scans (400)', async () => {
      const bad: unknown[][] = [
        [{ ...entry('/var/www/x'), db_password: 'secret' }],
        [entry('relative/path')],
        [entry('/var/www/../etc')],
        [{ path: '/var/www/x', name: 'x' }],
        Array.from({ length: 1001 }, (_, i) => entry(`/var/www/s${i}`)),
      ];
      for (const sites of bad) assert.equal((await scan(keyA, sites)).status, 400, JSON.stringify(sites).slice(0, 100));
      assert.equal((await t.api('POST', '/api/v1/agent/scan', { body: { sites: [], extra: 1 }, token: keyA })).status, 400);
      // A user is no agent.
      assert.equal((await scan(t.adminToken, [])).status, 403);
    });

    it('adopts a discovered site: 201, then 409; 404 for an undiscovered path; 400 for a bad body', async () => {
      await scan(keyA, [entry('/var/www/shop', { name: 'shop', db_name: 'shop_db' }), entry('/var/www/blog')]);
      let res = await t.api('POST', '/api/v1/sites/adopt', { body: { node_id: nodeA, path: '/var/www/shop' }, token: nodeAdmin.token });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.name, 'shop');
      assert.equal(res.body.wp_path, '/var/www/shop');
      assert.equal(res.body.db_name, 'shop_db');
      assert.equal(res.body.node_id, nodeA);
      res = await t.api('POST', '/api/v1/sites/adopt', { body: { node_id: nodeA, path: '/var/www/blog', name: 'My blog' } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.name, 'My blog');
      const found = await list(nodeA, nodeAdmin.token);
      assert.deepEqual(found.map((d) => [d.path, d.adopted]), [['/var/www/blog', true], ['/var/www/shop', true]]);

      res = await t.api('POST', '/api/v1/sites/adopt', { body: { node_id: nodeA, path: '/var/www/shop' } });
      assert.equal(res.status, 409, JSON.stringify(res.body));
      res = await t.api('POST', '/api/v1/sites/adopt', { body: { node_id: nodeA, path: '/var/www/nowhere' } });
      assert.equal(res.status, 404, JSON.stringify(res.body));
      // Discovered on A, not on B.
      res = await t.api('POST', '/api/v1/sites/adopt', { body: { node_id: nodeB, path: '/var/www/shop' } });
      assert.equal(res.status, 404, JSON.stringify(res.body));
      res = await t.api('POST', '/api/v1/sites/adopt', { body: { node_id: '00000000-0000-4000-8000-000000000000', path: '/var/www/shop' } });
      assert.equal(res.status, 404);
      for (const body of [{ node_id: nodeA }, { node_id: 'nope', path: '/var/www/shop' }, { node_id: nodeA, path: 'var/www' }, { node_id: nodeA, path: '/var/www/shop', name: '' }, { node_id: nodeA, path: '/x', extra: 1 }]) {
        assert.equal((await t.api('POST', '/api/v1/sites/adopt', { body })).status, 400, JSON.stringify(body));
      }
    });

    it("refuses another node's list and adoption on it (403)", async () => {
      await scan(keyB, [entry('/var/www/other')]);
      assert.equal((await t.api('GET', `/api/v1/nodes/${nodeB}/discovered-sites`, { token: nodeAdmin.token })).status, 403);
      const res = await t.api('POST', '/api/v1/sites/adopt', { body: { node_id: nodeB, path: '/var/www/other' }, token: nodeAdmin.token });
      assert.equal(res.status, 403, JSON.stringify(res.body));
      const siteAdmin = await t.userWithRole('site_admin');
      assert.equal((await t.api('GET', `/api/v1/nodes/${nodeA}/discovered-sites`, { token: siteAdmin.token })).status, 403);
      assert.equal((await t.api('GET', `/api/v1/nodes/${nodeA}/discovered-sites`, { token: keyA })).status, 403);
    });

    it('the agent scans its roots (a missing one is skipped) and posts what it found, without passwords', async () => {
      const site = join(root, 'shop.example.com', 'public_html');
      fakeWordPress(site);
      const posted: unknown[] = [];
      const client = new AgentClient(t.url, keyB);
      const spy = Object.assign(Object.create(client) as AgentClient, {
        scan: (report: Parameters<AgentClient['scan']>[0], signal?: AbortSignal) => {
          posted.push(report);
          return client.scan(report, signal);
        },
      });
      const captured = captureLog();
      const lines = captured.lines;
      const ok = await scanAndReport({ client: spy, signal: new AbortController().signal, logger: captured.logger, scanRoots: [root, join(root, 'missing')] });
      assert.equal(ok, true, lines.join('\n'));
      assert.doesNotMatch(JSON.stringify(posted), /hunter2/);
      const found = await list(nodeB);
      assert.equal(found.length, 1, JSON.stringify(found));
      assert.deepEqual(
        { path: found[0]?.path, name: found[0]?.name, db_name: found[0]?.db_name },
        { path: site, name: 'shop.example.com', db_name: 'shop_db' },
      );
      const full = (await t.api('GET', `/api/v1/nodes/${nodeB}/discovered-sites`)).body.discovered_sites[0];
      assert.equal(full.table_prefix, 'shp_');
      assert.equal(full.wp_version, '6.4.3');
      assert.equal(full.error, null);

      // A server that refuses is logged, not thrown.
      const refused = await scanAndReport({ client: new AgentClient(t.url, generateToken('node'), { attempts: 1 }), signal: new AbortController().signal, logger: captured.logger, scanRoots: [root] });
      assert.equal(refused, false);
      assert.match(lines.at(-1) ?? '', /scan failed/);
    });

    it("names a site by its directory when its database cannot tell the siteurl, and leaves no temp dir", async () => {
      const site = join(root, 'blog.example.org', 'htdocs');
      fakeWordPress(site);
      const tempBase = mkdtempSync(join(tmpdir(), 'wpb-scan-tmp-'));
      try {
        // The fake site's database (shop_db as shop on localhost) does not exist: the lookup fails quietly.
        const ok = await scanAndReport({ client: new AgentClient(t.url, keyB), signal: new AbortController().signal, scanRoots: [join(root, 'blog.example.org')], tempBase });
        assert.equal(ok, true);
        const found = await list(nodeB);
        assert.deepEqual(found.map((d) => [d.path, d.name]), [[site, 'blog.example.org']]);
        assert.deepEqual(readdirSync(tempBase), [], 'the lookup removed its run dir (and the password file in it)');
      } finally {
        rmSync(tempBase, { recursive: true, force: true });
      }
    });
  });
}
