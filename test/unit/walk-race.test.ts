import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { TarStats } from '../../src/engine/tar-stream.ts';
import { isCompressedMedia } from '../../src/engine/media.ts';
import { STORE_MIN } from '../../src/engine/tree-tar.ts';
import { walkTestHook } from '../../src/engine/tree-walk.ts';
import { tarTreeHere } from '../helpers/tree-tar.ts';

// The site's owner swaps files and directories for links while the backup walks: between the
// listing and the open, and a parent directory after it was listed. Nothing outside the
// tree may be read, and each swap is reported.

describe('a tree changed under the walk', () => {
  let base: string;
  let root: string;
  let outside: string;
  const marker = `OUTSIDE-${randomBytes(12).toString('hex')}`;

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'wpb-race-'));
    outside = join(base, 'outside');
    mkdirSync(outside);
    // Named like the tree's own files, so a swapped parent would find them.
    writeFileSync(join(outside, 'secret.key'), `${marker} key\n`, { mode: 0o600 });
    writeFileSync(join(outside, 'inner.txt'), `${marker} inner\n`, { mode: 0o600 });
  });
  after(() => rmSync(base, { recursive: true, force: true }));
  afterEach(() => {
    walkTestHook.afterSeen = undefined;
    rmSync(root, { recursive: true, force: true });
  });

  function makeTree(): void {
    root = join(base, 'wp-content');
    mkdirSync(join(root, 'dir'), { recursive: true });
    mkdirSync(join(root, 'parent'));
    writeFileSync(join(root, 'a.txt'), 'innocent a\n');
    writeFileSync(join(root, 'fifo.txt'), 'innocent fifo\n');
    writeFileSync(join(root, 'dir', 'inner.txt'), 'innocent dir\n');
    writeFileSync(join(root, 'parent', 'inner.txt'), 'innocent parent\n');
  }

  function tar(): { raw: Buffer; stats: TarStats; listing: string } {
    const { main: raw, stats } = tarTreeHere(root);
    return { raw, stats, listing: execFileSync('tar', ['-tvf', '-'], { input: raw, encoding: 'utf8' }) };
  }

  it('reads nothing through a file or directory swapped for a link, or a parent swapped after its listing', async () => {
    makeTree();
    const swaps: Record<string, () => void> = {
      // A file becomes a link to a secret after the walk saw it.
      'a.txt': () => (unlinkSync(join(root, 'a.txt')), symlinkSync(join(outside, 'secret.key'), join(root, 'a.txt'))),
      // A file becomes a FIFO: the open must not hang.
      'fifo.txt': () => (unlinkSync(join(root, 'fifo.txt')), execFileSync('mkfifo', [join(root, 'fifo.txt')])),
      // A directory becomes a link to a directory outside, before it is opened.
      dir: () => (renameSync(join(root, 'dir'), join(base, 'dir.moved')), symlinkSync(outside, join(root, 'dir'))),
      // A directory, already listed, becomes a link before its child is opened.
      'parent/inner.txt': () => (renameSync(join(root, 'parent'), join(base, 'parent.moved')), symlinkSync(outside, join(root, 'parent'))),
    };
    // Swapped in the second pass, the one that writes the entries (the first only sizes them).
    const seen = new Set<string>();
    const done = new Set<string>();
    walkTestHook.afterSeen = (rel) => {
      if (!seen.has(rel)) return void seen.add(rel);
      if (done.has(rel) || !swaps[rel]) return;
      done.add(rel);
      swaps[rel]();
    };
    const { raw, stats, listing } = tar();
    assert.deepEqual([...done].sort(), Object.keys(swaps).sort(), 'every swap happened');
    assert.ok(!raw.includes(marker), 'nothing from outside the tree is in the archive');
    assert.deepEqual(
      stats.changed.map((c) => `${c.rel}: ${c.reason}`).sort(),
      [
        'wp-content/a.txt: replaced by a symlink while the backup read it; left out',
        'wp-content/dir: replaced by a symlink while the backup read it; left out',
        'wp-content/fifo.txt: replaced by a FIFO while the backup read it; left out',
      ],
    );
    // The child of the swapped parent is read from the directory the walk had listed.
    assert.ok(raw.includes('innocent parent\n'));
    assert.match(listing, / wp-content\/parent\/inner\.txt$/m);
    assert.doesNotMatch(listing, / wp-content\/(a|fifo)\.txt$/m);
    rmSync(join(base, 'dir.moved'), { recursive: true });
    rmSync(join(base, 'parent.moved'), { recursive: true });
  });

  it('stores a wp-content that is itself a link as a link, and says so', async () => {
    root = join(base, 'wp-content');
    symlinkSync(outside, root);
    const { raw, stats, listing } = tar();
    assert.ok(!raw.includes(marker));
    assert.match(listing, new RegExp(`^l.* wp-content -> ${outside}$`, 'm'));
    assert.deepEqual(stats.skipped, [{ rel: 'wp-content', reason: `wp-content is a link to ${outside}: stored as a link, not followed` }]);
  });

  it('keeps every medium file whose size crosses the stored threshold between the passes, and a stored one changed since', () => {
    root = join(base, 'wp-content');
    const media = join(root, 'media');
    mkdirSync(media, { recursive: true });
    writeFileSync(join(media, 'grows.jpg'), randomBytes(1000));
    writeFileSync(join(media, 'changes.jpg'), randomBytes(STORE_MIN + 5));
    writeFileSync(join(media, 'shrinks.jpg'), randomBytes(STORE_MIN + 7));
    const later = { 'grows.jpg': randomBytes(STORE_MIN + 10), 'changes.jpg': randomBytes(STORE_MIN + 5), 'shrinks.jpg': randomBytes(100) };
    let passes = 0;
    walkTestHook.afterSeen = (rel) => {
      // Changed after the first pass chose, before the second one lists the directory.
      if (rel !== 'media' || ++passes !== 2) return;
      for (const [name, content] of Object.entries(later)) writeFileSync(join(media, name), content);
    };
    const { main, stored } = tarTreeHere(root, { store: isCompressedMedia });
    assert.equal(passes, 2);
    const dir = join(base, 'x');
    mkdirSync(dir);
    try {
      // The last copy of each is the one extraction leaves: the content after the change.
      execFileSync('tar', ['-xf', '-', '-C', dir], { input: Buffer.concat([stored, main]) });
      for (const [name, content] of Object.entries(later)) assert.deepEqual(readFileSync(join(dir, 'wp-content/media', name)), content, name);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
