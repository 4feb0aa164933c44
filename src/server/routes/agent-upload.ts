import type { Static } from '@sinclair/typebox';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { MAX_PARTS, PartUrlsRequest, PartUrlsResponse, UploadAbortResponse, UploadCompleteRequest, UploadCompleteResponse, UploadStartResponse } from '../../api/types.ts';
import { WpbError } from '../../errors.ts';
import { PART_URL_SECONDS, PartTooLarge, openPartToken, storageForJob, storeLocalPart, type JobStorage } from '../agent-uploads.ts';
import { ApiError, invalid, toApiError } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import type { JobRow } from '../db/jobs.ts';
import { defineRoute } from '../route.ts';
import { errorResponses, ok } from './error-responses.ts';
import { failOverLimit, grantParts, recordUpload, uploadLimit } from '../services/quota.ts';
import { completedBackupOf, jobParams, leasedJob } from './agent-common.ts';

// Multipart upload of a job's archive through presigned part URLs. The server creates,
// completes and aborts the upload with its own credentials; the agent only PUTs parts, each
// to a URL signed for its size, and only as many as the job's byte limit allows
// (services/quota.ts: remaining quota plus a margin; past it, 413 and the job fails).

const partsSchema = { params: jobParams, body: PartUrlsRequest } as const;

const completeSchema = { params: jobParams, body: UploadCompleteRequest } as const;

const jobOnly = { params: jobParams } as const;

type Id = Static<typeof jobParams>;
type Q = Record<string, string>;

