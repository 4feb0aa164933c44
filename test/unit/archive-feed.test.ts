import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFeed } from '../../src/engine/archive-feed.ts';
import { fifoPair } from '../../src/fd-readable.ts';

// The thread that reads a local archive, hashes it and writes it into zstd's FIFO: the hash is
// of exactly the bytes the reader got, and a reader that goes away ends it (no hang).

describe('archive feed', () => {
  let dir: string;
  let file: string;
  const data = randomBytes(5 << 20);
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'archive-feed-'));
    file = join(dir, 'archive.bin');
    writeFileSync(file, data);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("hands the reader the file's bytes in order and hashes exactly those", async () => {
    const fifo = await fifoPair();
    const copy = join(dir, 'copy.bin');
    const out = await open(copy, 'w');
    const cat = spawn('cat', [], { stdio: [fifo.readFd, out.fd, 'inherit'] });
    closeSync(fifo.readFd);
    const src = await open(file, 'r');
    const seen: number[] = [];
    try {
      const r = await startFeed(src.fd, fifo.writeFd, (n) => seen.push(n)).done;
      await new Promise((resolve) => cat.once('close', resolve));
      assert.equal(r.bytes, data.length);
      assert.equal(r.sha256, createHash('sha256').update(data).digest('hex'));
      assert.deepEqual(readFileSync(copy), data);
      assert.equal(seen.at(-1), data.length, 'the last progress report is the whole size');
    } finally {
      await src.close();
      await out.close();
    }
  });

  it('stops with EPIPE when the reader goes away', async () => {
    const fifo = await fifoPair();
    const head = spawn('head', ['-c', '1000'], { stdio: [fifo.readFd, 'ignore', 'inherit'] });
    closeSync(fifo.readFd);
    const src = await open(file, 'r');
    try {
      await assert.rejects(startFeed(src.fd, fifo.writeFd).done, (err: NodeJS.ErrnoException) => err.code === 'EPIPE');
      await new Promise((resolve) => (head.exitCode === null ? head.once('close', resolve) : resolve(null)));
    } finally {
      await src.close();
    }
  });
});
