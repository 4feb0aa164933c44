import type { Queryable } from './db.ts';
import { ConflictError, NotFoundError } from './errors.ts';
import { bool, newId, num, numOrNull, str, strOrNull } from './rows.ts';
import type { Raw } from './rows.ts';

// The jobs table's row type and insert, shared by the queue (jobs.ts) and the endings
// (job-endings.ts).

export type JobType = 'backup' | 'reset';
export type JobState = 'queued' | 'claimed' | 'running' | 'done' | 'failed' | 'cancelled';

/** A job holds its site while in one of these states (the jobs_one_active index). */
export const ACTIVE_STATES = "('queued', 'claimed', 'running')";
/** States in which an agent holds the job under a lease. */
export const LEASED_STATES = "('claimed', 'running')";

export interface JobRow {
  id: string;
  type: JobType;
  siteId: string;
  nodeId: string;
  state: JobState;
  claimedBy: string | null;
  leaseUntil: number | null;
  attempt: number;
  storageId: string | null;
  uploadKey: string | null;
  uploadId: string | null;
  cancelRequested: boolean;
  error: string | null;
  createdAt: number;
  updatedAt: number;
}

export const JOB_COLUMNS =
  'id, type, site_id, node_id, state, claimed_by, lease_until, attempt, storage_id, upload_key, upload_id, cancel_requested, error, created_at, updated_at';

export function toJob(r: Raw): JobRow {
  return {
    id: str(r.id),
    type: r.type as JobType,
    siteId: str(r.site_id),
    nodeId: str(r.node_id),
    state: r.state as JobState,
    claimedBy: strOrNull(r.claimed_by),
    leaseUntil: numOrNull(r.lease_until),
    attempt: num(r.attempt),
    storageId: strOrNull(r.storage_id),
    uploadKey: strOrNull(r.upload_key),
    uploadId: strOrNull(r.upload_id),
    cancelRequested: bool(r.cancel_requested),
    error: strOrNull(r.error),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  };
}

interface NewJob {
  type: JobType;
  siteId: string;
  storageId?: string;
  now: number;
  /** Return the live job of that type instead of failing on it. */
  orExisting?: boolean;
}

/** Inserts a job for the site's node; call inside a transaction. */
export async function insertJob(tx: Queryable, j: NewJob): Promise<JobRow> {
  const site = await tx.get<Raw>('SELECT node_id FROM sites WHERE id = ?', [j.siteId]);
  if (!site) throw new NotFoundError('Site', j.siteId);
  const row = await tx.get<Raw>(
    `INSERT INTO jobs (id, type, site_id, node_id, storage_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
     ${j.orExisting ? 'ON CONFLICT DO NOTHING' : ''} RETURNING ${JOB_COLUMNS}`,
    [newId(), j.type, j.siteId, str(site.node_id), j.storageId, j.now, j.now],
  );
  const existing = row ?? (await tx.get<Raw>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE site_id = ? AND type = ? AND state IN ${ACTIVE_STATES}`, [j.siteId, j.type]));
  if (!existing) throw new ConflictError('active_job', `Site ${j.siteId} has a ${j.type} job that could not be read back`);
  return toJob(existing);
}
