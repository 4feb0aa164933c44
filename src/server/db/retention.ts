import { COLUMNS, toBackup, type BackupRow } from './backups.ts';
import { num, numOrNull, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// Retention's rows: the fleet's policy (id 'fleet') and sites' own (id = site id), pins, and
// the state of deletions. A deletion claims its row first (completed -> deleting, only when
// unpinned: one UPDATE, so a pin and a prune racing on two servers cannot both win), then the
// object goes, then the row. A failed object deletion leaves the row 'deleting' with the
// error and the time of its next try.

export const FLEET = 'fleet';

export interface PolicyRow {
  siteId: string | null;
  keepLast: number | null;
  keepHourly: number | null;
  keepDaily: number | null;
  keepWeekly: number | null;
  keepMonthly: number | null;
  keepYearly: number | null;
  /** The fleet's time zone (on the fleet row only). */
  timeZone: string | null;
  updatedAt: number;
}

export type PolicyFields = Omit<PolicyRow, 'siteId' | 'updatedAt'>;

const POLICY_COLUMNS = 'site_id, keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, time_zone, updated_at';

function toPolicy(r: Raw): PolicyRow {
  return {
    siteId: strOrNull(r.site_id),
    keepLast: numOrNull(r.keep_last),
    keepHourly: numOrNull(r.keep_hourly),
    keepDaily: numOrNull(r.keep_daily),
    keepWeekly: numOrNull(r.keep_weekly),
    keepMonthly: numOrNull(r.keep_monthly),
    keepYearly: numOrNull(r.keep_yearly),
    timeZone: strOrNull(r.time_zone),
    updatedAt: num(r.updated_at),
  };
}

/** What reconcile needs of every row of a provider. */
export interface StoredKey {
  id: string;
  siteId: string;
  key: string;
  status: string;
}

export class RetentionRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  /** The site's own policy (siteId), or the fleet's (null); undefined when none is set. */
  async getPolicy(siteId: string | null): Promise<PolicyRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${POLICY_COLUMNS} FROM retention_policies WHERE id = ?`, [siteId ?? FLEET]);
    return row && toPolicy(row);
  }

  async setPolicy(siteId: string | null, p: PolicyFields): Promise<PolicyRow> {
    const values = [p.keepLast, p.keepHourly, p.keepDaily, p.keepWeekly, p.keepMonthly, p.keepYearly, siteId === null ? p.timeZone : null, this.#ctx.now()];
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO retention_policies (id, ${POLICY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET keep_last = excluded.keep_last, keep_hourly = excluded.keep_hourly, keep_daily = excluded.keep_daily,
         keep_weekly = excluded.keep_weekly, keep_monthly = excluded.keep_monthly, keep_yearly = excluded.keep_yearly,
         time_zone = excluded.time_zone, updated_at = excluded.updated_at
       RETURNING ${POLICY_COLUMNS}`,
      [siteId ?? FLEET, siteId, ...values],
    );
    return toPolicy(row as Raw);
  }

  /** Removes the site's own policy (it inherits the fleet's again), or the fleet's (keep everything, UTC). */
  async clearPolicy(siteId: string | null): Promise<boolean> {
    return (await this.#ctx.db.exec('DELETE FROM retention_policies WHERE id = ?', [siteId ?? FLEET])) === 1;
  }

  /** Pins or unpins a completed backup; undefined when there is no such completed backup. */
  async setPinned(backupId: string, pinned: boolean): Promise<BackupRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`UPDATE backups SET pinned = ? WHERE id = ? AND status = 'completed' RETURNING ${COLUMNS}`, [pinned ? 1 : 0, backupId]);
    return row && toBackup(row);
  }

  /** Every completed backup of a site (the input of the policy). */
  async completed(siteId: string): Promise<BackupRow[]> {
    const rows = await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM backups WHERE site_id = ? AND status = 'completed' ORDER BY created_at DESC, id DESC`, [siteId]);
    return rows.map(toBackup);
  }

  /** Sites that have completed backups (a fleet-wide prune). */
  async sitesWithBackups(): Promise<string[]> {
    const rows = await this.#ctx.db.query<Raw>(`SELECT DISTINCT site_id FROM backups WHERE status = 'completed' ORDER BY site_id`);
    return rows.map((r) => str(r.site_id));
  }

  /**
   * Step one of a deletion: completed and unpinned -> deleting, with a retry time in case this
   * process dies before the end. undefined when someone pinned, deleted or claimed it first.
   */
  async claimForDeletion(backupId: string, retryAt: number): Promise<BackupRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(
      `UPDATE backups SET status = 'deleting', delete_after = ? WHERE id = ? AND status = 'completed' AND pinned = 0 RETURNING ${COLUMNS}`,
      [retryAt, backupId],
    );
    return row && toBackup(row);
  }

  /** Records a failed object deletion and when to try again. */
  async deletionFailed(backupId: string, error: string, retryAt: number): Promise<BackupRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(
      `UPDATE backups SET delete_attempts = delete_attempts + 1, delete_error = ?, delete_after = ? WHERE id = ? AND status = 'deleting' RETURNING ${COLUMNS}`,
      [error.slice(0, 2000), retryAt, backupId],
    );
    return row && toBackup(row);
  }

  /** Deletions due for a try (a row marked by an older server without a retry time counts as due). */
  async dueDeletions(now: number, limit = 100): Promise<BackupRow[]> {
    const rows = await this.#ctx.db.query<Raw>(
      `SELECT ${COLUMNS} FROM backups WHERE status = 'deleting' AND (delete_after IS NULL OR delete_after <= ?) ORDER BY delete_after, id LIMIT ?`,
      [now, limit],
    );
    return rows.map(toBackup);
  }

  /** Takes a due deletion for one try (moves its retry time on); false when another server took it first. */
  async claimRetry(row: BackupRow, retryAt: number): Promise<boolean> {
    const changed = await this.#ctx.db.exec(
      `UPDATE backups SET delete_after = ? WHERE id = ? AND status = 'deleting' AND COALESCE(delete_after, -1) = ?`,
      [retryAt, row.id, row.deleteAfter ?? -1],
    );
    return changed === 1;
  }

  /** Rows whose deletion has not finished (of one site, or all), oldest first. */
  async pendingDeletions(siteId?: string): Promise<BackupRow[]> {
    const where = siteId === undefined ? '' : ' AND site_id = ?';
    const rows = await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM backups WHERE status = 'deleting'${where} ORDER BY created_at, id LIMIT 1000`, siteId === undefined ? [] : [siteId]);
    return rows.map(toBackup);
  }

  /** Every row stored under a provider. */
  async keysOf(storageId: string): Promise<StoredKey[]> {
    const rows = await this.#ctx.db.query<Raw>('SELECT id, site_id, key, status FROM backups WHERE storage_id = ?', [storageId]);
    return rows.map((r) => ({ id: str(r.id), siteId: str(r.site_id), key: str(r.key), status: str(r.status) }));
  }

  /** Object keys of uploads in progress under a provider (active jobs, and rows still uploading). */
  async keysInProgress(storageId: string): Promise<Set<string>> {
    const jobs = await this.#ctx.db.query<Raw>(
      `SELECT upload_key FROM jobs WHERE storage_id = ? AND upload_key IS NOT NULL AND state IN ('queued', 'claimed', 'running')`,
      [storageId],
    );
    const rows = await this.#ctx.db.query<Raw>(`SELECT key FROM backups WHERE storage_id = ? AND status = 'uploading'`, [storageId]);
    return new Set([...jobs.map((r) => str(r.upload_key)), ...rows.map((r) => str(r.key))]);
  }
}
