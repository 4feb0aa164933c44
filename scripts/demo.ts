// The demo behind scripts/demo.sh: a real WordPress site (made once) backed up to the local
// MinIO with the real CLI and its live progress bar, then a download link and the restore
// command. MariaDB and MinIO were started by scripts/lib/services.sh, which wrote their
// addresses and generated credentials to a 0600 descriptor.
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createDemoSite } from '../src/wordpress/demo-site.ts';

const home = process.env.WPBACKUP_TEST_HOME ?? '/var/tmp/wpbackup-test';
const svc = JSON.parse(readFileSync(join(home, 'services.json'), 'utf8')) as {
  mysql: { host: string; port: number };
  minio: { endpoint: string; accessKey: string; secretKey: string; region: string };
};
const { values } = parseArgs({ options: { site: { type: 'string' }, bucket: { type: 'string', default: 'wpbackup-demo' } } });
const demoDir = '/var/lib/wpbackup/demo-site';
const env = { ...process.env, AWS_ENDPOINT_URL: svc.minio.endpoint, AWS_ACCESS_KEY_ID: svc.minio.accessKey, AWS_SECRET_ACCESS_KEY: svc.minio.secretKey, AWS_REGION: svc.minio.region };

function adminSql(sql: string): void {
  const r = spawnSync('mariadb', [`--defaults-extra-file=${join(home, 'mysql-admin.cnf')}`], { input: sql, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`MariaDB: ${r.stderr.trim()}`);
}

async function ensureDemoSite(): Promise<string> {
  if (existsSync(join(demoDir, 'wp-config.php'))) return demoDir;
  const password = randomBytes(18).toString('base64url');
  adminSql(`DROP DATABASE IF EXISTS wpbackup_demo; CREATE DATABASE wpbackup_demo CHARACTER SET utf8mb4;
    CREATE OR REPLACE USER 'wpbackup_demo'@'localhost' IDENTIFIED BY '${password}';
    CREATE OR REPLACE USER 'wpbackup_demo'@'%' IDENTIFIED BY '${password}';
    GRANT ALL ON wpbackup_demo.* TO 'wpbackup_demo'@'localhost'; GRANT ALL ON wpbackup_demo.* TO 'wpbackup_demo'@'%';`);
  console.log(`Creating a demo WordPress site in ${demoDir} ...`);
  await createDemoSite({ dir: demoDir, db: { host: svc.mysql.host, port: svc.mysql.port, name: 'wpbackup_demo', user: 'wpbackup_demo', password }, siteUrl: 'http://demo.wpbackup.local', title: 'wpbackup demo', posts: 25, media: 12, mediaBytes: 2 << 20 });
  writeFileSync(join(demoDir, 'wp-content', 'uploads', '.demo'), 'made by scripts/demo.sh\n');
  return demoDir;
}

async function ensureBucket(bucket: string): Promise<void> {
  const s3 = new S3Client({ endpoint: svc.minio.endpoint, region: svc.minio.region, forcePathStyle: true, credentials: { accessKeyId: svc.minio.accessKey, secretAccessKey: svc.minio.secretKey } });
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  }
  s3.destroy();
}

const site = values.site ?? (await ensureDemoSite());
await ensureBucket(values.bucket as string);
const cli = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const dest = `s3://${values.bucket}`;
console.log(`Backing up ${site} to ${dest} on the local MinIO (${svc.minio.endpoint})\n`);
const child = spawn(process.execPath, [cli, 'backup', '--site', site, '--to', dest, '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
let result: { key?: string; location?: string; sha256?: string } = {};
const { TtyProgress, LineProgress } = await import('../src/cli/render.ts');
const bar = process.stderr.isTTY ? new TtyProgress(process.stderr) : new LineProgress(process.stderr);
const { createInterface } = await import('node:readline');
createInterface({ input: child.stdout }).on('line', (line) => {
  const e = JSON.parse(line) as { type: string } & Record<string, unknown>;
  if (e.type === 'progress') bar.event(e as never);
  if (e.type === 'result') result = e as typeof result;
});
const code: number = await new Promise((r) => child.on('close', (c) => r(c ?? 1)));
if (code !== 0 && code !== 3) process.exit(code);
const { openStorage } = await import('../src/storage/open.ts');
const url = await openStorage(dest, { env }).presignGet(result.key as string, 3600);
console.log(`\nBackup stored at ${result.location}`);
console.log(`Download (valid 1 hour): ${url}`);
console.log(`Restore over the site:  AWS_ENDPOINT_URL=${svc.minio.endpoint} ... wpbackup restore ${result.location} --site ${site} --sha256 ${result.sha256 ?? ""} --force`);
console.log('  (a directory without wp-config.php needs the database named: --db-name, --db-user, --db-host, --db-password-file)');
console.log('Dashboard: arrives with the control server (wpbackup server); this demo uses the CLI alone.');
process.exit(code);
