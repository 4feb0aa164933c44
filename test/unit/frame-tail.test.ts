import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChunkReader, ConcatReader } from '../../src/concat-reader.ts';
import { tailFrames, type TailMember } from '../../src/engine/frame-tail.ts';
import { rawFrame, STORED_BLOCK_MAX } from '../../src/engine/stored-frame.ts';
import { BLOCK } from '../../src/engine/tar-header.ts';

// The archive's tail (frame-tail.ts) is checked with the programs users restore with: zstd -d
// reads the frames as one stream, and GNU tar lists and extracts the members it holds.

const unzstd = (data: Buffer): Buffer => execFileSync('zstd', ['-d', '-q', '-c'], { input: data, maxBuffer: 256 << 20 });

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  // A chunk is only valid until the next is asked for (frame-tail.ts).
  for await (const c of chunks) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

describe('the archive tail: members as frames of their own', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'wpb-tail-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('raw frames decode to exactly their data, empty or over many blocks', () => {
    for (const n of [0, 1, BLOCK, STORED_BLOCK_MAX, STORED_BLOCK_MAX + 1, 3 * STORED_BLOCK_MAX]) {
      const data = randomBytes(n);
      assert.deepEqual(unzstd(rawFrame(data)), data, `${n} bytes`);
    }
  });

  it('a compressed file goes in as it is, between its header and padding; tar reads every member back', async () => {
    // Sizes that need padding and one that does not, so every padding path is taken.
    const dump = Buffer.from('INSERT INTO wp_posts VALUES (1);\n'.repeat(40_001));
    writeFileSync(join(dir, 'dump.zst'), execFileSync('zstd', ['-q', '-c', '-T1'], { input: dump }));
    const manifest = Buffer.from('{"format":1}\n');
    const members: TailMember[] = [
      { kind: 'compressed', name: 'database.sql', path: join(dir, 'dump.zst'), size: dump.length, mode: 0o600 },
      { kind: 'generated', name: 'manifest.json', data: manifest },
      { kind: 'generated', name: 'block.bin', data: Buffer.alloc(BLOCK, 7) },
    ];
    const seen: string[] = [];
    const tail = await collect(tailFrames(members, (m) => seen.push(m.name)));
    // A zstd frame from the program first, as the bundle has, then the tail.
    const head = execFileSync('zstd', ['-q', '-c'], { input: Buffer.alloc(0) });
    writeFileSync(join(dir, 'archive.tar.zst'), Buffer.concat([head, tail]));
    const tar = unzstd(Buffer.concat([head, tail]));
    assert.equal(tar.length % BLOCK, 0);
    const listing = execFileSync('tar', ['-tvf', '-'], { input: tar, encoding: 'utf8' });
    assert.match(listing, /^-rw------- .* 1320033 .* database\.sql$/m);
    assert.match(listing, /^-rw-r--r-- .* manifest\.json$/m);
    assert.deepEqual(execFileSync('tar', ['-xOf', '-', 'database.sql'], { input: tar, maxBuffer: 8 << 20 }), dump);
    assert.deepEqual(execFileSync('tar', ['-xOf', '-', 'manifest.json'], { input: tar }), manifest);
    assert.deepEqual(execFileSync('tar', ['-xOf', '-', 'block.bin'], { input: tar }), Buffer.alloc(BLOCK, 7));
    assert.deepEqual(seen, ['database.sql', 'manifest.json', 'block.bin']);
  });

  it('reads through a ConcatReader into buffers of any size, the file in several chunks of one reused buffer', async () => {
    const data = randomBytes(3 << 20);
    writeFileSync(join(dir, 'data.zst'), execFileSync('zstd', ['-q', '-c'], { input: data, maxBuffer: 8 << 20 }));
    const tailOf = (): ChunkReader => new ChunkReader(tailFrames([{ kind: 'compressed', name: 'x', path: join(dir, 'data.zst'), size: data.length, mode: 0o600 }]));
    const whole = await collect(tailFrames([{ kind: 'compressed', name: 'x', path: join(dir, 'data.zst'), size: data.length, mode: 0o600 }]));
    const reader = new ConcatReader([tailOf()]);
    const got: Buffer[] = [];
    for (const buf = Buffer.alloc(777); ; ) {
      const n = await reader.readInto(buf, 0, buf.length);
      if (n === 0) break;
      got.push(Buffer.from(buf.subarray(0, n)));
    }
    // Same bytes but for the headers' times, which say when each was made.
    assert.equal(Buffer.concat(got).length, whole.length);
    assert.deepEqual(execFileSync('tar', ['-xOf', '-', 'x'], { input: unzstd(Buffer.concat(got)), maxBuffer: 8 << 20 }), data);
  });
});
