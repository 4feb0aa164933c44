import type { S3Client} from '@aws-sdk/client-s3';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand,
  HeadObjectCommand, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { failure, type WpbError } from '../errors.ts';
import { checkExpiry, validateKey } from './keys.ts';
import type { CompletedPart } from './multipart.ts';
import { explainS3Error, s3Client } from './s3.ts';
import type { S3StorageOptions } from './s3-options.ts';
import type { ServerMultipart } from './server-multipart.ts';

// ServerMultipart (server-multipart.ts) on S3: parts go straight to the bucket through
// presigned URLs. Its own S3 client, built from the same settings as S3Storage's.

const QUICK_TIMEOUT_MS = 10_000;

export class S3ServerMultipart implements ServerMultipart {
  readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly where: string;

  constructor(opts: S3StorageOptions) {
    this.bucket = opts.bucket;
    let prefix = opts.prefix ?? '';
    if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
    this.prefix = prefix;
    this.location = `s3://${this.bucket}/${this.prefix}`.replace(/\/$/, '');
    this.where = opts.endpoint ? new URL(opts.endpoint).origin : `AWS S3 (${opts.region})`;
    // The server's calls are few and have no retry loop of their own: let the SDK retry twice.
    this.client = s3Client(opts, 3);
  }

  async create(key: string): Promise<string> {
    validateKey(key);
    const res = await this.send(`starting the upload of "${key}"`, (abortSignal) =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.full(key), ContentType: 'application/octet-stream' }), { abortSignal }),
    );
    if (!res.UploadId) throw failure(`S3 at ${this.where} returned no upload id for "${key}"`);
    return res.UploadId;
  }

  async presignParts(key: string, uploadId: string, partNumbers: number[], expiresInSeconds: number, partSize?: number): Promise<Record<string, string>> {
    validateKey(key);
    checkExpiry(expiresInSeconds);
    const urls: Record<string, string> = {};
    for (const n of partNumbers) {
      // With ContentLength the signature covers content-length: S3 refuses any other size.
      const cmd = new UploadPartCommand({ Bucket: this.bucket, Key: this.full(key), UploadId: uploadId, PartNumber: n, ContentLength: partSize });
      urls[String(n)] = await getSignedUrl(this.client, cmd, { expiresIn: expiresInSeconds });
    }
    return urls;
  }

  async complete(key: string, uploadId: string, parts: CompletedPart[]): Promise<void> {
    validateKey(key);
    const Parts = parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag }));
    await this.send(`completing the upload of "${key}"`, (abortSignal) =>
      this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: this.full(key), UploadId: uploadId, MultipartUpload: { Parts } }), { abortSignal }),
      120_000,
    );
  }

  async abort(key: string, uploadId: string): Promise<void> {
    validateKey(key);
    try {
      await this.send(`aborting the upload of "${key}"`, (abortSignal) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.full(key), UploadId: uploadId }), { abortSignal }),
      );
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    validateKey(key);
    try {
      const res = await this.send(`checking "${key}"`, (abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) }), { abortSignal }));
      return { size: res.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    await this.send(`deleting "${key}"`, (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.full(key) }), { abortSignal }));
  }

  close(): void {
    this.client.destroy();
  }

  private full(key: string): string {
    return this.prefix + key;
  }

  private async send<T>(action: string, op: (signal: AbortSignal) => Promise<T>, timeoutMs = QUICK_TIMEOUT_MS): Promise<T> {
    try {
      return await op(AbortSignal.timeout(timeoutMs));
    } catch (err) {
      if (isNotFound(err)) throw err;
      throw this.explain(err, action);
    }
  }

  private explain(err: unknown, action: string): WpbError {
    return explainS3Error(err, { action, bucket: this.bucket, where: this.where, names: { accessKeyId: 'the storage provider\'s access key id', secretAccessKey: 'the storage provider\'s secret key', region: 'the storage provider\'s region', endpoint: 'the storage provider\'s endpoint', bucket: 'the storage provider\'s bucket' } });
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'NoSuchUpload' || e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}
