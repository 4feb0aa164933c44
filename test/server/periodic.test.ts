import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { turnTaker } from '../../src/server/periodic.ts';

// A pass's turns by time (periodic.ts turnTaker), on a clock the test moves: whether a turn
// let waiting work run shows in a setImmediate queued before it (requests wait there too).

/** Calls take() and says whether work queued before it ran meanwhile. */
async function yielded(take: () => Promise<void>): Promise<boolean> {
  let ran = false;
  setImmediate(() => (ran = true));
  await take();
  return ran;
}

describe('turnTaker', () => {
  it('keeps the loop within the budget, then yields once and starts a new budget', async () => {
    let now = 1000;
    const take = turnTaker(4, () => now);
    assert.equal(await yielded(take), false, 'no time held yet: no yield');
    now += 3.9;
    assert.equal(await yielded(take), false, 'under the budget');
    now += 0.2;
    assert.equal(await yielded(take), true, 'over the budget: requests get their turn');
    now += 1;
    assert.equal(await yielded(take), false, 'the budget counts from the yield');
    now += 10;
    assert.equal(await yielded(take), true);
  });
});
