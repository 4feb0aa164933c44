import type { Readable } from 'node:stream';
import type { CompletedPart } from '../storage/multipart.ts';
import {
  LocalUploadError, localUploadIds as uploadIdsUnder, openPartToken as openToken, storeLocalPart as storePart, type PartToken,
} from '../storage/local-multipart-server.ts';
import type { ServerMultipart } from '../storage/server-multipart.ts';
import { ApiError } from './api-error.ts';
import type { ServerContext } from './context.ts';
import type { JobRow } from './db/jobs.ts';
import type { StorageProviderRow } from './db/storage-providers.ts';
import { ProviderUnusable, uploadsRoot } from './storage-factory.ts';

// Where an agent's archive goes, seen from the server. The agent holds no storage
// credentials: the server creates the multipart upload, hands out one signed URL per part,
// completes it and checks the object. S3 parts go straight to the bucket; for a local
// provider the URLs point back at this server (PUT /api/v1/agent/uploads/{token}/parts/{n}),
// which keeps the parts under the data dir and joins them into the object on completion
// (src/storage/local-multipart-server.ts). The handles come from the storage registry, so
// uploads address a provider exactly as its downloads do (storage-factory.ts); here the
// storage's refusals become HTTP answers.

export const PART_URL_SECONDS = 3600;

export interface JobStorage {
  provider: StorageProviderRow;
  multipart: ServerMultipart;
  close(): void;
}

/** The provider a job stores into: the one recorded on it, else the default. */
export async function providerForJob(ctx: ServerContext, job: Pick<JobRow, 'storageId'>): Promise<StorageProviderRow> {
  // Without a provider of its own, the registry's default (it creates a local one on first need).
  const provider = job.storageId ? await ctx.repos.storageProviders.get(job.storageId) : await ctx.storage.defaultProvider();
  if (!provider) {
    throw new ApiError(409, 'no_storage', job.storageId ? `Storage provider ${job.storageId} no longer exists` : 'No default storage provider is configured; an admin must add one');
  }
  return provider;
}

/** The server-side multipart handle for a job's storage. Close it when done. */
export async function storageForJob(ctx: ServerContext, job: Pick<JobRow, 'storageId'>): Promise<JobStorage> {
  const provider = await providerForJob(ctx, job);
  let mp: ServerMultipart;
  try {
    mp = await ctx.storage.multipart(provider);
  } catch (err) {
    if (err instanceof ProviderUnusable) throw new ApiError(409, 'storage_misconfigured', `Storage provider "${provider.name}" lacks a bucket or credentials`);
    throw err;
  }
  const multipart = new HttpErrors(mp);
  return { provider, multipart, close: () => multipart.close() };
}

/** Records the object key and storage chosen when the job was handed out. */
export async function recordJobTarget(ctx: ServerContext, job: JobRow, storageId: string | null, key: string): Promise<void> {
  await ctx.db.exec('UPDATE jobs SET upload_key = ?, storage_id = COALESCE(storage_id, ?), updated_at = ? WHERE id = ? AND claimed_by = ?', [key, storageId, ctx.now(), job.id, job.claimedBy]);
}

/** Aborts the incomplete multipart upload a job left, if any; errors are returned, not thrown. */
export async function abortJobUpload(ctx: ServerContext, job: JobRow): Promise<Error | undefined> {
  if (!job.uploadId || !job.uploadKey) return undefined;
  try {
    const s = await storageForJob(ctx, job);
    try {
      await s.multipart.abort(job.uploadKey, job.uploadId);
    } finally {
      s.close();
    }
    return undefined;
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

export class PartTooLarge extends ApiError {
  readonly token: PartToken;
  constructor(token: PartToken, message: string) {
    super(413, 'upload_limit', message);
    this.token = token;
  }
}

/** A local upload's refusal as the API answers it; anything else unchanged. */
function httpError(err: unknown, token?: PartToken): unknown {
  if (!(err instanceof LocalUploadError)) return err;
  switch (err.reason) {
    case 'no_upload':
      // A part PUT for a gone upload is a missing resource; a call on the job's upload, a conflict.
      return token ? new ApiError(404, 'not_found', err.message) : new ApiError(409, 'no_upload', err.message);
    case 'invalid_parts':
      return new ApiError(400, 'validation', err.message);
    case 'bad_token':
      return new ApiError(403, 'forbidden', err.message);
    case 'too_large':
      return token ? new PartTooLarge(token, err.message) : new ApiError(413, 'upload_limit', err.message);
  }
}

/** A ServerMultipart whose local refusals are ApiErrors. */
class HttpErrors implements ServerMultipart {
  readonly #inner: ServerMultipart;
  readonly location: string;

  constructor(inner: ServerMultipart) {
    this.#inner = inner;
    this.location = inner.location;
  }

  create(key: string): Promise<string> {
    return this.#inner.create(key).catch(rethrow);
  }

  presignParts(key: string, uploadId: string, partNumbers: number[], expiresInSeconds: number, partSize?: number): Promise<Record<string, string>> {
    return this.#inner.presignParts(key, uploadId, partNumbers, expiresInSeconds, partSize).catch(rethrow);
  }

  complete(key: string, uploadId: string, parts: CompletedPart[], expect: { size: number; sha256: string }): Promise<void> {
    return this.#inner.complete(key, uploadId, parts, expect).catch(rethrow);
  }

  abort(key: string, uploadId: string): Promise<void> {
    return this.#inner.abort(key, uploadId).catch(rethrow);
  }

  head(key: string): Promise<{ size: number } | undefined> {
    return this.#inner.head(key).catch(rethrow);
  }

  delete(key: string): Promise<void> {
    return this.#inner.delete(key).catch(rethrow);
  }

  close(): void {
    this.#inner.close();
  }
}

function rethrow(err: unknown): never {
  throw httpError(err);
}

/** Checks a part URL's token (<upload id>.<expiry>.<max bytes>.<hmac>); 403 for anything forged, expired or for another part. */
export async function openPartToken(ctx: ServerContext, token: string, partNumber: number): Promise<PartToken> {
  return openToken(uploadsRoot(ctx.config.dataDir), token, partNumber).catch(rethrow);
}

/**
 * Streams one part into its upload's directory; returns its ETag. 404 when the upload is gone,
 * PartTooLarge (413) past the size the URL was signed for.
 */
export async function storeLocalPart(ctx: ServerContext, token: PartToken, body: Readable): Promise<string> {
  try {
    return await storePart(uploadsRoot(ctx.config.dataDir), token, body);
  } catch (err) {
    throw httpError(err, token);
  }
}

/** Part files left by uploads nobody completed or aborted (for an operator's clean-up). */
export async function localUploadIds(ctx: ServerContext): Promise<string[]> {
  return uploadIdsUnder(uploadsRoot(ctx.config.dataDir));
}
