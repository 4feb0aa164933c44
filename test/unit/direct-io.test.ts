import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DIRECT_ALIGN, alignUp, alignedBuffer, isAlignedBuffer } from '../../src/storage/direct-io.ts';

// The local destination's direct writes themselves are tested in test/storage/local.test.ts.

describe('direct I/O buffers', () => {
  it('are page-aligned, and known as such', () => {
    const b = alignedBuffer(3 * DIRECT_ALIGN + 1);
    assert.equal(b.length, 3 * DIRECT_ALIGN + 1);
    assert.ok(isAlignedBuffer(b));
    assert.ok(isAlignedBuffer(b.subarray(DIRECT_ALIGN)));
    assert.ok(!isAlignedBuffer(b.subarray(1)));
    assert.ok(!isAlignedBuffer(Buffer.allocUnsafe(8192)));
    assert.equal(alignUp(1), DIRECT_ALIGN);
    assert.equal(alignUp(DIRECT_ALIGN), DIRECT_ALIGN);
    assert.equal(alignUp(0), 0);
  });
});
