// Which backups a retention policy keeps: restic's `forget` rules, written anew for our rows.
// Pure (no clock, no database): the prune service feeds it a site's completed backups.
//
// - Backups are taken newest first (created_at, then id, descending).
// - keep_last N keeps the N newest.
// - keep_hourly/daily/weekly/monthly/yearly N: each rule walks the list, and a backup whose
//   bucket (hour, day, ISO week, month, year of created_at in the fleet's time zone) differs
//   from the bucket of the last backup that rule kept is kept, until the rule has kept N. So
//   each rule keeps the newest backup of each of its N newest buckets that have backups.
// - While a rule still has count left when it reaches the oldest backup, it keeps that one
//   too (restic >= 0.17 does the same: the history reaches as far back as it can).
// - -1 means "every bucket" (no limit); 0 or null means the rule is off.
// - Rules are independent and combine by union: a backup is kept when any rule keeps it, and
//   each rule counts its own buckets (a backup kept by keep_last still uses a daily slot).
// - A policy with no rule set keeps everything.

export const RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type Rule = (typeof RULES)[number];

/** Counts per rule: a positive number, -1 for unlimited, 0 or null for off. */
export type Policy = Partial<Record<Rule, number | null>>;

export interface Candidate {
  id: string;
  createdAt: number;
}

export interface Decision<T extends Candidate> {
  backup: T;
  /** The rules that keep it ("last", "daily", ...); empty for a backup to delete. */
  keptBy: string[];
}

export interface PolicyResult<T extends Candidate> {
  /** Newest first, with the rules that keep each. */
  keep: Decision<T>[];
  /** Newest first. */
  remove: T[];
}

export const KEEP_ALL_REASON = 'policy is empty';

export function isEmptyPolicy(p: Policy): boolean {
  return RULES.every((r) => !p[r]);
}

/** Newest first; equal times by id, so the order is total and the same everywhere. */
export function newestFirst(a: Candidate, b: Candidate): number {
  return b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

export function applyPolicy<T extends Candidate>(backups: readonly T[], policy: Policy, timeZone = 'UTC'): PolicyResult<T> {
  const list = [...backups].sort(newestFirst);
  if (isEmptyPolicy(policy)) return { keep: list.map((backup) => ({ backup, keptBy: [KEEP_ALL_REASON] })), remove: [] };
  const bucketOf = bucketer(timeZone);
  const state = RULES.filter((r) => policy[r]).map((rule) => ({ rule, left: policy[rule] as number, last: undefined as string | undefined }));
  const result: PolicyResult<T> = { keep: [], remove: [] };
  list.forEach((backup, i) => {
    const keptBy: string[] = [];
    for (const s of state) {
      if (s.left === 0) continue;
      const bucket = s.rule === 'last' ? String(i) : bucketOf(s.rule, backup.createdAt);
      if (bucket === s.last && i !== list.length - 1) continue;
      s.last = bucket;
      if (s.left > 0) s.left--;
      keptBy.push(s.rule);
    }
    if (keptBy.length > 0) result.keep.push({ backup, keptBy });
    else result.remove.push(backup);
  });
  return result;
}

type Parts = { year: number; month: number; day: number; hour: number };

/** The bucket names of a time in a zone: "2026-11-30T03" for hourly, "2026-W48" for weekly... */
export function bucketer(timeZone: string): (rule: Exclude<Rule, 'last'>, at: number) => string {
  const fmt = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric' });
  const partsOf = (at: number): Parts => {
    const p = Object.fromEntries(fmt.formatToParts(at).map((x) => [x.type, x.value]));
    return { year: Number(p.year), month: Number(p.month), day: Number(p.day), hour: Number(p.hour) };
  };
  return (rule, at) => {
    const t = partsOf(at);
    const ymd = `${t.year}-${pad(t.month)}-${pad(t.day)}`;
    switch (rule) {
      case 'hourly': return `${ymd}T${pad(t.hour)}`;
      case 'daily': return ymd;
      case 'weekly': return isoWeek(t.year, t.month, t.day);
      case 'monthly': return `${t.year}-${pad(t.month)}`;
      case 'yearly': return String(t.year);
    }
  };
}

/** The ISO 8601 week of a calendar date, e.g. "2026-W01" (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeek(year: number, month: number, day: number): string {
  const date = new Date(Date.UTC(year, month - 1, day));
  const weekday = date.getUTCDay() || 7;
  date.setUTCDate(date.getUTCDate() + 4 - weekday); // the Thursday of this week decides its year
  const weekYear = date.getUTCFullYear();
  const week = Math.ceil(((date.getTime() - Date.UTC(weekYear, 0, 1)) / 86_400_000 + 1) / 7);
  return `${weekYear}-W${pad(week)}`;
}

/** Whether Intl knows the zone (an IANA name such as Europe/Berlin, or UTC). */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}
