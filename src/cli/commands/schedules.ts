import type { FleetSchedule, FleetScheduleRequest, ScheduleRequest, ScheduleSpec, SiteSchedule } from '../../api/schedule-types.ts';
import { WEEKDAYS } from '../../api/weekdays.ts';
import { badInput } from '../../errors.ts';
import { siteOrFleetCommand } from '../site-or-fleet.ts';
import { str } from '../values.ts';

// wpbackup schedules show|set|clear [--site SITE]: the fleet default, or one site's schedule,
// over the API (WPBACKUP_URL, WPBACKUP_TOKEN). The server checks cron expressions and time
// zones and says which field is wrong and how to fix it (exit 2).

const ENV_HELP = 'Uses WPBACKUP_URL and WPBACKUP_TOKEN. Exit codes: 0 done, 1 failed, 2 bad input or refused.';

function specText(s: ScheduleSpec | null): string {
  return s ? `${s.preset ?? s.cron} (${s.cron}, ${s.timezone})` : 'none';
}

function siteText(b: SiteSchedule): string {
  return `Site ${b.site_id}: ${b.mode}${b.mode === 'inherit' ? ' (the fleet default)' : ''}
  schedule: ${specText(b.effective)}, ${b.offset_seconds} s after each slot
  next run: ${b.next_run_at ?? 'none'}
`;
}

function fleetText(b: FleetSchedule): string {
  return `Fleet default: ${specText(b.schedule)}\n  window: ${b.window_minutes} min (each site runs at a fixed offset within it)\n`;
}

const text = { siteText, fleetText };

/** The request the flags describe; exactly one of --cron, --hourly, --daily, --weekly, --disable. */
export function requestOf(v: Record<string, unknown>, pos: string[]): ScheduleRequest {
  const given = ['cron', 'hourly', 'daily', 'weekly', 'disable'].filter((k) => v[k] !== undefined && v[k] !== false);
  if (given.length !== 1) throw badInput(`Give exactly one of --cron, --hourly, --daily, --weekly or --disable${given.length ? ` (got --${given.join(', --')})` : ''}`, 'e.g. wpbackup schedules set --daily 03:00 --tz Europe/Berlin');
  const tz = str(v.tz as string | undefined);
  const timezone = tz === undefined ? {} : { timezone: tz };
  if (v.disable) return { disabled: true };
  if (v.hourly) return { preset: 'hourly', ...timezone };
  if (typeof v.cron === 'string') return { cron: v.cron, ...timezone };
  if (typeof v.daily === 'string') return { preset: 'daily', at: v.daily, ...timezone };
  // --weekly DAY HH:MM: parseArgs gives DAY to the option and HH:MM as a positional; "mon 03:00" in one word works too.
  const [day, at] = [...String(v.weekly).trim().split(/\s+/), ...pos];
  if (!WEEKDAYS.includes(day as (typeof WEEKDAYS)[number]) || !at) throw badInput(`--weekly needs a day and a time, not "${[day, at].filter(Boolean).join(' ')}"`, `e.g. --weekly mon 03:00 (days: ${WEEKDAYS.join(', ')})`);
  return { preset: 'weekly', day: day as ScheduleRequest['day'], at, ...timezone };
}

export const schedulesShow = siteOrFleetCommand({
  path: ['schedules', 'show'],
  summary: "Show the fleet's default schedule, or a site's (--site)",
  usage: 'schedules show [--site SITE] [--json]',
  help: `SITE is a site id or name: its mode (inherit, custom, disabled), the schedule that applies, its
spreading offset and next run. Without --site: the fleet default and the spreading window.
${ENV_HELP}`,
  text,
  calls: () => ({
    site: (api, id) => api.json<SiteSchedule>('GET', `/api/v1/sites/${id}/schedule`),
    fleet: (api) => api.json<FleetSchedule>('GET', '/api/v1/schedules/default'),
  }),
});

export const schedulesSet = siteOrFleetCommand({
  path: ['schedules', 'set'],
  summary: "Set the fleet's default schedule, or a site's own (--site)",
  usage: 'schedules set [--site SITE] (--cron EXPR | --hourly | --daily HH:MM | --weekly DAY HH:MM | --disable) [--tz ZONE] [--window MINUTES] [--json]',
  help: `Options:
  --cron EXPR          five fields: minute hour day-of-month month day-of-week, e.g. "0 3 * * *"
  --hourly             every hour at minute 0
  --daily HH:MM        every day at that time
  --weekly DAY HH:MM   every week (DAY: ${WEEKDAYS.join(', ')})
  --disable            a site: no scheduled backups at all; the fleet: no default
  --tz ZONE            IANA time zone of the times above (default UTC), e.g. Europe/Berlin
  --window MINUTES     fleet only: sites start at a fixed offset within this window (default 30)
Each site runs at its slot plus an offset from its id, so many sites on "daily at 03:00" do not
all start at 03:00:00. A site without its own schedule inherits the fleet default.
${ENV_HELP}`,
  options: { cron: { type: 'string' }, hourly: { type: 'boolean' }, daily: { type: 'string' }, weekly: { type: 'string' }, disable: { type: 'boolean' }, tz: { type: 'string' }, window: { type: 'string' } },
  allowPositionals: true,
  text,
  calls(v, pos) {
    const site = str(v.site as string | undefined);
    const window = str(v.window as string | undefined);
    if (site !== undefined && window !== undefined) throw badInput('--window is a fleet setting', 'Drop --site to change the window for every site');
    if (pos.length > (v.weekly !== undefined ? 1 : 0)) throw badInput(`Unexpected argument ${pos.join(' ')}`, 'Quote a cron expression: --cron "0 3 * * *"');
    const onlyWindow = window !== undefined && ['cron', 'hourly', 'daily', 'weekly', 'disable'].every((k) => v[k] === undefined);
    const request = onlyWindow ? {} : requestOf(v, pos);
    const fleet: FleetScheduleRequest = { ...request, ...(window === undefined ? {} : { window_minutes: minutes(window) }) };
    return {
      site: (api, id) => api.json<SiteSchedule>('PUT', `/api/v1/sites/${id}/schedule`, request),
      fleet: (api) => api.json<FleetSchedule>('PUT', '/api/v1/schedules/default', fleet),
    };
  },
});

export const schedulesClear = siteOrFleetCommand({
  path: ['schedules', 'clear'],
  summary: "Make a site inherit the fleet default again (--site), or remove the fleet default",
  usage: 'schedules clear [--site SITE] [--json]',
  help: `With --site: the site's own schedule (or disable) is dropped and it inherits the fleet default.
Without: the fleet has no default, so sites that inherit are not backed up on a schedule.
${ENV_HELP}`,
  text,
  calls: () => ({
    site: (api, id) => api.json<SiteSchedule>('DELETE', `/api/v1/sites/${id}/schedule`),
    fleet: (api) => api.json<FleetSchedule>('PUT', '/api/v1/schedules/default', { disabled: true }),
  }),
});

function minutes(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 1440) throw badInput(`--window must be whole minutes from 0 to 1440, not ${text}`);
  return n;
}
