import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { badInput, failure } from '../errors.ts';
import { HashTap } from '../hash-tap.ts';
import { LocalStorage } from '../storage/local.ts';
import type { CompletedPart } from '../storage/multipart.ts';
import { S3ServerMultipart, type ServerMultipart } from '../storage/s3-multipart-server.ts';
import { ApiError } from './api-error.ts';
import type { ServerContext } from './context.ts';
import type { JobRow } from './db/jobs.ts';
import type { StorageProviderRow } from './db/storage-providers.ts';
import { storageRegistry } from './storage-registry.ts';

// Where an agent's archive goes, seen from the server. The agent holds no storage
// credentials: the server creates the multipart upload, hands out one signed URL per part,
// completes it and checks the object. S3 parts go straight to the bucket; for a local
// provider the URLs point back at this server (PUT /api/v1/agent/uploads/{token}/parts/{n}),
// which keeps the parts under the data dir and joins them into the object on completion.

export const PART_URL_SECONDS = 3600;
const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;

export interface JobStorage {
  provider: StorageProviderRow;
  multipart: ServerMultipart;
  close(): void;
}

/** The provider a job stores into: the one recorded on it, else the default. */
export async function providerForJob(ctx: ServerContext, job: Pick<JobRow, 'storageId'>): Promise<StorageProviderRow> {
  // Without a provider of its own, the registry's default (it creates a local one on first need).
  const provider = job.storageId ? await ctx.repos.storageProviders.get(job.storageId) : await storageRegistry(ctx).defaultProvider();
  if (!provider) {
    throw new ApiError(409, 'no_storage', job.storageId ? `Storage provider ${job.storageId} no longer exists` : 'No default storage provider is configured; an admin must add one');
  }
  return provider;
}

/** The server-side multipart handle for a job's storage. Close it when done. */
export async function storageForJob(ctx: ServerContext, job: Pick<JobRow, 'storageId'>): Promise<JobStorage> {
  const provider = await providerForJob(ctx, job);
  return storageForProvider(ctx, provider);
}

export async function storageForProvider(ctx: ServerContext, provider: StorageProviderRow): Promise<JobStorage> {
  if (provider.type === 's3') {
    const credentials = await ctx.repos.storageProviders.credentials(provider.id);
    if (!credentials || !provider.bucket) throw new ApiError(409, 'storage_misconfigured', `Storage provider "${provider.name}" lacks a bucket or credentials`);
    const mp = new S3ServerMultipart({
      endpoint: provider.endpoint ?? undefined, region: provider.region ?? 'us-east-1', bucket: provider.bucket, prefix: provider.prefix,
      forcePathStyle: provider.pathStyle || !!provider.endpoint, credentials,
    });
    return { provider, multipart: mp, close: () => mp.close() };
  }
  const root = provider.rootPath ?? join(ctx.config.dataDir, 'backups');
  return { provider, multipart: new LocalServerMultipart(ctx, root), close: () => {} };
}

/** Records the object key and storage chosen when the job was handed out. */
export async function recordJobTarget(ctx: ServerContext, job: JobRow, storageId: string | null, key: string): Promise<void> {
  await ctx.db.exec('UPDATE jobs SET upload_key = ?, storage_id = COALESCE(storage_id, ?), updated_at = ? WHERE id = ? AND claimed_by = ?', [key, storageId, Date.now(), job.id, job.claimedBy]);
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
  constructor(token: PartToken) {
    super(413, 'upload_limit', `Part ${token.n} may hold at most ${token.maxBytes} bytes, the size its URL was signed for`);
    this.token = token;
  }
}

// ---- local providers: parts under <data dir>/uploads/<upload id>/, URLs back to us ----

export interface PartToken {
  u: string;
  n: number;
  /** The most bytes this part may hold: the size its URL was signed for. */
  maxBytes: number;
}

const UPLOAD_ID = /^[0-9a-f]{32}$/;

function uploadsDir(ctx: ServerContext, uploadId: string): string {
  if (!UPLOAD_ID.test(uploadId)) throw badInput(`Upload id ${JSON.stringify(uploadId)} is not one of ours`);
  return join(ctx.config.dataDir, 'uploads', uploadId);
}

export class LocalServerMultipart implements ServerMultipart {
  readonly location: string;
  private readonly ctx: ServerContext;
  private readonly storage: LocalStorage;

  constructor(ctx: ServerContext, root: string) {
    this.ctx = ctx;
    this.storage = new LocalStorage(root);
    this.location = this.storage.location;
  }

