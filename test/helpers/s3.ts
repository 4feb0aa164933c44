import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client, AbortMultipartUploadCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { services } from './services.ts';

// Direct access to the test MinIO, to check what a backup left there.

let client: S3Client | undefined;

export function s3(): S3Client {
  const m = services().minio;
  client ??= new S3Client({ endpoint: m.endpoint, region: m.region, forcePathStyle: true, credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey } });
  return client;
}

export async function makeBucket(prefix = 'wpb-test'): Promise<string> {
  const name = `${prefix}-${randomBytes(5).toString('hex')}`;
  await s3().send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

export async function listKeys(bucket: string): Promise<string[]> {
  const r = await s3().send(new ListObjectsV2Command({ Bucket: bucket }));
  return (r.Contents ?? []).map((o) => o.Key ?? '');
}

/** Incomplete multipart uploads in the bucket: a clean run leaves none. */
export async function pendingUploads(bucket: string): Promise<{ key: string; id: string }[]> {
  const r = await s3().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (r.Uploads ?? []).map((u) => ({ key: u.Key ?? '', id: u.UploadId ?? '' }));
}

export async function removeBucket(bucket: string): Promise<void> {
  for (const u of await pendingUploads(bucket)) await s3().send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.key, UploadId: u.id }));
  const keys = await listKeys(bucket);
  if (keys.length) await s3().send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
  await s3().send(new DeleteBucketCommand({ Bucket: bucket }));
}
