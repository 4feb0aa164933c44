import type { FleetSchedule, SiteSchedule } from '../../api/schedule-types.ts';
import type { ServerContext } from '../context.ts';
import type { CronSpec, FleetScheduleRow, ScheduleMode, SiteScheduleRow } from '../db/schedules.ts';
import { nextRunAfter, spreadOffsetMs } from '../schedule-spec.ts';
import { iso } from '../routes/schema.ts';
import { turnTaker } from '../periodic.ts';

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
  const modes: ScheduleMode[] = change.windowMinutes !== undefined ? ['inherit', 'custom'] : ['inherit'];
  // Computing next runs is most of the work (croner, some 40 µs a site): done before the
  // transaction, giving the event loop back every few hundred sites, so the transaction only
  // writes. On SQLite it holds the write lock, and the server's thread, for that long only.
  const current = await ctx.repos.schedules.fleet();
  const planned: FleetScheduleRow = { ...current, spec: change.spec !== undefined ? change.spec : current.spec, windowMinutes: change.windowMinutes ?? current.windowMinutes };
  const early = await precompute(await ctx.repos.schedules.list(modes), planned, ctx.now());
  return ctx.repos.transaction(async (r) => {
    const fleet = await r.schedules.setFleet(change);
    const now = ctx.now();
    const sameFleet = sameSchedule(fleet, planned);
    const rows = await r.schedules.list(modes);
    // What changed meanwhile is computed again: the fleet (another change), a site's own
    // schedule, and a run that fell between then and now (the next run must be after now).
    await r.schedules.setNext(rows.map((row) => {
      const e = early.get(row.siteId);
      const valid = sameFleet && e !== undefined && e.mode === row.mode && sameSpec(e.spec, row.spec) && (e.at === null || e.at > now);
      return { siteId: row.siteId, mode: row.mode, at: valid ? e.at : nextRunOf(row.siteId, row, fleet, now) };
    }));
    return fleet;
  });
}

type Early = Map<string, { mode: ScheduleMode; spec: CronSpec | null; at: number | null }>;

async function precompute(rows: readonly SiteScheduleRow[], fleet: FleetScheduleRow, now: number): Promise<Early> {
  const out: Early = new Map();
  const turn = turnTaker();
  for (const row of rows) {
    out.set(row.siteId, { mode: row.mode, spec: row.spec, at: nextRunOf(row.siteId, row, fleet, now) });
    await turn();
  }
  return out;
}

function sameSpec(a: CronSpec | null, b: CronSpec | null): boolean {
  return a === b || (a !== null && b !== null && a.cron === b.cron && a.timezone === b.timezone);
}

function sameSchedule(a: FleetScheduleRow, b: FleetScheduleRow): boolean {
  return a.windowMinutes === b.windowMinutes && sameSpec(a.spec, b.spec);
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
