import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReleaseStack } from '../../src/server/release-stack.ts';

describe('ReleaseStack', () => {
  it('releases newest first, runs every release when one fails, throws the first failure, and releases once', async () => {
    const stack = new ReleaseStack();
    const order: string[] = [];
    stack.defer(() => order.push('db'));
    stack.defer(() => {
      order.push('notifier');
      throw new Error('notifier failed');
    });
    stack.defer(async () => {
      order.push('storage');
      throw new Error('storage failed');
    });
    await assert.rejects(stack.releaseAll(), /storage failed/);
    assert.deepEqual(order, ['storage', 'notifier', 'db']);
    await stack.releaseAll();
    assert.deepEqual(order, ['storage', 'notifier', 'db'], 'nothing is released twice');
  });
});
