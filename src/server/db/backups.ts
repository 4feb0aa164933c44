import { bool, newId, num, numOrNull, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// Stored archives. A row is created when the upload starts ('uploading'), completed with its
// size and sha256, and marked 'deleting' before its object is removed, so a crash between
// the two leaves a row to retry rather than an object nobody knows about.

export type BackupStatus = 'uploading' | 'completed' | 'failed' | 'deleting';

export interface BackupRow {
  id: string;
  siteId: string;
  storageId: string;
  jobId: string | null;
  key: string;
  filename: string;
  size: number | null;
  /** Bytes that went into the archive (dump plus files), when the agent reported them. */
  sourceBytes: number | null;
  sha256: string | null;
  status: BackupStatus;
  createdAt: number;
  /** Kept forever by retention (pinned by a user). */
  pinned: boolean;
  /** For a 'deleting' row whose object deletion failed: tries so far, the next try, the last error. */
  deleteAttempts: number;
  deleteAfter: number | null;
  deleteError: string | null;
}

export interface NewBackup {
  siteId: string;
  storageId: string;
  jobId?: string;
  key: string;
  filename: string;
}

export const COLUMNS = 'id, site_id, storage_id, job_id, key, filename, size, source_bytes, sha256, status, created_at, pinned, delete_attempts, delete_after, delete_error';

export function toBackup(r: Raw): BackupRow {
  return {
    id: str(r.id),
    siteId: str(r.site_id),
    storageId: str(r.storage_id),
    jobId: strOrNull(r.job_id),
    key: str(r.key),
    filename: str(r.filename),
    size: numOrNull(r.size),
    sourceBytes: numOrNull(r.source_bytes),
    sha256: strOrNull(r.sha256),
    status: r.status as BackupStatus,
    createdAt: num(r.created_at),
    pinned: bool(r.pinned),
    deleteAttempts: num(r.delete_attempts ?? 0),
    deleteAfter: numOrNull(r.delete_after),
    deleteError: strOrNull(r.delete_error),
  };
}

export class BackupsRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  async create(b: NewBackup): Promise<BackupRow> {
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO backups (id, site_id, storage_id, job_id, key, filename, status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'uploading', ?) RETURNING ${COLUMNS}`,
      [newId(), b.siteId, b.storageId, b.jobId, b.key, b.filename, this.#ctx.now()],
    );
    return toBackup(row as Raw);
  }

  /** The uncompressed bytes behind a backup, reported when its job ends. */
  async setSourceBytes(id: string, bytes: number): Promise<boolean> {
    return (await this.#ctx.db.exec('UPDATE backups SET source_bytes = ? WHERE id = ?', [bytes, id])) === 1;
  }

  async complete(id: string, r: { size: number; sha256: string; sourceBytes?: number | null }): Promise<BackupRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(
      `UPDATE backups SET status = 'completed', size = ?, sha256 = ?, source_bytes = ? WHERE id = ? AND status = 'uploading' RETURNING ${COLUMNS}`,
      [r.size, r.sha256, r.sourceBytes, id],
    );
    return row && toBackup(row);
  }

  async markFailed(id: string): Promise<boolean> {
    return (await this.#ctx.db.exec(`UPDATE backups SET status = 'failed' WHERE id = ? AND status = 'uploading'`, [id])) === 1;
  }

  /** Step one of a delete; then remove the object, then remove(). */
  async markDeleting(id: string): Promise<BackupRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`UPDATE backups SET status = 'deleting' WHERE id = ? RETURNING ${COLUMNS}`, [id]);
    return row && toBackup(row);
  }

  /** Removes the row, and the site's pointer to it if it was the last backup. */
  async remove(id: string): Promise<boolean> {
    return this.#ctx.db.transaction(async (tx) => {
      await tx.exec('UPDATE sites SET last_backup_id = NULL WHERE last_backup_id = ?', [id]);
      return (await tx.exec('DELETE FROM backups WHERE id = ?', [id])) === 1;
    });
  }

  async get(id: string): Promise<BackupRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM backups WHERE id = ?`, [id]);
    return row && toBackup(row);
  }

  /** Newest first; `before` (created_at) pages back. */
  async listBySite(siteId: string, opts: { limit?: number; before?: number } = {}): Promise<BackupRow[]> {
    const rows = await this.#ctx.db.query<Raw>(
      `SELECT ${COLUMNS} FROM backups WHERE site_id = ? AND created_at < ? ORDER BY created_at DESC, id DESC LIMIT ?`,
      [siteId, opts.before ?? Number.MAX_SAFE_INTEGER, opts.limit ?? 100],
    );
    return rows.map(toBackup);
  }

  /** The completed backup a job's upload recorded, if any. */
  async completedForJob(job: { id: string; siteId: string }): Promise<BackupRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM backups WHERE site_id = ? AND job_id = ? AND status = 'completed'`, [job.siteId, job.id]);
    return row && toBackup(row);
  }

  async latestCompleted(siteId: string): Promise<BackupRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(
      `SELECT ${COLUMNS} FROM backups WHERE site_id = ? AND status = 'completed' ORDER BY created_at DESC, id DESC LIMIT 1`,
      [siteId],
    );
    return row && toBackup(row);
  }

  /** Bytes stored for the site (completed backups, and ones whose delete has not finished). */
  async usageBySite(siteId: string): Promise<number> {
    const row = await this.#ctx.db.get<Raw>(`SELECT COALESCE(SUM(size), 0) AS bytes FROM backups WHERE site_id = ? AND status IN ('completed', 'deleting')`, [siteId]);
    return num(row?.bytes);
  }

  async usageByNode(nodeId: string): Promise<number> {
    const row = await this.#ctx.db.get<Raw>(
      `SELECT COALESCE(SUM(b.size), 0) AS bytes FROM backups b JOIN sites s ON s.id = b.site_id WHERE s.node_id = ? AND b.status IN ('completed', 'deleting')`,
      [nodeId],
    );
    return num(row?.bytes);
  }

  /**
   * Archive bytes per source byte over completed backups (of one site, or of all): the quota
   * estimate for a site without a backup yet is its size times this. undefined when unknown.
   */
  async compressionRatio(siteId?: string): Promise<number | undefined> {
    const where = `status = 'completed' AND size IS NOT NULL AND source_bytes > 0${siteId === undefined ? '' : ' AND site_id = ?'}`;
    const row = await this.#ctx.db.get<Raw>(`SELECT SUM(size) AS packed, SUM(source_bytes) AS source FROM backups WHERE ${where}`, siteId === undefined ? [] : [siteId]);
    const [packed, source] = [Number(row?.packed ?? 0), Number(row?.source ?? 0)];
    return source > 0 ? packed / source : undefined;
  }
}
