import type { FleetSchedule, SiteSchedule } from '../../api/schedule-types.ts';
import type { ServerContext } from '../context.ts';
import type { CronSpec, FleetScheduleRow, ScheduleMode, SiteScheduleRow } from '../db/schedules.ts';
import { nextRunAfter, spreadOffsetMs } from '../schedule-spec.ts';
import { iso } from '../routes/schema.ts';

// Schedules as the routes and the scheduler use them: which schedule applies to a site
// (its own, the fleet default, or none), its next run, and the changes that move next runs.

export const windowMsOf = (fleet: FleetScheduleRow): number => fleet.windowMinutes * 60_000;

/** What applies to a site: its own schedule, the fleet default (inherit, or no row), or none. */
export function effectiveSpec(row: Pick<SiteScheduleRow, 'mode' | 'spec'> | undefined, fleet: FleetScheduleRow): CronSpec | null {
  const mode = row?.mode ?? 'inherit';
  if (mode === 'disabled') return null;
  return mode === 'custom' ? (row?.spec ?? null) : fleet.spec;
}

/** The site's first run strictly after `after` under what applies to it; null: none. */
export function nextRunOf(siteId: string, row: Pick<SiteScheduleRow, 'mode' | 'spec'> | undefined, fleet: FleetScheduleRow, after: number): number | null {
  const spec = effectiveSpec(row, fleet);
  return spec ? nextRunAfter(spec, spreadOffsetMs(siteId, windowMsOf(fleet)), after) : null;
}

/** Sets a site's choice (mode with its own spec for custom) and its next run from now. */
export async function setSiteSchedule(ctx: ServerContext, siteId: string, mode: ScheduleMode, spec: CronSpec | null): Promise<SiteScheduleRow> {
  const fleet = await ctx.repos.schedules.fleet();
  const next = nextRunOf(siteId, { mode, spec }, fleet, ctx.now());
  return ctx.repos.schedules.put(siteId, mode, mode === 'custom' ? spec : null, next);
}

/**
 * Changes the fleet default and/or the window, and moves the next runs it changes: inheriting
 * sites' for a new default, every scheduled site's for a new window (their offsets move).
 */
export async function setFleetSchedule(ctx: ServerContext, change: { spec?: CronSpec | null; windowMinutes?: number }): Promise<FleetScheduleRow> {
  await ctx.repos.schedules.ensureRows();
  return ctx.repos.transaction(async (r) => {
    const fleet = await r.schedules.setFleet(change);
    const now = ctx.now();
    const rows = await r.schedules.list(change.windowMinutes !== undefined ? ['inherit', 'custom'] : ['inherit']);
    await r.schedules.setNext(rows.map((row) => ({ siteId: row.siteId, mode: row.mode, at: nextRunOf(row.siteId, row, fleet, now) })));
    return fleet;
  });
}

export function fleetBody(f: FleetScheduleRow): FleetSchedule {
  return { schedule: f.spec, window_minutes: f.windowMinutes, updated_at: iso(f.updatedAt) };
}

export function siteScheduleBody(siteId: string, row: SiteScheduleRow | undefined, fleet: FleetScheduleRow): SiteSchedule {
  return {
    site_id: siteId,
    mode: row?.mode ?? 'inherit',
    schedule: row?.mode === 'custom' ? row.spec : null,
    effective: effectiveSpec(row, fleet),
    offset_seconds: spreadOffsetMs(siteId, windowMsOf(fleet)) / 1000,
    next_run_at: iso(row?.nextRunAt ?? null),
    last_run_at: iso(row?.lastRunAt ?? null),
  };
}
