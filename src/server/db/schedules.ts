import { num, numOrNull, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// Backup schedules: the fleet default (one row) and each site's choice with its next run.
// The repository stores and claims; what a schedule means (cron, time zones, spreading) is
// schedule-spec.ts, and the scheduler (scheduler.ts) decides when to call what.

export type ScheduleMode = 'inherit' | 'custom' | 'disabled';

export interface CronSpec {
  cron: string;
  timezone: string;
  preset: string | null;
}

export interface FleetScheduleRow {
  /** null: no default. */
  spec: CronSpec | null;
  windowMinutes: number;
  updatedAt: number | null;
}

export interface SiteScheduleRow {
  siteId: string;
  mode: ScheduleMode;
  /** The site's own schedule (custom only). */
  spec: CronSpec | null;
  nextRunAt: number | null;
  lastRunAt: number | null;
}

/** A due run, with what the scheduler needs to enqueue it. */
export interface DueRun extends SiteScheduleRow {
  nextRunAt: number;
  nodeId: string;
  nodeStatus: string;
}

const SET_NEXT_ROWS = 500;
const BARE = 'site_id, mode, cron, timezone, preset, next_run_at, last_run_at';
const COLUMNS = 'ss.site_id, ss.mode, ss.cron, ss.timezone, ss.preset, ss.next_run_at, ss.last_run_at';

/** The cron, timezone and preset columns of a row as a spec (null: none). */
export function cronSpecOf(r: Raw): CronSpec | null {
  return r.cron === null || r.cron === undefined ? null : { cron: str(r.cron), timezone: str(r.timezone ?? 'UTC'), preset: strOrNull(r.preset) };
}

function toRow(r: Raw): SiteScheduleRow {
  return { siteId: str(r.site_id), mode: r.mode as ScheduleMode, spec: cronSpecOf(r), nextRunAt: numOrNull(r.next_run_at), lastRunAt: numOrNull(r.last_run_at) };
}

export class SchedulesRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  async fleet(): Promise<FleetScheduleRow> {
    const r = await this.#ctx.db.get<Raw>('SELECT cron, timezone, preset, window_minutes, updated_at FROM fleet_schedule WHERE id = 1');
    return r ? { spec: cronSpecOf(r), windowMinutes: num(r.window_minutes), updatedAt: numOrNull(r.updated_at) } : { spec: null, windowMinutes: 30, updatedAt: null };
  }

  /** spec undefined: keep the schedule; windowMinutes undefined: keep the window. */
  async setFleet(change: { spec?: CronSpec | null; windowMinutes?: number }): Promise<FleetScheduleRow> {
    const now = this.#ctx.now();
    if (change.spec !== undefined) {
      const s = change.spec;
      await this.#ctx.db.exec('UPDATE fleet_schedule SET cron = ?, timezone = ?, preset = ?, updated_at = ? WHERE id = 1', [s?.cron ?? null, s?.timezone ?? null, s?.preset ?? null, now]);
    }
    if (change.windowMinutes !== undefined) await this.#ctx.db.exec('UPDATE fleet_schedule SET window_minutes = ?, updated_at = ? WHERE id = 1', [change.windowMinutes, now]);
    return this.fleet();
  }

  /** The site's row; a site without one inherits (and has no next run yet). */
  async get(siteId: string): Promise<SiteScheduleRow | undefined> {
    const r = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM site_schedules ss WHERE ss.site_id = ?`, [siteId]);
    return r && toRow(r);
  }

  /** Sets the site's choice and its next run together. */
  async put(siteId: string, mode: ScheduleMode, spec: CronSpec | null, nextRunAt: number | null): Promise<SiteScheduleRow> {
    const now = this.#ctx.now();
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO site_schedules (site_id, mode, cron, timezone, preset, next_run_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (site_id) DO UPDATE SET mode = excluded.mode, cron = excluded.cron, timezone = excluded.timezone, preset = excluded.preset,
       next_run_at = excluded.next_run_at, updated_at = excluded.updated_at
       RETURNING ${BARE}`,
      [siteId, mode, spec?.cron ?? null, spec?.timezone ?? null, spec?.preset ?? null, nextRunAt, now],
    );
    return toRow(row as Raw);
  }

  /** Gives every site without a row one (inherit); safe when several servers do it at once. */
  async ensureRows(): Promise<number> {
    return this.#ctx.db.exec(
      `INSERT INTO site_schedules (site_id, updated_at) SELECT s.id, ? FROM sites s WHERE NOT EXISTS (SELECT 1 FROM site_schedules x WHERE x.site_id = s.id)
       ON CONFLICT (site_id) DO NOTHING`,
      [this.#ctx.now()],
    );
  }

  /** Rows that should have a next run and have none: custom ones, and inheriting ones when the fleet has a default. */
  async pending(fleetHasDefault: boolean, limit: number): Promise<SiteScheduleRow[]> {
    const modes = fleetHasDefault ? "('custom', 'inherit')" : "('custom')";
    const rows = await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM site_schedules ss WHERE ss.next_run_at IS NULL AND ss.mode IN ${modes} LIMIT ?`, [limit]);
    return rows.map(toRow);
  }

  /** Sets a first next run where none is set yet (a concurrent change of the schedule wins). */
  async fillNext(siteId: string, mode: ScheduleMode, nextRunAt: number): Promise<boolean> {
    return (await this.#ctx.db.exec('UPDATE site_schedules SET next_run_at = ? WHERE site_id = ? AND mode = ? AND next_run_at IS NULL', [nextRunAt, siteId, mode])) === 1;
  }

  /** The rows in these modes (after the fleet default or window changed). */
  async list(modes: readonly ScheduleMode[]): Promise<SiteScheduleRow[]> {
    const rows = await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM site_schedules ss WHERE ss.mode IN (${modes.map(() => '?').join(', ')}) ORDER BY ss.site_id`, modes);
    return rows.map(toRow);
  }

  /** Sets next runs of rows still in the mode they were computed for; call inside a transaction. */
  async setNext(next: readonly { siteId: string; mode: ScheduleMode; at: number | null }[]): Promise<void> {
    // SET_NEXT_ROWS rows a statement: a fleet of 10,000 sites is 20 round trips, not 10,000.
    for (let i = 0; i < next.length; i += SET_NEXT_ROWS) {
      const chunk = next.slice(i, i + SET_NEXT_ROWS);
      await this.#ctx.db.exec(
        `WITH v (site_id, mode, at) AS (VALUES ${chunk.map(() => '(?, ?, CAST(? AS BIGINT))').join(', ')})
         UPDATE site_schedules SET next_run_at = v.at FROM v WHERE site_schedules.site_id = v.site_id AND site_schedules.mode = v.mode`,
        chunk.flatMap((n) => [n.siteId, n.mode, n.at]),
      );
    }
  }

  /** Runs due at now, earliest first, with the site's node. */
  async due(now: number, limit: number): Promise<DueRun[]> {
    const rows = await this.#ctx.db.query<Raw>(
      `SELECT ${COLUMNS}, s.node_id, n.status AS node_status FROM site_schedules ss JOIN sites s ON s.id = ss.site_id JOIN nodes n ON n.id = s.node_id
       WHERE ss.next_run_at <= ? ORDER BY ss.next_run_at, ss.site_id LIMIT ?`,
      [now, limit],
    );
    return rows.map((r) => ({ ...toRow(r), nextRunAt: num(r.next_run_at), nodeId: str(r.node_id), nodeStatus: str(r.node_status) }));
  }

  /**
   * Claims the run due at `expected` by moving next_run_at to `next`: compare-and-set, so of
   * several servers exactly one gets true for a slot. Inside a transaction, the row stays
   * locked until it ends (PostgreSQL), so the claim and the enqueue commit together.
   */
  async claimSlot(siteId: string, expected: number, next: number | null, now: number): Promise<boolean> {
    const sql = 'UPDATE site_schedules SET next_run_at = ?, last_run_at = ? WHERE site_id = ? AND next_run_at = ?';
    return (await this.#ctx.db.exec(sql, [next, now, siteId, expected])) === 1;
  }

  /** Next runs by site (GET /sites); sites without a row are left out. */
  async nextRuns(siteIds: readonly string[]): Promise<Map<string, number | null>> {
    const out = new Map<string, number | null>();
    for (let i = 0; i < siteIds.length; i += 500) {
      const chunk = siteIds.slice(i, i + 500);
      const rows = await this.#ctx.db.query<Raw>(`SELECT site_id, next_run_at FROM site_schedules WHERE site_id IN (${chunk.map(() => '?').join(', ')})`, chunk);
      for (const r of rows) out.set(str(r.site_id), numOrNull(r.next_run_at));
    }
    return out;
  }
}