async function withStorage<T>(ctx: ServerContext, job: JobRow, fn: (s: JobStorage) => Promise<T>): Promise<T> {
  const s = await storageForJob(ctx, job);
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

function backupJob(job: JobRow): { key: string } {
  if (job.type !== 'backup') throw new ApiError(409, 'conflict', `Job ${job.id} is a ${job.type} job and uploads nothing`);
  if (!job.uploadKey) throw new ApiError(409, 'conflict', `Job ${job.id} has no object key; poll for it again`);
  return { key: job.uploadKey };
}

function started(job: JobRow): { key: string; uploadId: string } {
  const { key } = backupJob(job);
  if (!job.uploadId) throw new ApiError(409, 'conflict', `Job ${job.id} has no upload yet; call /upload/start first`);
  return { key, uploadId: job.uploadId };
}

/** Storage refusing what it was sent (bad part, bad ETag) is the agent's mistake: 400. */
function asClientError(err: unknown, what: string): unknown {
  if (err instanceof ApiError) return err;
  const status = (err as { cause?: { $metadata?: { httpStatusCode?: number } } })?.cause?.$metadata?.httpStatusCode;
  if ((err instanceof WpbError && err.kind === 'bad_input') || status === 400) return new ApiError(400, 'validation', `${what}: ${(err as Error).message}`);
  return err;
}

/** A local part went past the size its URL was signed for: the job it belongs to fails, its upload aborted. */
async function failUploadOf(ctx: ServerContext, err: PartTooLarge): Promise<unknown> {
  const job = await ctx.repos.jobs.byUploadId(err.token.u);
  if (!job?.claimedBy || (job.state !== 'claimed' && job.state !== 'running')) return err;
  return failOverLimit(ctx, job, job.claimedBy, `${err.message} (job ${job.id})`);
}

export function registerAgentUploadRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, Id, Q, UploadStartResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/agent/jobs/:id/upload/start',
    auth: 'node',
    summary: "Create the multipart upload for the job's archive",
    tags: ['agent'],
    schema: { ...jobOnly, response: { ...ok(UploadStartResponse, 'The multipart upload, started'), ...errorResponses({ 404: 'No such job' }, { 409: 'The job is not this agent\'s to run, or uploads nothing' }) } },
    handler: async ({ params, principal }) => {
      const { job, nodeId } = await leasedJob(ctx, principal, params.id);
      const { key } = backupJob(job);
      return withStorage(ctx, job, async (s) => {
        // A retried start replaces the first upload, which must not linger.
        if (job.uploadId) await s.multipart.abort(key, job.uploadId).catch(() => undefined);
        const uploadId = await s.multipart.create(key);
        if (!(await ctx.repos.jobs.setUpload(job.id, nodeId, { storageId: s.provider.id, uploadKey: key, uploadId }))) {
          await s.multipart.abort(key, uploadId).catch(() => undefined);
          throw new ApiError(409, 'conflict', `Job ${job.id} is no longer this agent's to run`);
        }
        return { upload_id: uploadId };
      });
    },
  });

  defineRoute<PartUrlsRequest, Id, Q, PartUrlsResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/agent/jobs/:id/upload/parts',
    auth: 'node',
    summary: 'Presigned URLs (valid 1 hour) to PUT the given parts to, each signed for part_size bytes; only the parts within the job\'s byte limit (remaining quota plus a margin) get one. 413 (upload_limit) when none fits: the job fails and its upload is aborted',
    tags: ['agent'],
    schema: { ...partsSchema, response: { ...ok(PartUrlsResponse, 'A presigned URL per part'), ...errorResponses({ 400: 'Malformed request, or part_size missing where a byte limit applies' }, { 404: 'No such job' }, { 409: 'The job is not this agent\'s to run, or has no upload' }, { 413: 'No part fits the job\'s byte limit (upload_limit): the job fails' }) } },
    handler: async ({ body, params, principal }) => {
      const { job, nodeId } = await leasedJob(ctx, principal, params.id);
      const { key, uploadId } = started(job);
      const limit = await uploadLimit(ctx, job);
      if (limit.bytes === null) {
        return withStorage(ctx, job, async (s) => ({ urls: await s.multipart.presignParts(key, uploadId, body.part_numbers, PART_URL_SECONDS, body.part_size) }));
      }
      if (body.part_size === undefined) throw invalid(`part_size is required: job ${job.id} may upload at most ${limit.bytes} bytes (${limit.why}), so each part URL is signed for its size`);
      const granted = await grantParts(ctx, job, uploadId, body.part_numbers, body.part_size, limit.bytes);
      if (granted.length === 0) {
        const n = Math.min(...body.part_numbers);
        throw await failOverLimit(ctx, job, nodeId, `part ${n} of ${body.part_size} bytes would take job ${job.id} past its limit of ${limit.bytes} bytes (${limit.why})`);
      }
      return withStorage(ctx, job, async (s) => ({ urls: await s.multipart.presignParts(key, uploadId, granted, PART_URL_SECONDS, body.part_size) }));
    },
  });

  defineRoute<UploadCompleteRequest, Id, Q, UploadCompleteResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/agent/jobs/:id/upload/complete',
    auth: 'node',
    summary: "Complete the upload; the stored size must match and fit the job's byte limit (413 upload_limit: the object is removed and the job fails). Records the backup",
    tags: ['agent'],
    schema: { ...completeSchema, response: { ...ok(UploadCompleteResponse, 'The backup, recorded'), ...errorResponses({ 400: 'Malformed request, or the parts or size do not match what was stored' }, { 404: 'No such job' }, { 409: 'The job is not this agent\'s to run, or has no upload' }, { 413: 'The archive is past the job\'s byte limit (upload_limit): the job fails' }) } },
    handler: async ({ body, params, principal }) => {
      const { job, nodeId } = await leasedJob(ctx, principal, params.id);
      const done = await completedBackupOf(ctx, job);
      if (done) return { backup_id: done.id }; // a retried complete whose first answer was lost
      const { key, uploadId } = started(job);
      const parts = body.parts.map((p) => ({ partNumber: p.part_number, etag: p.etag })).sort((a, b) => a.partNumber - b.partNumber);
      if (parts.some((p, i) => i > 0 && parts[i - 1]?.partNumber === p.partNumber)) throw new ApiError(400, 'validation', 'Each part number may appear once');
      return withStorage(ctx, job, async (s) => {
        try {
          await s.multipart.complete(key, uploadId, parts, { size: body.size, sha256: body.sha256 });
        } catch (err) {
          throw asClientError(err, 'The storage refused to complete the upload');
        }
        const head = await s.multipart.head(key);
        if (!head || head.size !== body.size) {
          await s.multipart.delete(key).catch(() => undefined);
          throw new ApiError(400, 'size_mismatch', `The stored object holds ${head?.size ?? 'no'} bytes but ${body.size} were reported; it was removed, run the backup again`);
        }
        // The limit is checked where the backup is recorded: as the node's backups stand at that moment.
        const recorded = await recordUpload(ctx, job, { storageId: s.provider.id, key, size: head.size, sha256: body.sha256 });
        if ('over' in recorded) {
          await s.multipart.delete(key).catch(() => undefined);
          const { bytes, why } = recorded.over;
          throw await failOverLimit(ctx, job, nodeId, `the archive holds ${head.size} bytes, more than job ${job.id}'s limit of ${bytes} bytes (${why}); the object was removed`);
        }
        return { backup_id: recorded.backupId };
      });
    },
  });

  defineRoute<unknown, Id, Q, UploadAbortResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/agent/jobs/:id/upload/abort',
    auth: 'node',
    summary: 'Abort the incomplete upload of the job',
    tags: ['agent'],
    schema: { ...jobOnly, response: { ...ok(UploadAbortResponse, 'Whether an upload was aborted'), ...errorResponses({ 404: 'No such job' }, { 409: 'The job is not this agent\'s to run, has no upload, or its upload is complete' }) } },
    handler: async ({ params, principal }) => {
      const { job } = await leasedJob(ctx, principal, params.id);
      if (!job.uploadId || !job.uploadKey) return { aborted: false };
      if (await completedBackupOf(ctx, job)) throw new ApiError(409, 'conflict', `Job ${job.id}'s upload is already complete`);
      const { key, uploadId } = started(job);
      await withStorage(ctx, job, (s) => s.multipart.abort(key, uploadId));
      return { aborted: true };
    },
  });

  // Part uploads for local storage providers: the URL's sealed token is the only credential.
  void app.register(async (scope) => {
    const passThrough = (_req: unknown, payload: Readable, done: (err: Error | null, body?: unknown) => void): void => done(null, payload);
    scope.addContentTypeParser('application/octet-stream', passThrough);
    scope.addContentTypeParser('*', passThrough);
    scope.route<{ Params: { token: string; n: string } }>({
      method: 'PUT',
      url: '/api/v1/agent/uploads/:token/parts/:n',
      schema: { hide: true },
      handler: async (request, reply) => {
        try {
          const n = Number(request.params.n);
          if (!/^\d{1,5}$/.test(request.params.n) || n < 1 || n > MAX_PARTS) throw new ApiError(400, 'validation', `Part number ${request.params.n} is not 1 to ${MAX_PARTS}`);
          const token = await openPartToken(ctx, request.params.token, n);
          const body = (request.body as Readable | undefined) ?? request.raw;
          const etag = await storeLocalPart(ctx, token, body);
          return reply.code(200).header('etag', etag).send({ etag });
        } catch (caught) {
          (request.body as Readable | undefined)?.resume?.();
          const err = caught instanceof PartTooLarge ? await failUploadOf(ctx, caught) : caught;
          const { status, body, internal } = toApiError(err);
          if (internal) request.log.error({ err }, 'storing a part failed');
          return reply.code(status).header('connection', 'close').send(body);
        }
      },
    });
  });
}
