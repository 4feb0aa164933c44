import assert from 'node:assert/strict';
import { chownSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, watch, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resultOf, runCli, type CliRun } from '../helpers/cli.ts';
import { BARE_DUMP, layout, writeArchive, type RawMember } from '../helpers/hostile-archive.ts';
import { sql } from '../helpers/mysql.ts';
import { createRestoreTarget, type RestoreTarget } from '../helpers/restore-target.ts';
import { TEST_HOME } from '../helpers/services.ts';

// Restoring archives a compromised web server could have uploaded, as root like the agent:
// each trick alone. A refused archive changes nothing (no table, no file, no command run); a
// neutralised member is listed as a note. The tar headers are made by hand (any type, owner,
// mode); database.sql tricks come with a matching manifest, as an attacker would make it.

describe('restoring a hostile archive', () => {
  let work: string;
  let n = 0;
  const targets: RestoreTarget[] = [];
  before(() => {
    work = mkdtempSync(join(TEST_HOME, 'hostile-'));
  });
  after(async () => {
    for (const t of targets) await t.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  async function target(): Promise<RestoreTarget> {
    const t = await createRestoreTarget('wp_');
    targets.push(t);
    return t;
  }

  function archive(members: RawMember[]): string {
    const path = join(work, `a${n++}.tar.zst`);
    writeArchive(path, members);
    return path;
  }

  async function tables(t: RestoreTarget): Promise<number> {
    return Number(await sql(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${t.dbName}'`));
  }

  /** Refused: exit 2, the message, no table, no wp-content, no staging dir left. */
  async function assertRefused(run: CliRun, t: RestoreTarget, message: RegExp): Promise<void> {
    assert.equal(run.code, 2, `exit code\n${run.stderr}`);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(await tables(t), 0, 'nothing imported');
    assert.ok(!existsSync(join(t.dir, 'wp-content')), 'no wp-content moved in');
    assert.deepEqual(readdirSync(join(t.dir, '..')).filter((f) => f.startsWith('.wpbackup-restore')), [], 'no staging dir left');
  }

  describe('database.sql', () => {
    const marker = (): string => join(work, `pwned-${n}`);
    const cases: [string, (m: string) => string, RegExp][] = [
      ['a \\! shell line', (m) => `\\! touch ${m}`, /database\.sql line 4 holds the client command '\\!'/],
      ['a system line', (m) => `system touch ${m}`, /database\.sql line 4 holds the client command 'system'/],
      ['source /etc/passwd', () => 'source /etc/passwd', /database\.sql line 4 holds the client command 'source'/],
      ['\\. a file', () => '\\. /etc/passwd', /database\.sql line 4 holds the client command '\\.'/],
      ['a command after a statement on the same line', (m) => `SELECT 1; system touch ${m}`, /line 4 holds the client command 'system'/],
      ['a command hidden in a versioned comment', (m) => `/*!40101 \\! touch ${m} */;`, /line 4 holds the client command '\\!'/],
      ['use another database', () => 'use mysql;', /line 4 holds the client command 'use'/],
      ['LOAD DATA LOCAL INFILE (the client, as root, would send the file)', () => "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE wp_options (option_name);", /line 4 holds a LOAD statement, which reads files/],
    ];
    for (const [what, line, message] of cases) {
      it(`refuses ${what}, runs nothing and imports nothing`, async () => {
        const m = marker();
        const dump = `${BARE_DUMP}${line(m)}\nINSERT INTO wp_options VALUES (3,'after','x');\n`;
        const t = await target();
        const run = await runCli(['restore', archive(layout([], { dump })), '--site', t.dir]);
        assert.ok(!existsSync(m), 'the command did not run');
        await assertRefused(run, t, message);
      });
    }

    it('runs the client with --local-infile=0: LOAD DATA LOCAL hidden in a versioned comment sends no file', async () => {
      const t = await target();
      const dump = `${BARE_DUMP}/*!50000 LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE wp_options (option_value) */;\n`;
      // As on a host whose option files turn LOAD DATA LOCAL on for the client.
      const home = mkdtempSync(join(work, 'home-'));
      writeFileSync(join(home, '.my.cnf'), '[client]\nlocal-infile=1\n');
      const run = await runCli(['restore', archive(layout([], { dump })), '--site', t.dir], { env: { HOME: home } });
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /Database error .*not allowed/i);
      const hostname = readFileSync('/etc/hostname', 'utf8').trim();
      assert.equal(await sql(`SELECT COUNT(*) FROM wp_options WHERE option_value LIKE ${JSON.stringify(`%${hostname}%`)}`, t.dbName), '0', 'the file did not reach the database');
      assert.ok(!existsSync(join(t.dir, 'wp-content')), 'a failed import moves no files in');
    });

    it('imports data that only looks like commands, inside quoted values', async () => {
      const t = await target();
      const run = await runCli(['restore', archive(layout([])), '--site', t.dir, '--json']);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(await sql("SELECT option_value FROM wp_options WHERE option_name = 'blurb'", t.dbName), 'data may say \\\\! touch /tmp/x; system ls; source /etc/passwd');
    });
  });

  describe('tar members', () => {
    it('refuses a name with .., an absolute name, a hard link, a member outside the layout, a member under its own link', async () => {
      const sentinel = `hostile-sentinel-${Date.now()}`;
      const cases: [RawMember[], RegExp, string?][] = [
        [[{ name: `wp-content/../../${sentinel}`, type: '0', data: 'x' }], /climbs out with '\.\.'/, join(TEST_HOME, sentinel)],
        [[{ name: join(work, sentinel), type: '0', data: 'x' }], /absolute name/, join(work, sentinel)],
        [[{ name: 'wp-content/uploads/passwd', type: '1', linkname: '/etc/passwd' }], /hard link \(wp-content\/uploads\/passwd -> \/etc\/passwd\)/],
        [[{ name: 'wp-content/uploads/passwd', type: '1', linkname: '../../../../etc/passwd' }], /hard link/],
        [[{ name: 'etc/cron.d/evil', type: '0', data: '* * * * * root touch /tmp/x\n' }], /holds etc\/cron\.d\/evil, which is not part of a wpbackup archive/],
        [[{ name: 'wp-content/up', type: '2', linkname: 'uploads' }, { name: 'wp-content/up/evil.php', type: '0', data: '<?php' }], /lies at or under the symlink wp-content\/up/],
        [[{ name: 'wp-content/uploads/x', type: '0', data: 'x' }, { name: 'database.sql', type: '2', linkname: '/etc/shadow' }], /database\.sql as something other than a plain file/],
      ];
      for (const [extra, message, sentinelPath] of cases) {
        const t = await target();
        const run = await runCli(['restore', archive(layout(extra)), '--site', t.dir]);
        await assertRefused(run, t, message);
        if (sentinelPath) assert.ok(!existsSync(sentinelPath), `nothing written at ${sentinelPath}`);
      }
    });

    it('drops setuid/setgid bits, leaves out devices, FIFOs and links out of wp-content, with notes', async () => {
      const t = await target();
      const members: RawMember[] = [
        { name: 'wp-content/uploads/suid', type: '0', data: '#!/bin/sh\n', mode: 0o4755, uid: 0 },
        { name: 'wp-content/uploads/sgid', type: '0', data: 'x', mode: 0o2755 },
        { name: 'wp-content/uploads/null', type: '3' },
        { name: 'wp-content/uploads/sda', type: '4' },
        { name: 'wp-content/uploads/fifo', type: '6' },
        { name: 'wp-content/uploads/etc', type: '2', linkname: '/etc' },
        { name: 'wp-content/uploads/up', type: '2', linkname: '../../..' },
        { name: 'wp-content/uploads/shadow', type: '2', linkname: '../../../../../../../../etc/shadow' },
        // Each looks inside alone; followed through the tree, 'up2' climbs out of wp-content.
        { name: 'wp-content/self', type: '2', linkname: '.' },
        { name: 'wp-content/up2', type: '2', linkname: 'self/self/../..' },
        { name: 'wp-content/themes/', type: '5' },
        { name: 'wp-content/themes/uploads-link', type: '2', linkname: '../uploads/hello.txt' },
      ];
      const run = await runCli(['restore', archive(layout(members)), '--site', t.dir, '--json']);
      assert.equal(run.code, 0, run.stderr);
      const notes = (resultOf(run).warnings as string[]).join('\n');
      const up = join(t.dir, 'wp-content', 'uploads');
      assert.equal(statSync(join(up, 'suid')).mode & 0o7777, 0o755);
      assert.equal(statSync(join(up, 'sgid')).mode & 0o7777, 0o755);
      assert.match(notes, /wp-content\/uploads\/suid had the setuid\/setgid bit; restored without it/);
      for (const name of ['null', 'sda', 'fifo', 'etc', 'up', 'shadow']) assert.ok(!existsSync(join(up, name)) && !isLink(join(up, name)), `${name} left out`);
      assert.match(notes, /wp-content\/uploads\/null is a device node; it was not restored/);
      assert.match(notes, /wp-content\/uploads\/fifo is a FIFO; it was not restored/);
      assert.match(notes, /wp-content\/uploads\/etc is a link to \/etc, outside wp-content; it was not restored/);
      assert.match(notes, /wp-content\/uploads\/up is a link to \.\.\/\.\.\/\.\., outside wp-content/);
      assert.match(notes, /wp-content\/up2 leads out of wp-content through other links; it was not restored/);
      assert.ok(!isLink(join(t.dir, 'wp-content', 'up2')));
      assert.equal(readlinkSync(join(t.dir, 'wp-content', 'themes', 'uploads-link')), '../uploads/hello.txt', 'a link inside wp-content is kept');
      assert.equal(readlinkSync(join(t.dir, 'wp-content', 'self')), '.');
    });

    it("gives every file to the site directory's owner, whatever owners the archive names", async () => {
      const t = await target();
      chownSync(t.dir, 4321, 4322);
      const members: RawMember[] = [
        { name: 'wp-content/uploads/root-owned', type: '0', data: 'x', uid: 0, gid: 0 },
        { name: 'wp-content/uploads/other', type: '0', data: 'x', uid: 1234, gid: 1234 },
        { name: 'wp-content/uploads/dir/', type: '5', uid: 0 },
        { name: 'wp-content/uploads/link', type: '2', linkname: 'other', uid: 0 },
        // No members for its dirs: tar must not make them itself (as root, they would be root's).
        { name: 'wp-content/plugins/no/dirs.php', type: '0', data: 'x', uid: 0 },
      ];
      const run = await runCli(['restore', archive(layout(members)), '--site', t.dir]);
      assert.equal(run.code, 0, run.stderr);
      const implicit = ['wp-content/plugins', 'wp-content/plugins/no', 'wp-content/plugins/no/dirs.php'];
      for (const rel of ['wp-content', 'wp-content/uploads', 'wp-content/uploads/root-owned', 'wp-content/uploads/other', 'wp-content/uploads/dir', 'wp-content/uploads/link', 'wp-content/uploads/hello.txt', ...implicit]) {
        const st = lstatSync(join(t.dir, rel));
        assert.deepEqual([st.uid, st.gid], [4321, 4322], rel);
      }
    });
  });

  describe('the directories a restore writes into', () => {
    it("writes nothing through a link put in place of the staging dir mid-restore (by whoever can write the site's parent)", async () => {
      const t = await target();
      const parent = dirname(t.dir);
      const decoy = mkdtempSync(join(work, 'decoy-'));
      const prefix = `.wpbackup-restore-${basename(t.dir)}-`;
      let swapped = '';
      const watcher = watch(parent, (_event, name) => {
        if (swapped || !name?.startsWith(prefix)) return;
        try {
          renameSync(join(parent, name), join(work, 'moved-staging'));
          symlinkSync(decoy, join(parent, name));
          swapped = name;
        } catch {
          // not there yet, or already gone: the next event tries again
        }
      });
      try {
        const run = await runCli(['restore', archive(layout([])), '--site', t.dir]);
        assert.ok(swapped, 'the staging dir was swapped for a link');
        assert.deepEqual(readdirSync(decoy), [], 'nothing was written through the link');
        if (run.code === 0) assert.equal(readFileSync(join(t.dir, 'wp-content', 'uploads', 'hello.txt'), 'utf8'), 'hello\n');
        else assert.match(run.stderr, /was replaced while it was being made/);
      } finally {
        watcher.close();
        if (swapped) rmSync(join(parent, swapped), { force: true });
      }
    });
  });

  describe('the archive as the server recorded it', () => {
    it('refuses an archive whose sha256 differs from the one recorded at upload, before importing', async () => {
      const t = await target();
      const path = archive(layout([]));
      const wrong = 'ab'.repeat(32);
      const run = await runCli(['restore', path, '--site', t.dir, '--sha256', wrong]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`sha256 is [0-9a-f]{64}, but ${wrong} was recorded when it was uploaded`));
      assert.equal(await tables(t), 0);
      assert.ok(!existsSync(join(t.dir, 'wp-content')));
    });

    it('restores when the sha256 matches', async () => {
      const t = await target();
      const path = join(work, 'good.tar.zst');
      const sha = writeArchive(path, layout([]));
      const run = await runCli(['restore', path, '--site', t.dir, '--sha256', sha.toUpperCase()]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(await tables(t), 1);
    });
  });
});

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
