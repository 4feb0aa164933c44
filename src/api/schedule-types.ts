import { Type, type Static } from '@sinclair/typebox';
import { Nullable } from './schema-kit.ts';
import { WEEKDAYS } from './weekdays.ts';

// Schedules (issue 10): request and response bodies of /api/v1/schedules/default and
// /api/v1/sites/{id}/schedule, as TypeBox schemas (validated by the server, shown in the
// OpenAPI document) and the types derived from them. A schedule is a five-field cron
// expression in an IANA time zone, or a preset the server turns into one.

export { WEEKDAYS, type Weekday } from './weekdays.ts';

/** Most the spreading window may be: a day. */
export const MAX_WINDOW_MINUTES = 1440;
export const DEFAULT_WINDOW_MINUTES = 30;

const HHMM = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', description: 'HH:MM, 24-hour clock, in the schedule\'s time zone' });

/**
 * One of: cron (with timezone), preset (hourly; daily with at; weekly with day and at), or
 * disabled: true. The server says which field is wrong and how to fix it (400).
 */
export const ScheduleRequest = Type.Object(
  {
    cron: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Five fields: minute hour day-of-month month day-of-week, e.g. "0 3 * * *"' })),
    preset: Type.Optional(Type.Union([Type.Literal('hourly'), Type.Literal('daily'), Type.Literal('weekly')])),
    at: Type.Optional(HHMM),
    day: Type.Optional(Type.Union(WEEKDAYS.map((d) => Type.Literal(d)))),
    timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'IANA time zone, e.g. Europe/Berlin; UTC by default' })),
    disabled: Type.Optional(Type.Boolean({ description: 'A site: no scheduled backups (not even the fleet default). The fleet: no default schedule.' })),
  },
  { additionalProperties: false },
);
export type ScheduleRequest = Static<typeof ScheduleRequest>;

export const FleetScheduleRequest = Type.Composite(
  [
    ScheduleRequest,
    Type.Object({ window_minutes: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_WINDOW_MINUTES, description: 'Spreading window: each site runs at a fixed offset (from its id) within it' })) }),
  ],
  { additionalProperties: false },
);
export type FleetScheduleRequest = Static<typeof FleetScheduleRequest>;


/** A cron expression and where it runs; preset is how it was given, for display ("daily at 03:00"). */
export const ScheduleSpec = Type.Object({
  cron: Type.String(),
  timezone: Type.String(),
  preset: Nullable(Type.String()),
});
export type ScheduleSpec = Static<typeof ScheduleSpec>;

export const FleetSchedule = Type.Object({
  /** null: no default, sites that inherit are not backed up on a schedule. */
  schedule: Nullable(ScheduleSpec),
  window_minutes: Type.Integer(),
  updated_at: Nullable(Type.String()),
});
export type FleetSchedule = Static<typeof FleetSchedule>;

export const SiteSchedule = Type.Object({
  site_id: Type.String(),
  /** inherit: the fleet default; custom: the site's own; disabled: never on a schedule. */
  mode: Type.Union([Type.Literal('inherit'), Type.Literal('custom'), Type.Literal('disabled')]),
  /** The site's own schedule (custom only). */
  schedule: Nullable(ScheduleSpec),
  /** What applies: the site's own, the fleet default, or nothing. */
  effective: Nullable(ScheduleSpec),
  /** This site's fixed delay after each slot (spreading), in seconds. */
  offset_seconds: Type.Integer(),
  next_run_at: Nullable(Type.String()),
  last_run_at: Nullable(Type.String()),
});
export type SiteSchedule = Static<typeof SiteSchedule>;