  async create(_key: string): Promise<string> {
    await this.storage.preflight();
    const id = randomBytes(16).toString('hex');
    const dir = uploadsDir(this.ctx, id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // The key that signs this upload's part URLs; it never leaves the server.
    await writeFile(join(dir, SECRET_FILE), randomBytes(32).toString('hex'), { mode: 0o600 });
    return id;
  }

  async presignParts(_key: string, uploadId: string, partNumbers: number[], expiresInSeconds: number, partSize = MAX_PART_BYTES): Promise<Record<string, string>> {
    const secret = await readSecret(this.ctx, uploadId);
    if (!secret) throw new ApiError(409, 'no_upload', `Upload ${uploadId} does not exist (aborted or already completed)`);
    const urls: Record<string, string> = {};
    const base = this.ctx.config.publicUrl.replace(/\/+$/, '');
    const expires = (Date.now() + expiresInSeconds * 1000).toString(36);
    const size = Math.min(partSize, MAX_PART_BYTES).toString(36);
    for (const n of partNumbers) {
      urls[String(n)] = `${base}/api/v1/agent/uploads/${uploadId}.${expires}.${size}.${sign(secret, uploadId, expires, n, size)}/parts/${n}`;
    }
    return urls;
  }

  async complete(key: string, uploadId: string, parts: CompletedPart[], expect: { size: number; sha256: string }): Promise<void> {
    const dir = uploadsDir(this.ctx, uploadId);
    try {
      await stat(dir);
    } catch {
      throw new ApiError(409, 'no_upload', `Upload ${uploadId} does not exist (aborted or already completed)`);
    }
    for (const p of parts) {
      const etag = await readFile(join(dir, `${p.partNumber}.etag`), 'utf8').catch(() => undefined);
      if (etag === undefined) throw invalidParts(`Part ${p.partNumber} was never uploaded`);
      if (etag !== p.etag) throw invalidParts(`Part ${p.partNumber}'s ETag does not match what was stored`);
    }
    const body = concatParts(dir, parts.map((p) => p.partNumber));
    const put = await this.storage.put(key, body);
    if (put.size !== expect.size || put.sha256 !== expect.sha256) {
      await this.storage.delete(key);
      throw invalidParts(`The joined parts hold ${put.size} bytes with sha256 ${put.sha256}, but ${expect.size} bytes with sha256 ${expect.sha256} were reported; the object was removed`);
    }
    await rm(dir, { recursive: true, force: true });
  }

  async abort(_key: string, uploadId: string): Promise<void> {
    await rm(uploadsDir(this.ctx, uploadId), { recursive: true, force: true });
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    const info = await this.storage.head(key);
    return info && { size: info.size };
  }

  delete(key: string): Promise<void> {
    return this.storage.delete(key);
  }
}

function invalidParts(message: string): ApiError {
  return new ApiError(400, 'validation', message);
}

function concatParts(dir: string, numbers: number[]): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  void (async () => {
    try {
      for (const n of numbers) await pipeline(createReadStream(join(dir, `${n}.part`), { highWaterMark: 1 << 20 }), out, { end: false });
      out.end();
    } catch (err) {
      out.destroy(err as Error);
    }
  })();
  return out;
}

const SECRET_FILE = 'url.key';

function sign(secret: string, uploadId: string, expires: string, n: number, size: string): string {
  return createHmac('sha256', secret).update(`${uploadId}.${expires}.${n}.${size}`).digest('base64url');
}

async function readSecret(ctx: ServerContext, uploadId: string): Promise<string | undefined> {
  return readFile(join(uploadsDir(ctx, uploadId), SECRET_FILE), 'utf8').catch(() => undefined);
}

/** Checks a part URL's token (<upload id>.<expiry>.<max bytes>.<hmac>); 403 for anything forged, expired or for another part. */
export async function openPartToken(ctx: ServerContext, token: string, partNumber: number): Promise<PartToken> {
  const refused = (why: string): ApiError => new ApiError(403, 'forbidden', `This part URL ${why}; ask the server for a new one`);
  const [u = '', expires = '', size = '', mac = ''] = token.split('.');
  if (!UPLOAD_ID.test(u) || !/^[0-9a-z]{1,12}$/.test(expires) || !/^[0-9a-z]{1,12}$/.test(size)) throw refused('is not valid');
  const secret = await readSecret(ctx, u);
  if (!secret) throw refused('is for an upload that no longer exists');
  const want = Buffer.from(sign(secret, u, expires, partNumber, size));
  const got = Buffer.from(mac);
  if (want.length !== got.length || !timingSafeEqual(want, got)) throw refused('is not valid for this part');
  if (Date.now() > parseInt(expires, 36)) throw refused('has expired');
  return { u, n: partNumber, maxBytes: parseInt(size, 36) };
}

/**
 * Streams one part to <upload dir>/<n>.part (fsynced, renamed into place); returns its ETag.
 * Stops at the size the URL was signed for (413): the job's byte budget was spent on that.
 */
export async function storeLocalPart(ctx: ServerContext, token: PartToken, body: Readable): Promise<string> {
  const dir = uploadsDir(ctx, token.u);
  try {
    await stat(dir);
  } catch {
    body.resume();
    throw new ApiError(404, 'not_found', `Upload ${token.u} does not exist (aborted or already completed)`);
  }
  const temp = join(dir, `${token.n}.part.${randomBytes(4).toString('hex')}.tmp`);
  const file = await open(temp, 'wx', 0o600);
  const tap = new HashTap();
  let tooBig = false;
  try {
    let seen = 0;
    const limit = new Transform({
      transform(c: Buffer, _enc, done) {
        seen += c.length;
        if (seen > token.maxBytes) {
          tooBig = true;
          done(new Error('part too large'));
        } else done(null, c);
      },
    });
    await pipeline(body, limit, tap, file.createWriteStream({ flush: true }));
  } catch (err) {
    await rm(temp, { force: true });
    if (tooBig) throw new PartTooLarge(token);
    throw failure(`Storing part ${token.n} failed: ${(err as Error).message}`, err);
  }
  const etag = `"${tap.sha256()}"`;
  await rename(temp, join(dir, `${token.n}.part`));
  await writeFile(join(dir, `${token.n}.etag`), etag, { mode: 0o600 });
  return etag;
}

/** Part files left by uploads nobody completed or aborted (for an operator's clean-up). */
export async function localUploadIds(ctx: ServerContext): Promise<string[]> {
  return (await readdir(join(ctx.config.dataDir, 'uploads')).catch(() => [] as string[])).filter((n) => UPLOAD_ID.test(n));
}
