import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ConcatReader } from '../../src/concat-reader.ts';
import { openFifo } from '../../src/fd-readable.ts';
import { ExcludeMatcher } from '../../src/engine/excludes.ts';
import { isCompressedMedia } from '../../src/engine/media.ts';
import { STORED_BLOCK_MAX, StoredFrameLane } from '../../src/engine/stored-frame.ts';
import { writeTar } from '../../src/engine/tar-stream.ts';

// Stored frames are checked by the decoder users restore with: the zstd program.

function unzstd(data: Buffer): Buffer {
  return execFileSync('zstd', ['-d', '-q', '-c'], { input: data, maxBuffer: 64 << 20 });
}

function write(w: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => w.write(chunk, (err) => (err ? reject(err) : resolve())));
}

/** Everything the reader gives, asking `step` bytes at a time. */
async function drain(r: { readInto(b: Buffer, o: number, l: number): Promise<number> }, step: number): Promise<Buffer> {
  const out: Buffer[] = [];
  for (;;) {
    const buf = Buffer.alloc(step);
    const n = await r.readInto(buf, 0, step);
    if (n === 0) return Buffer.concat(out);
    out.push(buf.subarray(0, n));
  }
}

describe('stored zstd frames', () => {
  const sizes = [0, 1, 511, STORED_BLOCK_MAX, STORED_BLOCK_MAX + 1, 3 * 1024 * 1024 + 5, 0, 7];

  for (const step of [1000, STORED_BLOCK_MAX + 3, 5 << 20]) {
    it(`decodes with zstd -d to exactly what was written (reads of ${step} bytes)`, async () => {
      const lane = new StoredFrameLane();
      const chunks = sizes.map((n) => randomBytes(n));
      const reading = drain(lane, step);
      for (const c of chunks) await write(lane.writable, c);
      lane.writable.end();
      const framed = await reading;
      assert.deepEqual(unzstd(framed), Buffer.concat(chunks));
      // Header, one block header per started 128 KiB of each chunk, and the closing block.
      const blocks = chunks.reduce((n, c) => n + Math.ceil(c.length / STORED_BLOCK_MAX), 0);
      assert.equal(framed.length, 6 + blocks * 3 + Buffer.concat(chunks).length + 3);
    });
  }

  it('hands a chunk back only after its bytes were copied out, so the writer may reuse it', async () => {
    const lane = new StoredFrameLane();
    const reading = drain(lane, 300);
    const buf = Buffer.alloc(4096);
    const expected: Buffer[] = [];
    for (let i = 0; i < 5; i++) {
      buf.fill(i + 1);
      expected.push(Buffer.from(buf));
      await write(lane.writable, buf);
    }
    lane.writable.end();
    assert.deepEqual(unzstd(await reading), Buffer.concat(expected));
  });

  it('gives no bytes at all when nothing was written', async () => {
    const lane = new StoredFrameLane();
    lane.writable.end();
    assert.equal((await drain(lane, 1024)).length, 0);
  });

  it('fails the reader, instead of closing the frame, when the writer is destroyed before it ends', async () => {
    const lane = new StoredFrameLane();
    const reading = drain(lane, 1024);
    lane.writable.on('error', () => {});
    await write(lane.writable, randomBytes(10_000));
    lane.writable.destroy(new Error('tar failed'));
    await assert.rejects(reading, /tar failed/);
  });

  it('concatenates with a frame from the zstd program into one stream, as readInto and as a Readable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wpb-frames-'));
    try {
      const stored = randomBytes(300_000);
      const text = Buffer.from('INSERT INTO t VALUES (1);\n'.repeat(20_000));
      writeFileSync(join(dir, 'text.zst'), execFileSync('zstd', ['-q', '-c'], { input: text }));
      for (const mode of ['readInto', 'readable'] as const) {
        const lane = new StoredFrameLane();
        // As in a backup: the zstd frame arrives through a FIFO from another process.
        const fifo = await openFifo(join(dir, `out-${mode}.fifo`));
        spawn('cat', [join(dir, 'text.zst')], { stdio: ['ignore', fifo.writeFd, 'inherit'] });
        fifo.closeWriter();
        const body = new ConcatReader([lane, fifo.reader]);
        const reading = mode === 'readInto' ? drain(body, 64 * 1024) : body.toArray().then((c: Buffer[]) => Buffer.concat(c));
        await write(lane.writable, stored);
        lane.writable.end();
        assert.deepEqual(unzstd(await reading), Buffer.concat([stored, text]), mode);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
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
    writeFileSync(join(tree, 'uploads', '2024', 'photo.jpg'), randomBytes(1.5 * 1024 * 1024));
    writeFileSync(join(tree, 'uploads', '2024', 'thumb-150x150.PNG'), randomBytes(9000));
    writeFileSync(join(tree, 'cache', 'skip.jpg'), randomBytes(100));
    writeFileSync(join(tree, 'style.css'), 'body { color: red; }\n'.repeat(500));
    writeFileSync(join(dir, 'db.sql'), 'CREATE TABLE t (id int);\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('puts matching files first, in their own frame, and GNU tar finds the whole tree with no differences', async () => {
    const lane = new StoredFrameLane();
    const compressed: Buffer[] = [];
    const main = new Writable({ write: (c: Buffer, _e, cb) => (compressed.push(Buffer.from(c)), cb()) });
    const storedOut = drain(lane, 1 << 20);
    const tree = join(dir, 'tree');
    const stats = await writeTar([
      { kind: 'tree', name: 'wp-content', root: tree, matcher: new ExcludeMatcher(['/cache/']) },
      { kind: 'file', name: 'database.sql', path: join(dir, 'db.sql') },
    ], main, { stored: { out: lane.writable, match: isCompressedMedia } });
    const archive = Buffer.concat([await storedOut, execFileSync('zstd', ['-q', '-c'], { input: Buffer.concat(compressed) })]);
    writeFileSync(join(dir, 'out.tar.zst'), archive);
    const names = execFileSync('tar', ['-tf', join(dir, 'out.tar.zst')], { encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(names.slice(0, 2).sort(), ['wp-content/uploads/2024/photo.jpg', 'wp-content/uploads/2024/thumb-150x150.PNG']);
    assert.deepEqual(names.slice(2), ['wp-content/', 'wp-content/style.css', 'wp-content/uploads/', 'wp-content/uploads/2024/', 'database.sql']);
    assert.deepEqual({ files: stats.files, stored: stats.storedFiles, storedBytes: stats.storedBytes, excluded: stats.excluded }, { files: 3, stored: 2, storedBytes: 1.5 * 1024 * 1024 + 9000, excluded: 1 });
    // --compare reads the archive against the tree it came from: contents, modes and times.
    execFileSync('tar', ['--compare', '-f', join(dir, 'out.tar.zst'), '-C', dir, '--transform', 's,^wp-content,tree,', 'wp-content'], { stdio: 'pipe' });
    const out = join(dir, 'x');
    mkdirSync(out);
    execFileSync('tar', ['-xf', join(dir, 'out.tar.zst'), '-C', out]);
    assert.deepEqual(readFileSync(join(out, 'wp-content/uploads/2024/photo.jpg')), readFileSync(join(tree, 'uploads/2024/photo.jpg')));
  });
});
