import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, lstatSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startReader } from '../../src/engine/reader-process.ts';
import { writeTar, type TarStats } from '../../src/engine/tar-stream.ts';

// The tar writer, with wp-content read by the reader process as a backup does, is checked by
// the tool users restore with: GNU tar.

describe('tar stream', () => {
  let dir: string;
  let tree: string;
  const long = 'd'.repeat(60) + '/' + 'e'.repeat(70) + '/file-with-a-long-name.txt';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'wpb-tar-'));
    tree = join(dir, 'tree');
    mkdirSync(join(tree, 'uploads', '2024'), { recursive: true });
    mkdirSync(join(tree, 'empty'));
    mkdirSync(join(tree, 'cache'));
    writeFileSync(join(tree, 'cache', 'x.html'), 'cached');
    writeFileSync(join(tree, 'uploads', '2024', 'café-日本.bin'), Buffer.from([0, 1, 2, 255]));
    writeFileSync(join(tree, 'script.sh'), '#!/bin/sh\n', { mode: 0o750 });
    // Several pooled buffers' worth, ending mid-buffer.
    writeFileSync(join(tree, 'uploads', 'big.bin'), randomBytes(5 * 1024 * 1024 + 777));
    mkdirSync(join(tree, long, '..'), { recursive: true });
    writeFileSync(join(tree, long), 'deep');
    symlinkSync('uploads/2024/café-日本.bin', join(tree, 'link'));
    writeFileSync(join(dir, 'db.sql'), 'CREATE TABLE t (id int);\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function build(): Promise<{ file: string; stats: TarStats }> {
    const file = join(dir, 'out.tar');
    const job = { sitePath: dir, wpContent: tree, patterns: ['/cache/'], storeMedia: false, configFiles: [] };
    const reader = startReader(job, { signal: new AbortController().signal });
    const stats = await writeTar([
      { kind: 'file', name: 'database.sql', path: join(dir, 'db.sql') },
      reader.tree,
      { kind: 'generated', name: 'manifest.json', data: (s) => Buffer.from(JSON.stringify({ files: s.files })) },
    ], createWriteStream(file));
    await reader.done;
    return { file, stats };
  }

  it('is read by GNU tar with every name, link, mode and byte intact', async () => {
    const { file, stats } = await build();
    const out = join(dir, 'x');
    mkdirSync(out);
    execFileSync('tar', ['-xf', file, '-C', out]);
    assert.equal(readFileSync(join(out, 'database.sql'), 'utf8'), 'CREATE TABLE t (id int);\n');
    assert.deepEqual([...readFileSync(join(out, 'wp-content/uploads/2024/café-日本.bin'))], [0, 1, 2, 255]);
    assert.equal(readFileSync(join(out, 'wp-content', long), 'utf8'), 'deep');
    assert.equal(readlinkSync(join(out, 'wp-content/link')), 'uploads/2024/café-日本.bin');
    assert.ok(lstatSync(join(out, 'wp-content/empty')).isDirectory());
    assert.equal(statSync(join(out, 'wp-content/script.sh')).mode & 0o777, 0o750);
    assert.throws(() => statSync(join(out, 'wp-content/cache')), /ENOENT/);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')), { files: 4 });
    assert.equal(stats.files, 4);
    assert.equal(stats.symlinks, 1);
    assert.equal(stats.excluded, 1);
  });

  it('passes GNU tar --compare with no differences', async () => {
    const { file } = await build();
    const r = spawnSync('tar', ['--compare', '-f', file, '-C', join(dir, 'tree'), '--transform=s,^wp-content/\\?,,', '--exclude=database.sql', '--exclude=manifest.json', '--exclude=wp-content'], { encoding: 'utf8' });
    assert.equal(r.stdout + r.stderr, '');
    assert.equal(r.status, 0);
  });
});
