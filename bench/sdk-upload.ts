import { createReadStream, statSync } from 'node:fs';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

// The upload step of the spec's pipeline and of the floor: one file to S3 with the AWS SDK's
// own multipart uploader, run as a child process so its CPU and memory are measured.
// Usage: node bench/sdk-upload.ts FILE BUCKET KEY  (S3 settings from the AWS_* variables)
// Part size and concurrency match wpbackup's uploader (8 MiB, 4 at once), so the comparison
// is of the pipelines, not of upload tuning.

export const PART_SIZE = 8 * 1024 * 1024;
export const QUEUE_SIZE = 4;

async function main(): Promise<void> {
  const [file, bucket, key] = process.argv.slice(2);
  if (!file || !bucket || !key) throw new Error('usage: sdk-upload.ts FILE BUCKET KEY');
  const env = process.env;
  if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) throw new Error('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set');
  const client = new S3Client({
    region: env.AWS_REGION ?? 'us-east-1',
    endpoint: env.AWS_ENDPOINT_URL,
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    // As wpbackup's client: no extra CRC checksums, which MinIO does not need.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const size = statSync(file).size;
  const started = performance.now();
  const upload = new Upload({
    client,
    params: { Bucket: bucket, Key: key, Body: createReadStream(file, { highWaterMark: 1 << 20 }), ContentType: 'application/octet-stream' },
    partSize: PART_SIZE,
    queueSize: QUEUE_SIZE,
    leavePartsOnError: false,
  });
  await upload.done();
  client.destroy();
  process.stdout.write(JSON.stringify({ bytes: size, seconds: (performance.now() - started) / 1000 }) + '\n');
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`sdk-upload: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
