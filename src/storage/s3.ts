import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand,
  GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command,
  S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { WpbError, badInput, failure, stopped, throwIfStopped } from '../errors.ts';
import { checkExpiry, validateKey, validatePrefix } from './keys.ts';
import { messageOf, uploadMultipart } from './multipart.ts';
import type { CompletedPart, PartSink } from './multipart.ts';
import type { S3StorageOptions, SettingNames } from './s3-options.ts';
import { skipPayloadHash, unsignedPayloadOk } from './s3-payload.ts';
import type { ObjectInfo, PendingUpload, PutOptions, PutResult, Storage } from './storage.ts';

// S3 (and S3-compatible stores such as MinIO) as storage. put streams through our own
// multipart uploader; the SDK only sends single requests, with few retries and short
// connection timeouts so an unreachable endpoint fails in seconds.


const MIN_PART_SIZE = 5 * 1024 * 1024;
/**
 * Parts of S3's minimum size, four at a time (the AWS SDK's own upload defaults): every part
 * in flight is a buffer of its size, five of 8 MiB were 15 MB more RSS, and no faster.
 */
const PART_SIZE = MIN_PART_SIZE;
const CONCURRENCY = 4;
/** Requests that must not hang when the endpoint stops answering (HeadBucket, aborts). */
const QUICK_TIMEOUT_MS = 10_000;

