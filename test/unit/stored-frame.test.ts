import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ConcatReader } from '../../src/concat-reader.ts';
import { openFifo } from '../../src/fd-readable.ts';
import { startReader } from '../../src/engine/reader-process.ts';
import { STORED_BLOCK_MAX, StoredFrameSink } from '../../src/engine/stored-frame.ts';
import { writeTar } from '../../src/engine/tar-stream.ts';
import { STORE_MIN } from '../../src/engine/tree-tar.ts';

// Stored frames are checked by the decoder users restore with: the zstd program.

function unzstd(data: Buffer): Buffer {
  return execFileSync('zstd', ['-d', '-q', '-c'], { input: data, maxBuffer: 64 << 20 });
}

/** What a StoredFrameSink makes of `chunks`, put one after the other. */
function frameOf(dir: string, chunks: Buffer[]): Buffer {
  const file = join(dir, `frame-${randomBytes(4).toString('hex')}`);
  const fd = openSync(file, 'w');
  try {
    const sink = new StoredFrameSink(fd);
    for (const c of chunks) sink.put(c);
    sink.end();
  } finally {
    closeSync(fd);
  }
  return readFileSync(file);
}

describe('stored zstd frames', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'wpb-frames-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('decodes with zstd -d to exactly what was written, in blocks of at most 128 KiB', () => {
    const chunks = [0, 1, 511, STORED_BLOCK_MAX, STORED_BLOCK_MAX + 1, 3 * 1024 * 1024 + 5, 0, 7].map((n) => randomBytes(n));
    const input = Buffer.concat(chunks);
    const frame = frameOf(dir, chunks);
    assert.deepEqual(unzstd(frame), input);
    // Frame header, then a 3-byte header per full or partial block, then the last (empty) block.
    const blocks = Math.ceil(input.length / STORED_BLOCK_MAX);
    assert.equal(frame.length, 6 + input.length + 3 * blocks + 3);
  });

  it('gives no bytes at all when nothing was written', () => {
    assert.equal(frameOf(dir, []).length, 0);
    assert.equal(frameOf(dir, [Buffer.alloc(0)]).length, 0);
  });

  it('concatenates with a frame from the zstd program into one stream, as readInto and as a Readable', async () => {
    const stored = randomBytes(300_000);
    const text = Buffer.from('INSERT INTO t VALUES (1);\n'.repeat(20_000));
    writeFileSync(join(dir, 'stored.zst'), frameOf(dir, [stored]));
    writeFileSync(join(dir, 'text.zst'), execFileSync('zstd', ['-q', '-c'], { input: text }));
    for (const mode of ['readInto', 'readable'] as const) {
      // As in a backup: both frames arrive through FIFOs from other processes.
      const fifos = await Promise.all(['stored', 'text'].map((n) => openFifo(join(dir, `${n}-${mode}.fifo`))));
      fifos.forEach((f, i) => {
        spawn('cat', [join(dir, i === 0 ? 'stored.zst' : 'text.zst')], { stdio: ['ignore', f.writeFd, 'inherit'] });
        f.closeWriter();
      });
      const body = new ConcatReader(fifos.map((f) => f.reader));
      const chunks: Buffer[] = [];
      if (mode === 'readable') chunks.push(...((await body.toArray()) as Buffer[]));
      else {
        for (let n = -1; n !== 0; ) {
          const buf = Buffer.alloc(64 * 1024);
          n = await body.readInto(buf, 0, buf.length);
          chunks.push(buf.subarray(0, n));
        }
      }
      assert.deepEqual(unzstd(Buffer.concat(chunks)), Buffer.concat([stored, text]), mode);
    }
  });
});

describe('tar with a stored pass', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'wpb-stored-tar-'));
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'uploads', '2024'), { recursive: true });
    mkdirSync(join(tree, 'cache'));
    // Sizes that are no multiple of a block or of the sinks' buffers.
    writeFileSync(join(tree, 'uploads', '2024', 'photo.jpg'), randomBytes(1.5 * 1024 * 1024 + 777));
    writeFileSync(join(tree, 'debug.log'), randomBytes(2 * 1024 * 1024 + 13));
    writeFileSync(join(tree, 'uploads', '2024', 'thumb-150x150.PNG'), randomBytes(9000));
    writeFileSync(join(tree, 'uploads', '2024', 'medium-768x512.webp'), randomBytes(STORE_MIN));
    writeFileSync(join(tree, 'cache', 'skip.jpg'), randomBytes(100));
    writeFileSync(join(tree, 'style.css'), 'body { color: red; }\n'.repeat(500));
    writeFileSync(join(dir, 'db.sql'), 'CREATE TABLE t (id int);\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('puts matching files first, in their own frame, and GNU tar finds the whole tree with no differences', async () => {
    const compressed: Buffer[] = [];
    const main = new Writable({ write: (c: Buffer, _e, cb) => (compressed.push(Buffer.from(c)), cb()) });
    const tree = join(dir, 'tree');
    const storedFd = openSync(join(dir, 'stored.zst'), 'w');
    const reader = startReader({ sitePath: dir, wpContent: tree, patterns: ['/cache/'], storeMedia: true, configFiles: [] }, { signal: new AbortController().signal, storedFd });
    closeSync(storedFd);
    const stats = await writeTar([reader.tree, { kind: 'file', name: 'database.sql', path: join(dir, 'db.sql') }], main);
    await reader.done;
    const archive = Buffer.concat([readFileSync(join(dir, 'stored.zst')), execFileSync('zstd', ['-q', '-c'], { input: Buffer.concat(compressed), maxBuffer: 64 << 20 })]);
    writeFileSync(join(dir, 'out.tar.zst'), archive);
    const names = execFileSync('tar', ['-tf', join(dir, 'out.tar.zst')], { encoding: 'utf8' }).trim().split('\n');
    // Media of STORE_MIN bytes or more is stored; a small thumbnail goes to zstd with the rest.
    assert.deepEqual(names.slice(0, 2).sort(), ['wp-content/uploads/2024/medium-768x512.webp', 'wp-content/uploads/2024/photo.jpg']);
    assert.deepEqual(names.slice(2), ['wp-content/', 'wp-content/debug.log', 'wp-content/style.css', 'wp-content/uploads/', 'wp-content/uploads/2024/', 'wp-content/uploads/2024/thumb-150x150.PNG', 'database.sql']);
    assert.deepEqual({ files: stats.files, stored: stats.storedFiles, storedBytes: stats.storedBytes, excluded: stats.excluded }, { files: 5, stored: 2, storedBytes: 1.5 * 1024 * 1024 + 777 + STORE_MIN, excluded: 1 });
    // --compare reads the archive against the tree it came from: contents, modes and times.
    execFileSync('tar', ['--compare', '-f', join(dir, 'out.tar.zst'), '-C', dir, '--transform', 's,^wp-content,tree,', 'wp-content'], { stdio: 'pipe' });
    const out = join(dir, 'x');
    mkdirSync(out);
    execFileSync('tar', ['-xf', join(dir, 'out.tar.zst'), '-C', out]);
    assert.deepEqual(readFileSync(join(out, 'wp-content/uploads/2024/photo.jpg')), readFileSync(join(tree, 'uploads/2024/photo.jpg')));
    assert.deepEqual(readFileSync(join(out, 'wp-content/debug.log')), readFileSync(join(tree, 'debug.log')));
  });
});
