import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { linkStaysInside, memberPath, TarGuard } from '../../src/engine/tar-guard.ts';
import { rawHeader, tarOf } from '../helpers/hostile-archive.ts';

// TarGuard reads archives GNU tar writes in every format wpbackup or a user might meet
// (ustar, GNU long names, pax), cut into chunks anywhere, and hands tar a clean copy.

async function guard(tar: Buffer, chunk = 65536): Promise<{ out: Buffer; g: TarGuard }> {
  const parts: Buffer[] = [];
  for (let at = 0; at < tar.length; at += chunk) parts.push(tar.subarray(at, at + chunk));
  const g = new TarGuard();
  const out = await buffer(Readable.from(parts).pipe(g));
  return { out, g };
}

function list(tar: Buffer): string[] {
  return execFileSync('tar', ['-tvf', '-', '--numeric-owner'], { input: tar, encoding: 'utf8' }).trim().split('\n');
}

describe('tar guard', () => {
  let dir: string;
  const long = `wp-content/${'deep/'.repeat(25)}ünïcode-${'x'.repeat(120)}.txt`;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tar-guard-'));
    mkdirSync(join(dir, long, '..'), { recursive: true });
    writeFileSync(join(dir, long), 'long\n');
    writeFileSync(join(dir, 'database.sql'), 'SELECT 1;\n');
    writeFileSync(join(dir, 'manifest.json'), '{}');
    writeFileSync(join(dir, 'wp-content', 'suid'), 'x', { mode: 0o4755 });
    symlinkSync('suid', join(dir, 'wp-content', 'link'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const format of ['gnu', 'pax', 'ustar']) {
    it(`passes GNU tar's ${format} archives, cut anywhere, with modes cleaned and owners dropped`, async () => {
      const files = format === 'ustar' ? ['database.sql', 'manifest.json', 'wp-content/suid', 'wp-content/link'] : ['database.sql', 'manifest.json', 'wp-content'];
      const tar = execFileSync('tar', ['-c', `--format=${format}`, '--owner=1234', '--group=1234', '-C', dir, ...files], { maxBuffer: 1 << 26 });
      const whole = await guard(tar);
      for (const size of [1, 7, 511, 513, 4096]) assert.deepEqual((await guard(tar, size)).out, whole.out, `chunks of ${size}`);
      const listed = list(whole.out);
      assert.ok(listed.some((l) => l.startsWith('-rwxr-xr-x 0/0') && l.endsWith('wp-content/suid')), listed.join('\n'));
      assert.ok(listed.some((l) => l.endsWith('wp-content/link -> suid')));
      if (format !== 'ustar') assert.ok(listed.some((l) => l.endsWith(long)), 'the long name came through');
      assert.ok(listed.every((l) => / 0\/0 /.test(l)), 'no owner');
      assert.match(whole.g.report.warnings.join('\n'), /wp-content\/suid had the setuid\/setgid bit/);
      assert.equal(whole.out.length % 10240, 0, 'whole records');
    });
  }

  it('hands on long data as it came, cut anywhere, between members it copies', async () => {
    const big = randomBytes(300_000);
    const tar = tarOf([
      { name: 'wp-content', type: '5' },
      { name: 'wp-content/big.jpg', type: '0', data: big },
      { name: 'wp-content/small.txt', type: '0', data: 'small\n' },
      { name: 'wp-content/big2.jpg', type: '0', data: big.subarray(1, 100_001) },
    ]);
    const whole = await guard(tar, tar.length);
    for (const size of [4096, 32768, 65536, 65537, 100_000]) assert.deepEqual((await guard(tar, size)).out, whole.out, `chunks of ${size}`);
    const into = mkdtempSync(join(tmpdir(), 'tar-guard-x-'));
    try {
      execFileSync('tar', ['-x', '-C', into], { input: whole.out });
      assert.deepEqual(readFileSync(join(into, 'wp-content/big.jpg')), big);
      assert.deepEqual(readFileSync(join(into, 'wp-content/big2.jpg')), big.subarray(1, 100_001));
      assert.equal(readFileSync(join(into, 'wp-content/small.txt'), 'utf8'), 'small\n');
    } finally {
      rmSync(into, { recursive: true, force: true });
    }
  });

  it('refuses a damaged header, a truncated archive and a global pax header', async () => {
    const tar = tarOf([{ name: 'database.sql', type: '0', data: 'x'.repeat(1000) }]);
    const damaged = Buffer.from(tar);
    damaged[10] = 0x41;
    await assert.rejects(guard(damaged), /has a damaged header: it is not a tar archive/);
    await assert.rejects(guard(tar.subarray(0, 700)), /ends in the middle of member database\.sql: it is truncated/);
    const global = Buffer.concat([rawHeader({ name: 'pax_global_header', type: 'g' as '0' }, 0), tar]);
    await assert.rejects(guard(global), /global pax header/);
  });

  it('reads names and links as plain paths', () => {
    assert.equal(memberPath('./wp-content//a/./b'), 'wp-content/a/b');
    assert.equal(memberPath('./'), undefined);
    assert.throws(() => memberPath('/etc/passwd'), /absolute name/);
    assert.throws(() => memberPath('wp-content/a/../../x'), /climbs out/);
    assert.ok(linkStaysInside('wp-content/themes/child/assets', '../parent/assets'));
    assert.ok(linkStaysInside('wp-content/a', '.'));
    assert.ok(!linkStaysInside('wp-content/a', '..'));
    assert.ok(!linkStaysInside('wp-content/uploads/a', '../../wp-config.php'));
    assert.ok(!linkStaysInside('wp-content/a', '/srv/media'));
  });
});