/** The one way we build S3 clients, for the CLI's storage and for the server's multipart uploads. */
export function s3Client(opts: S3StorageOptions, maxAttempts: number): S3Client {
  return new S3Client({
    region: opts.region,
    endpoint: opts.endpoint,
    // Our settings are the only source: no endpoint from the environment or ~/.aws.
    ignoreConfiguredEndpointUrls: true,
    forcePathStyle: opts.forcePathStyle,
    credentials: opts.credentials,
    maxAttempts,
    requestHandler: { connectionTimeout: 5_000, socketTimeout: 60_000 },
    // No CRC checksum headers (the SDK's newer default): they trip some S3-compatible stores.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export class S3Storage implements Storage {
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly opts: S3StorageOptions;

  constructor(opts: S3StorageOptions) {
    this.opts = opts;
    this.bucket = opts.bucket;
    this.prefix = opts.prefix ?? '';
    if (this.prefix !== '' && !this.prefix.endsWith('/')) this.prefix += '/';
    this.location = `s3://${this.bucket}/${this.prefix}`.replace(/\/$/, '');
    if (opts.partSize !== undefined && opts.partSize < MIN_PART_SIZE) throw badInput(`S3 part size must be at least 5 MiB, not ${opts.partSize}`);
    // One SDK retry; the uploader retries parts itself with backoff.
    this.client = s3Client(opts, 2);
  }

  /** The endpoint for messages: the URL without path, or "AWS S3 (region)". */
  get where(): string {
    return this.opts.endpoint ? new URL(this.opts.endpoint).origin : `AWS S3 (${this.opts.region})`;
  }

  async preflight(): Promise<void> {
    try {
      await quick((abortSignal) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }));
    } catch (err) {
      if (isNotFound(err) && !requestIdOf(err)) {
        // Real S3 servers tag every answer with a request id; a bare 404 is some other server.
        throw failure(`${this.where} does not answer like an S3 server (HTTP 404 without a request id)`, err, `Check ${this.opts.names?.endpoint ?? 'AWS_ENDPOINT_URL'}`);
      }
      if (isNotFound(err)) throw this.explain(Object.assign(new Error('NoSuchBucket'), { name: 'NoSuchBucket', cause: err }), 'checking the bucket');
      // A HEAD answer has no body, so a 403 does not say why; a GET does.
      if (statusOf(err) === 403) throw this.explain(await this.whyForbidden(err), 'checking the bucket');
      throw this.explain(err, 'checking the bucket');
    }
  }

  private async whyForbidden(headErr: unknown): Promise<unknown> {
    try {
      await quick((abortSignal) => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, MaxKeys: 1 }), { abortSignal }));
      return headErr;
    } catch (err) {
      return err;
    }
  }

  async put(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    try {
      validateKey(key);
      throwIfStopped(opts.signal);
      const sink = await this.startUpload(key, opts);
      const result = await uploadMultipart(body, sink, {
        partSize: this.opts.partSize ?? PART_SIZE, sizeHint: opts.sizeHint, concurrency: this.opts.concurrency ?? CONCURRENCY,
        signal: opts.signal, onProgress: opts.onProgress,
      });
      await this.checkStored(key, result.size);
      return { key, size: result.size, sha256: result.sha256 };
    } catch (err) {
      body.destroy();
      throw this.explain(err, `uploading "${key}"`);
    }
  }

  /** Creates the multipart upload and reports its id before any part is sent. */
  private async startUpload(key: string, opts: PutOptions): Promise<S3PartSink> {
    // Not cancelled by a stop: that could leave an upload whose id we never learn. The
    // uploader notices the stop right after and aborts the upload.
    const create = new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.fullKey(key), ContentType: 'application/octet-stream' });
    const created = await quick((abortSignal) => this.client.send(create, { abortSignal }));
    if (!created.UploadId) throw failure(`S3 at ${this.where} returned no upload id for "${key}"`);
    const sink = new S3PartSink(this.client, this.bucket, this.fullKey(key), created.UploadId, (err) => this.explain(err, `uploading "${key}"`), unsignedPayloadOk(this.opts.endpoint));
    try {
      await opts.onUploadStarted?.({ backend: 's3', key, uploadId: created.UploadId });
    } catch (err) {
      await sink.abort().catch(() => undefined);
      throw err;
    }
    return sink;
  }

  /** The stored size must be what we sent; otherwise the object is removed. */
  private async checkStored(key: string, size: number): Promise<void> {
    const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
    if (head.ContentLength === size) return;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
    throw failure(`S3 at ${this.where} stored ${head.ContentLength} bytes for "${key}" but ${size} were sent`, undefined, 'The object was removed; run the backup again');
  }

  async get(key: string, opts: { signal?: AbortSignal } = {}): Promise<Readable> {
    validateKey(key);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }), { abortSignal: opts.signal });
      if (!(res.Body instanceof Readable)) throw failure(`S3 at ${this.where} returned no body for "${key}"`);
      return res.Body;
    } catch (err) {
      if (isNotFound(err)) throw badInput(`No object "${key}" in ${this.location}`, 'Check the key or the destination', err);
      throw this.explain(err, `downloading "${key}"`);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
      return { key, size: res.ContentLength ?? 0, modified: res.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err) && errName(err) !== 'NoSuchBucket') return undefined;
      throw this.explain(err, `checking "${key}"`);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validatePrefix(prefix);
    const found: ObjectInfo[] = [];
    let token: string | undefined;
    try {
      do {
        const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.fullKey(prefix), ContinuationToken: token }));
        for (const o of res.Contents ?? []) {
          if (o.Key === undefined) continue;
          found.push({ key: o.Key.slice(this.prefix.length), size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) });
        }
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.explain(err, `listing "${prefix}"`);
    }
    return found; // S3 lists in UTF-8 byte order already, the order Storage promises.
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
    } catch (err) {
      if (isNotFound(err) && errName(err) !== 'NoSuchBucket') return;
      throw this.explain(err, `deleting "${key}"`);
    }
  }

  async presignGet(key: string, expiresInSeconds: number): Promise<string> {
    validateKey(key);
    checkExpiry(expiresInSeconds);
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }), { expiresIn: expiresInSeconds });
  }

  async abortPending(pending: PendingUpload): Promise<void> {
    validateKey(pending.key);
    if (pending.backend !== 's3') throw badInput(`Pending upload of "${pending.key}" was not started on S3`, 'Clean it up with the storage that started it');
    const sink = new S3PartSink(this.client, this.bucket, this.fullKey(pending.key), pending.uploadId, (err) => this.explain(err, `cleaning up the upload of "${pending.key}"`));
    await sink.abort();
  }

  /** Incomplete multipart uploads under prefix (keys without our prefix). */
  async listPendingUploads(prefix: string): Promise<PendingUpload[]> {
    validatePrefix(prefix);
    const found: PendingUpload[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    try {
      do {
        // No Prefix: MinIO only matches it against whole keys, so we filter here instead.
        const res = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, KeyMarker: keyMarker, UploadIdMarker: idMarker }));
        for (const u of res.Uploads ?? []) {
          if (u.Key?.startsWith(this.fullKey(prefix)) && u.UploadId) found.push({ backend: 's3', key: u.Key.slice(this.prefix.length), uploadId: u.UploadId });
        }
        [keyMarker, idMarker] = res.IsTruncated ? [res.NextKeyMarker, res.NextUploadIdMarker] : [undefined, undefined];
      } while (keyMarker);
    } catch (err) {
      throw this.explain(err, 'listing incomplete uploads');
    }
    return found;
  }

  /** Closes the connections; the storage cannot be used afterwards. */
  close(): void {
    this.client.destroy();
  }

  private fullKey(key: string): string {
    return this.prefix + key;
  }

  private explain(err: unknown, action: string): WpbError {
    return explainS3Error(err, { action, bucket: this.bucket, where: this.where, names: this.opts.names });
  }
}

