import { createHash } from 'node:crypto';
import { Cron } from 'croner';
import { WEEKDAYS, type ScheduleRequest, type ScheduleSpec } from '../api/schedule-types.ts';
import { invalid } from './api-error.ts';

// What a schedule means: a request (cron or preset) checked and turned into a cron expression
// in a time zone; a site's spreading offset; and the next run after a moment, as croner
// computes it (time zones and DST included: a time that does not exist runs at the next one
// that does, a time that happens twice runs once).

/** A request's field is wrong: 400 naming the field and the fix. */
function bad(field: string, message: string): Error {
  return invalid(`${field}: ${message}`, { field });
}

export function checkTimezone(tz: string): string {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return tz;
  } catch {
    throw bad('timezone', `"${tz}" is not an IANA time zone; use a name like "Europe/Berlin", "America/New_York" or "UTC"`);
  }
}

function checkCron(expr: string, tz: string): string {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) throw bad('cron', `"${expr}" has ${fields.length} field(s); give five: minute hour day-of-month month day-of-week, e.g. "0 3 * * *" for 03:00 daily`);
  const cron = fields.join(' ');
  let next: Date | null;
  try {
    next = cronFor(cron, tz).nextRun();
  } catch (err) {
    throw bad('cron', `"${expr}" is not a valid cron expression (${(err as Error).message}); e.g. "0 3 * * *" for 03:00 daily, "30 2 * * 1" for 02:30 on Mondays`);
  }
  if (!next) throw bad('cron', `"${expr}" never runs (no such date); check the day-of-month and month fields`);
  return cron;
}

/** The request as a schedule, or null for disabled: true. Throws 400s naming the field. */
export function specOf(r: ScheduleRequest): ScheduleSpec | null {
  const given = [r.cron !== undefined && 'cron', r.preset !== undefined && 'preset', r.disabled === true && 'disabled'].filter(Boolean);
  if (given.length !== 1) throw bad('cron', `give exactly one of cron, preset or disabled: true${given.length ? ` (got ${given.join(', ')})` : ''}`);
  if (r.disabled === true) return null;
  const timezone = checkTimezone(r.timezone ?? 'UTC');
  if (r.cron !== undefined) {
    if (r.at !== undefined || r.day !== undefined) throw bad('at', 'at and day go with a preset, not with cron');
    return { cron: checkCron(r.cron, timezone), timezone, preset: null };
  }
  return presetSpec(r, timezone);
}

function presetSpec(r: ScheduleRequest, timezone: string): ScheduleSpec {
  if (r.preset === 'hourly') {
    if (r.at !== undefined || r.day !== undefined) throw bad('at', 'hourly takes no at or day (it runs at minute 0, spread over the window)');
    return { cron: '0 * * * *', timezone, preset: 'hourly' };
  }
  if (r.at === undefined) throw bad('at', `${r.preset} needs at: "HH:MM", e.g. "03:00"`);
  const [h, m] = r.at.split(':').map(Number) as [number, number];
  if (r.preset === 'daily') {
    if (r.day !== undefined) throw bad('day', 'daily takes no day; use weekly for one day a week');
    return { cron: `${m} ${h} * * *`, timezone, preset: `daily at ${r.at}` };
  }
  if (r.day === undefined) throw bad('day', `weekly needs day: one of ${WEEKDAYS.join(', ')}`);
  return { cron: `${m} ${h} * * ${WEEKDAYS.indexOf(r.day)}`, timezone, preset: `weekly on ${r.day} at ${r.at}` };
}

/** One parsed Cron per expression and zone: parsing costs more than computing a next run. */
const crons = new Map<string, Cron>();

function cronFor(cron: string, timezone: string): Cron {
  const key = `${timezone} ${cron}`;
  let c = crons.get(key);
  if (!c) {
    c = new Cron(cron, { timezone, paused: true });
    if (crons.size >= 1000) crons.clear();
    crons.set(key, c);
  }
  return c;
}

/**
 * The site's fixed delay after each slot, in [0, window): from a hash of its id, so every
 * server computes the same and "daily at 03:00" on many sites starts them over the window.
 * Whole seconds, so the offset reads well.
 */
export function spreadOffsetMs(siteId: string, windowMs: number): number {
  const seconds = Math.floor(windowMs / 1000);
  if (seconds <= 0) return 0;
  const h = createHash('sha256').update(siteId).digest();
  return (h.readUIntBE(0, 6) % seconds) * 1000;
}

/**
 * The longest gap between the schedule's next few slots after `from` (a cron such as "mon,thu"
 * has uneven gaps: the long one is what a missed run costs); null when it has fewer than two.
 */
export function longestGapMs(spec: Pick<ScheduleSpec, 'cron' | 'timezone'>, from: number, slots = 8): number | null {
  const runs = cronFor(spec.cron, spec.timezone).nextRuns(slots, new Date(from)).map((d) => d.getTime());
  let gap: number | null = null;
  for (let i = 1; i < runs.length; i++) gap = Math.max(gap ?? 0, (runs[i] ?? 0) - (runs[i - 1] ?? 0));
  return gap;
}

/** The first run strictly after `after`: the next cron slot S with S + offset > after, plus the offset. */
export function nextRunAfter(spec: Pick<ScheduleSpec, 'cron' | 'timezone'>, offsetMs: number, after: number): number | null {
  const next = cronFor(spec.cron, spec.timezone).nextRun(new Date(after - offsetMs));
  return next ? next.getTime() + offsetMs : null;
}
