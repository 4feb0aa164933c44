import { createReadStream, statSync } from 'node:fs';
import { openStorage } from '../src/storage/open.ts';

// floor (ii) again, with wpbackup's own uploader instead of the SDK's: the same part size and
// concurrency, and its transport choices (UNSIGNED-PAYLOAD on loopback and https), so the
// report can show how much of ours' lead over the SDK floor is the uploader itself.
// Usage: node bench/ours-upload.ts FILE BUCKET KEY  (S3 settings from the AWS_* variables)

async function main(): Promise<void> {
  const [file, bucket, key] = process.argv.slice(2);
  if (!file || !bucket || !key) throw new Error('usage: ours-upload.ts FILE BUCKET KEY');
  const storage = openStorage(`s3://${bucket}`, { env: process.env });
  const started = performance.now();
  const r = await storage.put(key, createReadStream(file, { highWaterMark: 1 << 20 }), { sizeHint: statSync(file).size });
  process.stdout.write(JSON.stringify({ bytes: r.size, seconds: (performance.now() - started) / 1000 }) + '\n');
}

if (import.meta.main) {
  // Exits at once, not when the client's idle keep-alive sockets time out.
  main().then(() => process.exit(0)).catch((err: unknown) => {
    process.stderr.write(`ours-upload: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
