import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupState } from '../../src/server/db/sites.ts';
import { ProgressCache } from '../../src/server/progress-cache.ts';

// The progress cache's memory bound and overlay rules, on its own (the API test,
// test/server/api/progress-cache.test.ts, covers it through the server on both databases).

const LEASE = 60_000;
const p = (progress: number, stage = 'backup_files') => ({ progress, stage, stageDetail: `${progress} %` });
const job = (id: string, leaseUntil: number) => ({ id, siteId: `site-${id}`, state: 'running', leaseUntil });
const row = (jobId: string, status: BackupState['status'] = 'running'): BackupState => ({
  status, progress: 1, stage: 'backup_files', stageDetail: 'from the database', error: null, startedAt: 0, finishedAt: null, currentJobId: jobId, lastBackupId: null,
});

describe('progress cache', () => {
  it('keeps at most maxEntries jobs; beyond them every report is written, and silent jobs make room after a lease', () => {
    let now = 1_000_000;
    const cache = new ProgressCache({ leaseMs: LEASE, now: () => now, maxEntries: 2 });
    assert.equal(cache.report(job('a', now + LEASE), p(1)), true);
    assert.equal(cache.report(job('b', now + LEASE), p(1)), true);
    assert.equal(cache.report(job('c', now + LEASE), p(1)), true);
    assert.equal(cache.report(job('c', now + LEASE), p(2)), true, 'an uncached job is written every time');
    assert.equal(cache.size, 2);
    assert.equal(cache.overlay(row('c')).progress, 1, 'and shows what the database holds');
    now += LEASE + 1;
    cache.report(job('b', now + LEASE), p(3));
    assert.equal(cache.report(job('c', now + LEASE), p(4)), true);
    assert.equal(cache.size, 2, 'a, silent for a lease, made room for c');
    assert.equal(cache.overlay(row('c')).progress, 4);
    assert.equal(cache.overlay(row('a')).progress, 1);
  });

  it('overlays only the current job of a site that is not idle, and a completed run stays at 100', () => {
    const now = 1_000_000;
    const cache = new ProgressCache({ leaseMs: LEASE, now: () => now });
    cache.report(job('a', now + LEASE), p(40));
    assert.equal(cache.overlay(row('a')).progress, 40);
    assert.equal(cache.overlay(row('a')).stageDetail, '40 %');
    assert.equal(cache.overlay(row('other')).progress, 1);
    assert.equal(cache.overlay(row('a', 'idle')).progress, 1);
    assert.equal(cache.overlay({ ...row('a', 'completed'), progress: 100 }).progress, 100);
    assert.equal(cache.overlay(row('a', 'failed')).progress, 40);
    cache.drop('a');
    assert.equal(cache.size, 0);
    assert.equal(cache.overlay(row('a')).progress, 1);
  });

  it('writes when the lease has aged by the interval, on a stage change, and never less often than a quarter lease', () => {
    let now = 1_000_000;
    const cache = new ProgressCache({ leaseMs: 4_000, now: () => now, writeEveryMs: 10_000 });
    assert.equal(cache.writeEveryMs, 1_000);
    const first = p(1);
    assert.equal(cache.report(job('a', now + 4_000), first), true);
    cache.written('a', first);
    assert.equal(cache.report(job('a', now + 4_000), p(2)), false);
    assert.equal(cache.report(job('a', now + 4_000), p(3, 'create_bundle')), true, 'a new stage');
    now += 1_000;
    assert.equal(cache.report(job('a', now + 3_000), p(4)), true, 'the lease has 3 s of 4 left');
    assert.deepEqual(cache.unwritten('a'), { siteId: 'site-a', progress: p(4) });
  });
});

describe('progress cache, stale entries', () => {
  it('overlays a written report only within the interval, and an unwritten one only within a lease', () => {
    let now = 1_000_000;
    const cache = new ProgressCache({ leaseMs: LEASE, now: () => now });
    const first = p(10);
    cache.report(job('a', now + LEASE), first);
    cache.written('a', first);
    now += cache.writeEveryMs + 1;
    assert.equal(cache.overlay(row('a')).progress, 1, 'written and older than the interval: the database is as new');
    cache.report(job('a', now + LEASE), p(20));
    now += cache.writeEveryMs + 1;
    assert.equal(cache.overlay(row('a')).progress, 20, 'unwritten: still news');
    now += LEASE;
    assert.equal(cache.overlay(row('a')).progress, 1, 'silent for a lease: not shown');
  });
});

describe('progress cache, spread renewals', () => {
  it('gives each job its own interval in (W / 2, W], the same on every server, and writes on it', () => {
    let now = 1_000_000;
    const cache = new ProgressCache({ leaseMs: LEASE, now: () => now });
    const other = new ProgressCache({ leaseMs: LEASE, now: () => now });
    const w = cache.writeEveryMs;
    const intervals = Array.from({ length: 500 }, (_, i) => cache.intervalOf(`job-${i}`));
    for (const [i, ms] of intervals.entries()) {
      assert.ok(ms > w / 2 && ms <= w, `job-${i}: ${ms} ms`);
      assert.equal(other.intervalOf(`job-${i}`), ms, 'another server renews the same job on the same interval');
    }
    // 500 jobs whose first reports came together fall due over the whole half-interval, not at once.
    const tenths = new Set(intervals.map((ms) => Math.floor((10 * (ms - w / 2)) / (w / 2))));
    assert.equal(tenths.size, 10, 'every tenth of the half-interval has jobs');

    const first = p(1);
    assert.equal(cache.report(job('job-7', now + LEASE), first), true);
    cache.written('job-7', first);
    const mine = cache.intervalOf('job-7');
    now += mine - 1;
    assert.equal(cache.report(job('job-7', now - mine + 1 + LEASE), p(2)), false, 'not before its interval');
    now += 1;
    assert.equal(cache.report(job('job-7', now - mine + LEASE), p(3)), true, 'due at its interval');
  });
});
