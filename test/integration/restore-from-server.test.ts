import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { resultOf, runCli } from '../helpers/cli.ts';
import { layout, writeArchive } from '../helpers/hostile-archive.ts';
import { sql } from '../helpers/mysql.ts';
import { createRestoreTarget } from '../helpers/restore-target.ts';
import { DIALECTS, startTestServer, type TestServer } from '../helpers/server.ts';
import { TEST_HOME } from '../helpers/services.ts';

// `wpbackup restore --backup ID`: the download link and the sha256 the server recorded at
// upload come from GET /api/v1/backups/backups/{id}/download, and the archive is checked
// against that sha256 before anything is imported. An object changed in storage after the
// upload (by anyone who can write the bucket) is refused.

for (const dialect of DIALECTS) {
  describe(`restore --backup ID through the server (${dialect})`, () => {
    let t: TestServer;
    let env: NodeJS.ProcessEnv;
    let work: string;
    let archive: Buffer;
    let n = 0;

    before(async () => {
      t = await startTestServer(dialect);
      const token = await t.api('POST', '/api/v1/tokens', { body: { name: 'restore' } });
      assert.equal(token.status, 201, JSON.stringify(token.body));
      env = { WPBACKUP_URL: t.url, WPBACKUP_TOKEN: token.body.token };
      work = mkdtempSync(join(TEST_HOME, 'restore-server-'));
      writeArchive(join(work, 'a.tar.zst'), layout([]));
      archive = readFileSync(join(work, 'a.tar.zst'));
    });
    after(async () => {
      await t.close();
      rmSync(work, { recursive: true, force: true });
    });

    /** A completed backup whose stored object is `body` and whose recorded sha256 is `sha256`. */
    async function addBackup(body: Buffer, sha256: string): Promise<string> {
      const repos = t.server.ctx.repos;
      const node = await repos.nodes.create({ hostname: `web${++n}.example.com`, status: 'active' });
      const site = await repos.sites.create({ nodeId: node.id, name: `site${n}.example.com`, wpPath: `/var/www/site${n}` });
      const { storage, provider } = await t.server.ctx.storage.require((await t.server.ctx.storage.defaultProvider()).id);
      const key = `${node.id}/${site.id}/site${n}_20260101_000000.tar.zst`;
      await storage.put(key, Readable.from([body]));
      const row = await repos.backups.create({ siteId: site.id, storageId: provider.id, key, filename: key.split('/').pop() as string });
      return (await repos.backups.complete(row.id, { size: body.length, sha256 }))!.id;
    }

    it("hands out the recorded sha256 with the link, and restore checks it on the way", async () => {
      const sha = createHash('sha256').update(archive).digest('hex');
      const id = await addBackup(archive, sha);
      const dl = await t.api('GET', `/api/v1/backups/backups/${id}/download`);
      assert.equal(dl.status, 200);
      assert.equal(dl.body.sha256, sha);
      const target = await createRestoreTarget('wp_');
      try {
        const run = await runCli(['restore', '--backup', id, '--site', target.dir, '--json'], { env });
        assert.equal(run.code, 0, run.stderr);
        assert.equal(resultOf(run).sha256, sha);
        assert.equal(await sql("SELECT option_value FROM wp_options WHERE option_name = 'siteurl'", target.dbName), 'https://source.example');
      } finally {
        await target.cleanup();
      }
    });

    it('refuses an object that differs from what was uploaded, before importing anything', async () => {
      const recorded = createHash('sha256').update(archive).digest('hex');
      // Another archive, valid on its own (its manifest matches its database.sql), swapped in.
      writeArchive(join(work, 'b.tar.zst'), layout([{ name: 'wp-content/uploads/planted.php', type: '0', data: '<?php' }]));
      const id = await addBackup(readFileSync(join(work, 'b.tar.zst')), recorded);
      const target = await createRestoreTarget('wp_');
      try {
        const run = await runCli(['restore', '--backup', id, '--site', target.dir], { env });
        assert.equal(run.code, 1, run.stderr);
        assert.match(run.stderr, new RegExp(`sha256 is [0-9a-f]{64}, but ${recorded} was recorded when it was uploaded: it was altered or damaged since; nothing was imported`));
        assert.equal(await sql(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${target.dbName}'`), '0');
        assert.ok(!existsSync(join(target.dir, 'wp-content')));
      } finally {
        await target.cleanup();
      }
    });

    it('names a backup the server does not know', async () => {
      const run = await runCli(['restore', '--backup', '00000000-0000-4000-8000-000000000000', '--site', join(work, 'x')], { env });
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /Backup 0{8}-0{4}-4000-8000-0{12} does not exist/);
    });
  });
}
