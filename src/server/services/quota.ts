import { abortJobUpload } from '../agent-uploads.ts';
import { ApiError } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import { lockRow } from '../db/db.ts';
import type { Queryable } from '../db/db.ts';
import type { JobRow } from '../db/jobs.ts';
import type { Repos } from '../db/repos.ts';

// How many bytes a job may upload: its site's and its node's remaining quota (the smaller),
// plus config.uploadMarginBytes; no limit when neither has a quota. The server cannot see
// bytes going to a presigned S3 URL, so it bounds what it signs: each part URL is signed for
// one size (S3 checks Content-Length against the signature; local part uploads stop at it),
// and the sizes signed for a job's upload (job_upload_parts, migration 5) may not sum past the
// limit. /upload/complete checks the stored object against the limit too, and records the
// backup in the same transaction, with the node locked: two jobs of one node completing at
// once are counted one after the other, so together they cannot pass the quota. A job that
// goes past it fails with the reason, and its multipart upload is aborted.

export interface UploadLimit {
  /** Bytes the job may upload; null: no quota applies. */
  bytes: number | null;
  /** Where the number comes from, for messages. */
  why: string;
}

/** The limit as the stored backups stand; inside a transaction that locked the node, as they stay. */
export async function uploadLimit(ctx: ServerContext, job: JobRow, repos: Repos = ctx.repos): Promise<UploadLimit> {
  const site = await repos.sites.get(job.siteId);
  const node = await repos.nodes.get(job.nodeId);
  const margin = ctx.config.uploadMarginBytes;
  const room: { bytes: number; why: string }[] = [];
  if (site?.quotaBytes != null) {
    const left = Math.max(0, site.quotaBytes - (await repos.backups.usageBySite(site.id)));
    room.push({ bytes: left, why: `site ${site.name}'s remaining quota of ${left} bytes` });
  }
  if (node?.quotaBytes != null) {
    const left = Math.max(0, node.quotaBytes - (await repos.backups.usageByNode(node.id)));
    room.push({ bytes: left, why: `node ${node.hostname}'s remaining quota of ${left} bytes` });
  }
  if (room.length === 0) return { bytes: null, why: 'no quota applies' };
  const tightest = room.reduce((a, b) => (b.bytes < a.bytes ? b : a));
  return { bytes: tightest.bytes + margin, why: `${tightest.why} plus a margin of ${margin} bytes` };
}

/**
 * Records that part URLs of sizes[i] were signed for numbers[i] (a part signed twice counts at
 * its largest size: an older URL stays valid), and returns the part numbers that fit in the
 * limit, lowest first. Runs in one transaction that locks the job, so concurrent requests on
 * any server cannot both spend the same bytes.
 */
export async function grantParts(ctx: ServerContext, job: JobRow, uploadId: string, numbers: number[], size: number, limit: number): Promise<number[]> {
  return ctx.db.transaction(async (tx) => {
    await lockRow(tx, 'jobs', job.id);
    const signed = await signedSizes(tx, job.id, uploadId);
    let total = [...signed.values()].reduce((a, b) => a + b, 0);
    const granted: number[] = [];
    for (const n of [...numbers].sort((a, b) => a - b)) {
      const before = signed.get(n) ?? 0;
      const after = Math.max(before, size);
      if (total - before + after > limit) break;
      total += after - before;
      signed.set(n, after);
      granted.push(n);
      await tx.exec(
        `INSERT INTO job_upload_parts (job_id, upload_id, part_number, size_bytes) VALUES (?, ?, ?, ?)
         ON CONFLICT (job_id, upload_id, part_number) DO UPDATE SET size_bytes = CASE WHEN excluded.size_bytes > job_upload_parts.size_bytes THEN excluded.size_bytes ELSE job_upload_parts.size_bytes END`,
        [job.id, uploadId, n, size],
      );
    }
    return granted;
  });
}

async function signedSizes(q: Queryable, jobId: string, uploadId: string): Promise<Map<number, number>> {
  const rows = await q.query<{ part_number: number; size_bytes: number }>('SELECT part_number, size_bytes FROM job_upload_parts WHERE job_id = ? AND upload_id = ?', [jobId, uploadId]);
  return new Map(rows.map((r) => [Number(r.part_number), Number(r.size_bytes)]));
}

export interface StoredUpload {
  storageId: string;
  key: string;
  size: number;
  sha256: string;
}

/** The backup recorded (or recorded already, by a retried complete), or the limit the upload passed. */
export type UploadRecord = { backupId: string } | { over: UploadLimit & { bytes: number } };

/**
 * /upload/complete after the object is stored and its size checked: in one transaction with
 * the job's node locked, checks the size against the limit as the node's backups stand now,
 * and records the completed backup. Deleting an object over the limit is the caller's part.
 */
export function recordUpload(ctx: ServerContext, job: JobRow, u: StoredUpload): Promise<UploadRecord> {
  return ctx.repos.transaction(async (repos, tx) => {
    await lockRow(tx, 'nodes', job.nodeId);
    const done = await repos.backups.completedForJob(job);
    if (done) return { backupId: done.id };
    const limit = await uploadLimit(ctx, job, repos);
    if (limit.bytes !== null && u.size > limit.bytes) return { over: { bytes: limit.bytes, why: limit.why } };
    const filename = u.key.split('/').pop() ?? u.key;
    const row = await repos.backups.create({ siteId: job.siteId, storageId: u.storageId, jobId: job.id, key: u.key, filename });
    await repos.backups.complete(row.id, { size: u.size, sha256: u.sha256 });
    return { backupId: row.id };
  });
}

/** The job ended: its signed part sizes are no longer needed (they would pile up, a row per part). */
export async function forgetSignedParts(db: Queryable, jobId: string): Promise<void> {
  await db.exec('DELETE FROM job_upload_parts WHERE job_id = ?', [jobId]);
}

/**
 * The job went past its limit: abort its upload, then in one transaction fail it with the
 * reason, forget its signed parts and audit it; return the 413 to answer with. The message
 * names the limit and where it comes from.
 */
export async function failOverLimit(ctx: ServerContext, job: JobRow, nodeId: string, message: string): Promise<ApiError> {
  const error = `The upload was refused: ${message}; the upload was aborted. Delete old backups or raise the quota, then run the backup again`;
  await abortJobUpload(ctx, job);
  const ended = await ctx.repos.transaction(async (repos, tx) => {
    const row = await repos.jobs.finish(job.id, nodeId, { state: 'failed', error });
    await forgetSignedParts(tx, job.id);
    await repos.audit.record({ nodeId, action: 'job.upload_refused', targetType: 'job', targetId: job.id, detail: { site_id: job.siteId, error } });
    return row;
  });
  ctx.events.publish(job.siteId);
  if (ended) ctx.jobEnded.emit(ended);
  return new ApiError(413, 'upload_limit', error);
}