/** Parts go straight to S3 with our credentials. */
class S3PartSink implements PartSink {
  private readonly client: S3Client;
  private readonly target: { Bucket: string; Key: string; UploadId: string };
  private readonly explain: (err: unknown) => WpbError;
  private readonly unsignedPayload: boolean;

  constructor(client: S3Client, bucket: string, key: string, uploadId: string, explain: (err: unknown) => WpbError, unsignedPayload = false) {
    this.client = client;
    this.target = { Bucket: bucket, Key: key, UploadId: uploadId };
    this.explain = explain;
    this.unsignedPayload = unsignedPayload;
  }

  async uploadPart(partNumber: number, body: Buffer, signal: AbortSignal): Promise<string> {
    // No Content-MD5: a signed payload (plain http across a network) covers the part's sha256,
    // TLS or the loopback interface protect it otherwise (s3-payload.ts), and one more hash of
    // every byte cost measurable CPU on small servers.
    const cmd = new UploadPartCommand({ ...this.target, PartNumber: partNumber, Body: body, ContentLength: body.length });
    try {
      const res = await this.client.send(this.unsignedPayload ? skipPayloadHash(cmd) : cmd, { abortSignal: signal });
      if (!res.ETag) throw failure(`S3 returned no ETag for part ${partNumber}`);
      return res.ETag;
    } catch (err) {
      throw this.explain(err);
    }
  }

  async complete(parts: CompletedPart[]): Promise<void> {
    const Parts = parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag }));
    try {
      await this.client.send(new CompleteMultipartUploadCommand({ ...this.target, MultipartUpload: { Parts } }));
    } catch (err) {
      throw this.explain(err);
    }
  }

  async abort(): Promise<void> {
    try {
      await quick((abortSignal) => this.client.send(new AbortMultipartUploadCommand(this.target), { abortSignal }));
    } catch (err) {
      if (isNotFound(err)) return; // NoSuchUpload: already gone
      throw this.explain(err);
    }
  }
}

// --- Turning SDK errors into messages that name the thing to fix ---

interface ErrorContext {
  action: string;
  bucket: string;
  where: string;
  names: Partial<SettingNames> | undefined;
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'timed out',
  TimeoutError: 'timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed',
  ECONNABORTED: 'connection aborted',
  CERT_HAS_EXPIRED: 'TLS certificate expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed TLS certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'untrusted TLS certificate',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS certificate does not match the host',
};

