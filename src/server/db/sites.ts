import { badInput } from '../../errors.ts';
import { assignments, json, newId, num, numOrNull, paddedIds, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// WordPress sites and their live backup state (the spec's status fields). The state is
// written by the job lifecycle (jobs.ts, job-endings.ts) and by agents' progress reports
// (job-report.ts).

export type SiteStatus = 'idle' | 'running' | 'completed' | 'failed' | 'stopped';

export interface BackupState {
  status: SiteStatus;
  progress: number;
  stage: string | null;
  stageDetail: string | null;
  error: string | null;
  startedAt: number | null;
  finishedAt: number | null;
  currentJobId: string | null;
  lastBackupId: string | null;
}

export interface SiteRow extends BackupState {
  id: string;
  nodeId: string;
  name: string;
  wpPath: string;
  dbName: string | null;
  excludes: string[];
  quotaBytes: number | null;
  /** Database plus wp-content as last measured; null until an agent reports it. */
  sizeBytes: number | null;
  scheduleCron: string | null;
  retentionCount: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface NewSite {
  nodeId: string;
  name: string;
  wpPath: string;
  dbName?: string | null;
  excludes?: string[];
  quotaBytes?: number | null;
  sizeBytes?: number | null;
  scheduleCron?: string | null;
  retentionCount?: number | null;
}

export type SitePatch = Partial<Omit<NewSite, 'nodeId'>>;

export interface Progress {
  progress: number;
  stage: string | null;
  stageDetail: string | null;
}

export interface SiteFilter {
  nodeId?: string;
  /** Only sites this user is assigned, directly or through their node. */
  visibleTo?: string;
  limit?: number;
  /** Only with limit. */
  offset?: number;
}

const STATE_COLUMNS = 'status, progress, stage, stage_detail, error, started_at, finished_at, current_job_id, last_backup_id';
export const SITE_COLUMNS = `id, node_id, name, wp_path, db_name, excludes, quota_bytes, size_bytes, schedule_cron, retention_count, created_at, updated_at, ${STATE_COLUMNS}`;

function toState(r: Raw): BackupState {
  return {
    status: r.status as SiteStatus,
    progress: num(r.progress),
    stage: strOrNull(r.stage),
    stageDetail: strOrNull(r.stage_detail),
    error: strOrNull(r.error),
    startedAt: numOrNull(r.started_at),
    finishedAt: numOrNull(r.finished_at),
    currentJobId: strOrNull(r.current_job_id),
    lastBackupId: strOrNull(r.last_backup_id),
  };
}

export function toSite(r: Raw): SiteRow {
  return {
    id: str(r.id),
    nodeId: str(r.node_id),
    name: str(r.name),
    wpPath: str(r.wp_path),
    dbName: strOrNull(r.db_name),
    excludes: json<string[]>(r.excludes, []),
    quotaBytes: numOrNull(r.quota_bytes),
    sizeBytes: numOrNull(r.size_bytes),
    scheduleCron: strOrNull(r.schedule_cron),
    retentionCount: numOrNull(r.retention_count),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    ...toState(r),
  };
}

export function checkProgress(progress: number): void {
  if (!Number.isInteger(progress) || progress < 0 || progress > 100) throw badInput(`Progress ${progress} is not a whole number from 0 to 100`);
}

export class SitesRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  /** A ConflictError: 'reference' for an unknown node, 'duplicate' for a path the node already has. */
  async create(s: NewSite): Promise<SiteRow> {
    const now = this.#ctx.now();
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO sites (id, node_id, name, wp_path, db_name, excludes, quota_bytes, size_bytes, schedule_cron, retention_count, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${SITE_COLUMNS}`,
      [newId(), s.nodeId, s.name, s.wpPath, s.dbName, JSON.stringify(s.excludes ?? []), s.quotaBytes, s.sizeBytes, s.scheduleCron, s.retentionCount, now, now],
    );
    return toSite(row as Raw);
  }

  async get(id: string): Promise<SiteRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${SITE_COLUMNS} FROM sites WHERE id = ?`, [id]);
    return row && toSite(row);
  }

  /**
   * The sites with these ids (unknown ones are left out), in one query (db/coalesced-reads.ts
   * gathers them; 64 at most).
   */
  async getMany(ids: readonly string[]): Promise<SiteRow[]> {
    if (ids.length === 0) return [];
    const padded = paddedIds(ids);
    const rows = await this.#ctx.db.query<Raw>(`SELECT ${SITE_COLUMNS} FROM sites WHERE id IN (${padded.marks})`, padded.ids);
    return rows.map(toSite);
  }

  async list(f: SiteFilter = {}): Promise<SiteRow[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (f.nodeId !== undefined) {
      where.push('node_id = ?');
      params.push(f.nodeId);
    }
    if (f.visibleTo !== undefined) {
      where.push('(id IN (SELECT site_id FROM user_sites WHERE user_id = ?) OR node_id IN (SELECT node_id FROM user_nodes WHERE user_id = ?))');
      params.push(f.visibleTo, f.visibleTo);
    }
    if (f.limit !== undefined) params.push(f.limit, f.offset ?? 0);
    const sql = `SELECT ${SITE_COLUMNS} FROM sites ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY name, id ${f.limit !== undefined ? 'LIMIT ? OFFSET ?' : ''}`;
    return (await this.#ctx.db.query<Raw>(sql, params)).map(toSite);
  }

  async update(id: string, patch: SitePatch): Promise<SiteRow | undefined> {
    const values = { ...patch, excludes: patch.excludes && JSON.stringify(patch.excludes), updatedAt: this.#ctx.now() };
    const set = assignments(values, {
      name: 'name', wpPath: 'wp_path', dbName: 'db_name', excludes: 'excludes', quotaBytes: 'quota_bytes', sizeBytes: 'size_bytes',
      scheduleCron: 'schedule_cron', retentionCount: 'retention_count', updatedAt: 'updated_at',
    });
    const row = await this.#ctx.db.get<Raw>(`UPDATE sites SET ${set.sql} WHERE id = ? RETURNING ${SITE_COLUMNS}`, [...set.params, id]);
    return row && toSite(row);
  }

  /** Jobs go with the site; backups must be deleted first (ConflictError 'reference'). */
  async remove(id: string): Promise<boolean> {
    return (await this.#ctx.db.exec('DELETE FROM sites WHERE id = ?', [id])) === 1;
  }

  /** The status endpoint's read: one primary-key lookup of the state columns. */
  async backupState(id: string): Promise<BackupState | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${STATE_COLUMNS} FROM sites WHERE id = ?`, [id]);
    return row && toState(row);
  }

  async count(): Promise<number> {
    return num((await this.#ctx.db.get<Raw>('SELECT COUNT(*) AS n FROM sites'))?.n);
  }
}
