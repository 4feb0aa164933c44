import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addBulk } from '../helpers/bulk.ts';
import { resultOf, runCli } from '../helpers/cli.ts';
import { TEST_HOME } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';
import { ownerIds, ownerSupplementaryGroup } from '../helpers/owner.ts';

// Run as root on a site someone else owns, a backup reads the site (the reader process) and
// dumps the database (mariadb-dump) as that owner, and a stop or kill -9 still takes every
// child with it.

/** Descendants of a process with their program and real uid, read from /proc. */
function descendants(pid: number): { pid: number; cmd: string; uid: number }[] {
  const out: { pid: number; cmd: string; uid: number }[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1]);
      out.push({ pid: Number(p), cmd, uid }, ...descendants(Number(p)));
    } catch {
      // gone already
    }
  }
  return out;
}

const alive = (pid: number): boolean => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');

describe('a backup as the site owner', () => {
  let site: FixtureSite;
  let work: string;
  let uid: number;

  before(async () => {
    site = await createFixtureSite({ name: 'owner' });
    await addBulk(site, { dbMb: 48, files: 2000, mediaMb: 48, randomDb: true });
    const ids = ownerIds();
    uid = ids.uid;
    execFileSync('chown', ['-R', `${ids.uid}:${ids.gid}`, site.dir]);
    work = mkdtempSync(join(TEST_HOME, 'owner-'));
  });
  after(async () => {
    execFileSync('chown', ['-R', '0:0', site.dir]);
    await site.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  const args = (name: string, slow = true): string[] => ['backup', '--site', site.dir, '--to', join(work, name), '--json', '--data-dir', join(work, `data-${name}`), ...(slow ? ['--limit-upload', '12M'] : [])];
  const runDirs = (name: string): string[] => readdirSync(join(work, `data-${name}`, 'tmp'));
  const dumping = (e: Record<string, unknown>): boolean => e.type === 'progress' && /Dumping database .*\(/.test(String(e.stage_detail));
  const reading = (e: Record<string, unknown>): boolean => e.type === 'progress' && e.stage === 'backup_files';

  it('runs the dump and the reader as the owner; kill -9 takes both with it and the next run succeeds', async () => {
    const seen: { cmd: string; uid: number; reading: boolean }[] = [];
    let children: number[] = [];
    let killed = false;
    await runCli(args('kill'), {
      onEvent: (e, child: ChildProcess) => {
        if (killed || !(dumping(e) || reading(e))) return;
        const now = descendants(child.pid as number);
        seen.push(...now.map((d) => ({ ...d, reading: reading(e) })));
        if (!reading(e)) return;
        killed = true;
        children = now.map((d) => d.pid);
        child.kill('SIGKILL');
      },
    });
    assert.ok(killed, 'the run reached backup_files');
    const dump = seen.filter((d) => /mariadb-dump|mysqldump/.test(d.cmd));
    // The reader starts as root and drops to the owner before it reads: look at it while it reads.
    const reader = seen.filter((d) => d.cmd.includes('reader-main.ts') && d.reading);
    assert.ok(dump.length > 0 && reader.length > 0, `the dump and the reader were seen: ${seen.map((d) => d.cmd).join('; ')}`);
    assert.deepEqual([...new Set([...dump, ...reader].map((d) => d.uid))], [uid], 'both ran as the owner');
    assert.ok(seen.filter((d) => /\bzstd\b/.test(d.cmd)).every((d) => d.uid === 0), 'zstd stays with root');
    // Children notice the parent is gone when their next write fails.
    await waitFor('the killed run\'s children to exit', async () => children.filter(alive).length === 0, { ms: 5000 });
    const next = await runCli(args('kill', false));
    assert.ok(next.code === 0 || next.code === 3, next.stderr);
    assert.deepEqual(runDirs('kill'), []);
    // The reader's entries, framed by the parent's, make the archive the spec describes.
    const raw = execFileSync('zstd', ['-q', '-d', '-c', join(work, 'kill', resultOf(next).key as string)], { maxBuffer: 1 << 30 });
    const names = execFileSync('tar', ['-tf', '-'], { input: raw, encoding: 'utf8', maxBuffer: 1 << 30 }).trim().split('\n');
    assert.deepEqual(names.filter((n) => !n.startsWith('wp-content')), ['wp-config.php', '.htaccess', 'database.sql', 'manifest.json']);
    assert.ok(names.indexOf('database.sql') > names.findLastIndex((n) => n.startsWith('wp-content')), 'wp-content comes first');
    execFileSync('tar', ['-d', '-f', '-', '-C', site.dir, 'wp-content'], { input: raw, maxBuffer: 1 << 30 });
  });

  it('reads what the owner may read through a supplementary group, as the owner would', async () => {
    const shared = join(site.dir, 'wp-content', 'uploads', 'group-readable.txt');
    writeFileSync(shared, 'readable by the group wpb-test-share\n');
    chownSync(shared, 0, ownerSupplementaryGroup());
    chmodSync(shared, 0o640);
    try {
      const run = await runCli(args('group', false));
      assert.ok(run.code === 0 || run.code === 3, run.stderr); // 3: the fixture's unreadable file
      assert.doesNotMatch(run.stdout + run.stderr, /group-readable/);
      const raw = execFileSync('zstd', ['-q', '-d', '-c', join(work, 'group', resultOf(run).key as string)], { maxBuffer: 1 << 30 });
      const content = execFileSync('tar', ['-xOf', '-', 'wp-content/uploads/group-readable.txt'], { input: raw, encoding: 'utf8', maxBuffer: 1 << 30 });
      assert.equal(content, 'readable by the group wpb-test-share\n');
    } finally {
      rmSync(shared, { force: true });
    }
  });

  it('stops within 2 s on SIGINT while the reader streams, leaving nothing behind', async () => {
    let signalledAt = 0;
    let exitedAt = 0;
    let children: number[] = [];
    const run = await runCli(args('stop'), {
      onEvent: (e, child) => {
        if (signalledAt || !reading(e)) return;
        children = descendants(child.pid as number).map((d) => d.pid);
        signalledAt = performance.now();
        child.once('exit', () => (exitedAt = performance.now()));
        child.kill('SIGINT');
      },
    });
    assert.ok(signalledAt, 'the run reached backup_files');
    assert.equal(run.code, 130, run.stderr);
    assert.ok(exitedAt - signalledAt < 2000, `stopping took ${Math.round(exitedAt - signalledAt)} ms`);
    assert.deepEqual(children.filter(alive), []);
    assert.deepEqual(runDirs('stop'), []);
    const stored = existsSync(join(work, 'stop')) ? readdirSync(join(work, 'stop'), { recursive: true, withFileTypes: true }).filter((d) => !d.isDirectory()) : [];
    assert.deepEqual(stored.map((d) => d.name), [], 'nothing stored');
  });
});