export function explainS3Error(err: unknown, ctx: ErrorContext): WpbError {
  if (err instanceof WpbError) return err;
  if (errName(err) === 'AbortError') return stopped();
  const n = { accessKeyId: 'AWS_ACCESS_KEY_ID', secretAccessKey: 'AWS_SECRET_ACCESS_KEY', sessionToken: 'AWS_SESSION_TOKEN', region: 'AWS_REGION', endpoint: 'AWS_ENDPOINT_URL', bucket: 'the bucket in the destination', ...ctx.names };
  const bucket = `S3 bucket "${ctx.bucket}"`;
  switch (errName(err)) {
    case 'NoSuchBucket':
      return badInput(`${bucket} does not exist at ${ctx.where}`, `Create it or fix ${n.bucket}`, err);
    case 'InvalidAccessKeyId':
      return badInput(`S3 at ${ctx.where} does not know the access key id used for ${bucket}`, `Check ${n.accessKeyId}`, err);
    case 'SignatureDoesNotMatch':
      return badInput(`S3 at ${ctx.where} rejected the request signature for ${bucket}: the secret key does not match the access key id`, `Check ${n.secretAccessKey}`, err);
    case 'ExpiredToken': case 'InvalidToken': case 'TokenRefreshRequired':
      return badInput(`S3 at ${ctx.where} rejected the session token for ${bucket}`, `Renew ${n.sessionToken}, or unset it for long-term keys`, err);
    case 'AuthorizationHeaderMalformed': case 'PermanentRedirect': case 'IllegalLocationConstraintException':
      return badInput(`${bucket} at ${ctx.where} is in another region than ${n.region} says`, `Fix ${n.region}`, err);
  }
  if (errName(err) === 'AccessDenied' || statusOf(err) === 403) {
    return badInput(`Access denied to ${bucket} at ${ctx.where} while ${ctx.action}`, `Check that the key in ${n.accessKeyId} may read and write the bucket`, err);
  }
  const network = networkReason(err);
  if (network) return failure(`Cannot reach S3 at ${ctx.where} while ${ctx.action}: ${network}`, err, `Check ${n.endpoint} and that the server is up`);
  return failure(`S3 at ${ctx.where} failed while ${ctx.action}: ${messageOf(err)}`, err);
}

/** A readable reason when err (or its causes, or an AggregateError's errors) is a network error. */
function networkReason(err: unknown, depth = 0): string | undefined {
  if (typeof err !== 'object' || err === null || depth > 5) return undefined;
  const e = err as { code?: string; name?: string; cause?: unknown; errors?: unknown[] };
  const reason = NETWORK_CODES[e.code ?? ''] ?? NETWORK_CODES[e.name ?? ''];
  if (reason) return reason;
  for (const inner of [e.cause, ...(e.errors ?? [])]) {
    const found = networkReason(inner, depth + 1);
    if (found) return found;
  }
  return undefined;
}

interface SdkMetadata {
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

export function statusOf(err: unknown): number | undefined {
  return (err as SdkMetadata | undefined)?.$metadata?.httpStatusCode;
}

function requestIdOf(err: unknown): string | undefined {
  return (err as SdkMetadata | undefined)?.$metadata?.requestId;
}

/** Runs a request that must answer within QUICK_TIMEOUT_MS; running out is a TimeoutError, not a stop. */
async function quick<T>(send: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const signal = AbortSignal.timeout(QUICK_TIMEOUT_MS);
  try {
    return await send(signal);
  } catch (err) {
    if (!signal.aborted) throw err;
    throw Object.assign(new Error(`no answer within ${QUICK_TIMEOUT_MS / 1000} s`), { name: 'TimeoutError', cause: err });
  }
}

function isNotFound(err: unknown): boolean {
  const name = errName(err);
  return statusOf(err) === 404 || name === 'NotFound' || name === 'NoSuchKey' || name === 'NoSuchUpload';
}

function errName(err: unknown): string | undefined {
  return (err as { name?: string } | undefined)?.name;
}
