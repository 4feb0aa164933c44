import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyPolicy, isoWeek, type Policy } from '../../src/server/retention/policy.ts';

// The retention rules as a table: backups named by their UTC time, a policy, and the names
// kept (newest first) with the rules that keep each. Everything not listed is removed.

const at = (iso: string): number => Date.parse(iso.length === 16 ? `${iso}:00Z` : `${iso}Z`);
const list = (...times: string[]) => times.map((t) => ({ id: t, createdAt: at(t) }));

// Two backups a day for ten days, 2026-03-01 .. 2026-03-10, at 01:00 and 13:00 UTC.
const twiceDaily = list(...Array.from({ length: 10 }, (_, d) => [`2026-03-${String(d + 1).padStart(2, '0')}T01:00`, `2026-03-${String(d + 1).padStart(2, '0')}T13:00`]).flat());

interface Case {
  name: string;
  backups: { id: string; createdAt: number }[];
  policy: Policy;
  tz?: string;
  keep: Record<string, string[]>;
}

const CASES: Case[] = [
  { name: 'an empty policy keeps everything', backups: list('2026-01-01T00:00', '2026-01-02T00:00'), policy: {}, keep: { '2026-01-02T00:00': ['policy is empty'], '2026-01-01T00:00': ['policy is empty'] } },
  { name: 'zeros and nulls are an empty policy', backups: list('2026-01-01T00:00'), policy: { last: 0, daily: null }, keep: { '2026-01-01T00:00': ['policy is empty'] } },
  { name: 'no backups, nothing to do', backups: [], policy: { last: 3 }, keep: {} },
  {
    name: 'keep_last keeps the N newest, whatever the input order',
    backups: list('2026-01-02T00:00', '2026-01-04T00:00', '2026-01-01T00:00', '2026-01-03T00:00'),
    policy: { last: 2 },
    keep: { '2026-01-04T00:00': ['last'], '2026-01-03T00:00': ['last'] },
  },
  { name: 'keep_last larger than the list keeps all', backups: list('2026-01-01T00:00', '2026-01-02T00:00'), policy: { last: 5 }, keep: { '2026-01-02T00:00': ['last'], '2026-01-01T00:00': ['last'] } },
  {
    name: 'keep_daily keeps the newest backup of each of the N newest days',
    backups: twiceDaily,
    policy: { daily: 3 },
    keep: { '2026-03-10T13:00': ['daily'], '2026-03-09T13:00': ['daily'], '2026-03-08T13:00': ['daily'] },
  },
  {
    name: 'a rule with count left at the oldest backup keeps it too (restic >= 0.17)',
    backups: list('2026-03-02T13:00', '2026-03-02T01:00', '2026-03-01T13:00', '2026-03-01T01:00'),
    policy: { daily: 5 },
    keep: { '2026-03-02T13:00': ['daily'], '2026-03-01T13:00': ['daily'], '2026-03-01T01:00': ['daily'] },
  },
  {
    name: 'days without backups are skipped, not counted',
    backups: list('2026-03-10T12:00', '2026-03-05T12:00', '2026-03-01T12:00', '2026-02-20T12:00'),
    policy: { daily: 3 },
    keep: { '2026-03-10T12:00': ['daily'], '2026-03-05T12:00': ['daily'], '2026-03-01T12:00': ['daily'] },
  },
  {
    name: 'rules combine by union and each counts its own buckets',
    backups: twiceDaily,
    policy: { last: 2, daily: 2 },
    keep: { '2026-03-10T13:00': ['last', 'daily'], '2026-03-10T01:00': ['last'], '2026-03-09T13:00': ['daily'] },
  },
  {
    name: 'hourly buckets',
    backups: list('2026-03-01T10:50', '2026-03-01T10:10', '2026-03-01T09:59', '2026-03-01T08:00', '2026-03-01T07:00'),
    policy: { hourly: 3 },
    keep: { '2026-03-01T10:50': ['hourly'], '2026-03-01T09:59': ['hourly'], '2026-03-01T08:00': ['hourly'] },
  },
  {
    // 2026-03-09 is a Monday: the 8th (Sunday) closes ISO week 10.
    name: 'weekly buckets are ISO weeks (Monday to Sunday)',
    backups: list('2026-03-10T12:00', '2026-03-09T00:30', '2026-03-08T23:30', '2026-03-02T12:00', '2026-03-01T12:00'),
    policy: { weekly: 2 },
    keep: { '2026-03-10T12:00': ['weekly'], '2026-03-08T23:30': ['weekly'] },
  },
  {
    name: 'monthly and yearly buckets',
    backups: list('2026-03-31T12:00', '2026-03-01T12:00', '2026-02-15T12:00', '2025-12-31T12:00', '2025-06-01T12:00', '2024-01-01T12:00'),
    policy: { monthly: 2, yearly: 2 },
    keep: { '2026-03-31T12:00': ['monthly', 'yearly'], '2026-02-15T12:00': ['monthly'], '2025-12-31T12:00': ['yearly'] },
  },
  {
    name: '-1 keeps every bucket of that rule',
    backups: list('2026-03-03T12:00', '2026-03-03T06:00', '2026-03-02T12:00', '2026-03-01T12:00'),
    policy: { daily: -1 },
    keep: { '2026-03-03T12:00': ['daily'], '2026-03-02T12:00': ['daily'], '2026-03-01T12:00': ['daily'] },
  },
  {
    name: 'buckets follow the fleet time zone: 23:30 UTC is the next day in Berlin',
    backups: list('2026-03-02T23:30', '2026-03-02T12:00', '2026-03-01T12:00'),
    policy: { daily: 2 },
    tz: 'Europe/Berlin',
    keep: { '2026-03-02T23:30': ['daily'], '2026-03-02T12:00': ['daily'] },
  },
  {
    name: 'the same backups in UTC: one day holds two of them',
    backups: list('2026-03-02T23:30', '2026-03-02T12:00', '2026-03-01T12:00'),
    policy: { daily: 2 },
    keep: { '2026-03-02T23:30': ['daily'], '2026-03-01T12:00': ['daily'] },
  },
  {
    name: 'equal times are ordered by id, so the result is stable',
    backups: [{ id: 'b', createdAt: at('2026-03-01T12:00') }, { id: 'a', createdAt: at('2026-03-01T12:00') }, { id: 'c', createdAt: at('2026-03-01T12:00') }],
    policy: { last: 1 },
    keep: { c: ['last'] },
  },
];

describe('retention policy (restic forget semantics)', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const r = applyPolicy(c.backups, c.policy, c.tz);
      assert.deepEqual(Object.fromEntries(r.keep.map((k) => [k.backup.id, k.keptBy])), c.keep);
      assert.deepEqual(Object.keys(c.keep), r.keep.map((k) => k.backup.id), 'kept newest first');
      const removed = c.backups.map((b) => b.id).filter((id) => !(id in c.keep));
      assert.deepEqual(new Set(r.remove.map((b) => b.id)), new Set(removed));
      assert.equal(r.keep.length + r.remove.length, c.backups.length);
    });
  }

  it('names ISO weeks across year ends', () => {
    assert.equal(isoWeek(2026, 1, 1), '2026-W01'); // a Thursday
    assert.equal(isoWeek(2027, 1, 1), '2026-W53'); // a Friday: the 53rd week of 2026
    assert.equal(isoWeek(2024, 12, 30), '2025-W01'); // a Monday of the week holding 2025-01-02
    assert.equal(isoWeek(2026, 3, 8), '2026-W10');
    assert.equal(isoWeek(2026, 3, 9), '2026-W11');
  });
});
