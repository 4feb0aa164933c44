import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { openStorage } from '../../src/storage/open.ts';
import { S3Storage } from '../../src/storage/s3.ts';
import { parseS3Destination, s3StorageOptions } from '../../src/storage/s3-config.ts';
import { services } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait.ts';
import { storageConformance } from './conformance.ts';

// S3Storage against the MinIO that scripts/test-services.sh started. Every run makes its
// own bucket and removes it afterwards.

const MiB = 1024 * 1024;

function minioEnv(): NodeJS.ProcessEnv {
  const m = services().minio;
  return { AWS_ENDPOINT_URL: m.endpoint, AWS_ACCESS_KEY_ID: m.accessKey, AWS_SECRET_ACCESS_KEY: m.secretKey, AWS_REGION: m.region };
}

function storageFor(dest: string, env: NodeJS.ProcessEnv = minioEnv()): S3Storage {
  return new S3Storage({ ...s3StorageOptions(dest, { env }), partSize: 5 * MiB, concurrency: 4 });
}

/** A fresh bucket, and a cleanup that empties and removes it. */
async function makeBucket(): Promise<{ bucket: string; remove: () => Promise<void> }> {
  const m = services().minio;
  const bucket = `wpb-test-${randomBytes(4).toString('hex')}`;
  const client = new S3Client({ endpoint: m.endpoint, region: m.region, forcePathStyle: true, credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey } });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const remove = async (): Promise<void> => {
    const whole = storageFor(`s3://${bucket}`);
    for (const p of await whole.listPendingUploads('')) await whole.abortPending(p);
    for (const o of await whole.list('')) await whole.delete(o.key);
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    whole.close();
    client.destroy();
  };
  return { bucket, remove };
}

/** A local port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

async function listening(srv: Server): Promise<number> {
  srv.listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  return (srv.address() as AddressInfo).port;
}

storageConformance('s3 (MinIO)', async () => {
  const { bucket, remove } = await makeBucket();
  const storage = storageFor(`s3://${bucket}/conformance/run`);
  const whole = storageFor(`s3://${bucket}`);
  return {
    storage,
    pendingUploads: async () => (await whole.listPendingUploads('')).length,
    cleanup: async () => {
      storage.close();
      whole.close();
      await remove();
    },
  };
});

describe('S3Storage errors and extras (MinIO)', () => {
  let bucket: string;
  let remove: () => Promise<void>;
  before(async () => ({ bucket, remove } = await makeBucket()));
  after(() => remove());

  it('keeps the prefix out of listed keys and out of the caller’s sight', async () => {
    const s = storageFor(`s3://${bucket}/deep/prefix/`);
    await s.put('a.txt', Readable.from([Buffer.from('a')]));
    assert.deepEqual((await s.list('')).map((o) => o.key), ['a.txt']);
    assert.equal((await storageFor(`s3://${bucket}`).head('deep/prefix/a.txt'))?.size, 1);
    assert.equal(s.location, `s3://${bucket}/deep/prefix`);
  });

  it('lists pending uploads under a prefix', async () => {
    const s = storageFor(`s3://${bucket}/pending/area`);
    const body = new Readable({ read() {} });
    let started = false;
    const put = s.put('sub/file.bin', body, { onUploadStarted: () => void (started = true) });
    put.catch(() => undefined);
    await waitFor('the upload to start', async () => started);
    const pending = await s.listPendingUploads('sub/');
    assert.deepEqual(pending.map((p) => [p.backend, p.key]), [['s3', 'sub/file.bin']]);
    assert.deepEqual(await s.listPendingUploads('other/'), []);
    assert.deepEqual(await storageFor(`s3://${bucket}/elsewhere`).listPendingUploads(''), []);
    body.destroy(new Error('gone'));
    await assert.rejects(put);
    assert.deepEqual(await s.listPendingUploads(''), []);
  });

  it('refuses a wrong secret key with bad_input naming AWS_SECRET_ACCESS_KEY, never the secret', async () => {
    const secret = `wrong-${randomBytes(8).toString('hex')}`;
    const s = storageFor(`s3://${bucket}`, { ...minioEnv(), AWS_SECRET_ACCESS_KEY: secret });
    const attempts = [(): Promise<unknown> => s.preflight(), () => s.put('x', Readable.from([Buffer.from('x')])), () => s.list('')];
    for (const attempt of attempts) {
      await assert.rejects(attempt(), (err: Error & { kind?: string; hint?: string }) => {
        assert.equal(err.kind, 'bad_input');
        assert.match(err.hint ?? '', /AWS_SECRET_ACCESS_KEY/);
        assert.ok(!`${err.message} ${err.hint}`.includes(secret));
        return true;
      });
    }
  });

  it('refuses an unknown access key id with bad_input naming AWS_ACCESS_KEY_ID', async () => {
    const s = storageFor(`s3://${bucket}`, { ...minioEnv(), AWS_ACCESS_KEY_ID: 'no-such-key-id' });
    await assert.rejects(s.preflight(), { kind: 'bad_input', hint: 'Check AWS_ACCESS_KEY_ID' });
  });

  it('refuses an unknown bucket with bad_input naming it and the endpoint', async () => {
    const s = storageFor('s3://wpb-no-such-bucket');
    const named = (err: Error & { kind?: string }): boolean => {
      assert.equal(err.kind, 'bad_input');
      assert.equal(err.message, `S3 bucket "wpb-no-such-bucket" does not exist at ${services().minio.endpoint}`);
      return true;
    };
    await assert.rejects(s.preflight(), named);
    await assert.rejects(s.put('x', Readable.from([Buffer.from('x')])), named);
  });

  it('fails within seconds when the endpoint is unreachable, pointing at AWS_ENDPOINT_URL', async () => {
    const s = storageFor(`s3://${bucket}`, { ...minioEnv(), AWS_ENDPOINT_URL: `http://127.0.0.1:${await closedPort()}` });
    const t0 = Date.now();
    const expected = { kind: 'failed', message: /connection refused/, hint: /AWS_ENDPOINT_URL/ };
    await assert.rejects(s.preflight(), expected);
    const body = Readable.from([Buffer.from('x')]);
    await assert.rejects(s.put('x', body), expected);
    assert.ok(body.destroyed);
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  });

  it('times out preflight against an endpoint that never answers', async () => {
    const silent = createServer(() => undefined);
    const s = storageFor(`s3://${bucket}`, { ...minioEnv(), AWS_ENDPOINT_URL: `http://127.0.0.1:${await listening(silent)}` });
    const t0 = Date.now();
    await assert.rejects(s.preflight(), { kind: 'failed', message: /timed out/, hint: /AWS_ENDPOINT_URL/ });
    assert.ok(Date.now() - t0 < 12_000);
    s.close();
    silent.close();
  });

  it('tells an endpoint that is not S3 from a missing bucket', async () => {
    const web = createHttpServer((_req, res) => res.writeHead(404).end());
    const s = storageFor(`s3://${bucket}`, { ...minioEnv(), AWS_ENDPOINT_URL: `http://127.0.0.1:${await listening(web)}` });
    await assert.rejects(s.preflight(), { kind: 'failed', message: /does not answer like an S3 server/ });
    s.close();
    web.close();
  });

  it('presigned URLs stop working when tampered with or expired', async () => {
    const s = storageFor(`s3://${bucket}`);
    await s.put('signed.bin', Readable.from([Buffer.from('secret bytes')]));
    const url = new URL(await s.presignGet('signed.bin', 60));
    assert.equal((await fetch(url)).status, 200);
    const sig = url.searchParams.get('X-Amz-Signature') ?? '';
    const tampered = new URL(url);
    tampered.searchParams.set('X-Amz-Signature', `${sig.slice(0, -1)}${sig.endsWith('0') ? '1' : '0'}`);
    assert.equal((await fetch(tampered)).status, 403);
    const otherKey = new URL(url);
    otherKey.pathname = otherKey.pathname.replace('signed.bin', 'other.bin');
    assert.equal((await fetch(otherKey)).status, 403);
    const short = await s.presignGet('signed.bin', 1);
    // Refused once its second has passed (S3 counts whole seconds).
    await waitFor('the 1-second URL to expire', async () => (await fetch(short)).status === 403, { ms: 10_000, every: 200 });
  });

  it('leaves nothing behind when stopped with parts in flight', async () => {
    const s = storageFor(`s3://${bucket}/inflight`);
    for (const delay of [0, 30, 120]) {
      const ctl = new AbortController();
      const endless = new Readable({ read() { this.push(randomBytes(256 * 1024)); } });
      const put = s.put('stopped.bin', endless, { signal: ctl.signal, onUploadStarted: () => void setTimeout(() => ctl.abort(), delay) });
      await assert.rejects(put, { kind: 'stopped' });
      assert.ok(endless.destroyed);
    }
    await sleep(200); // a part the server was still receiving must not revive the upload
    assert.deepEqual(await s.listPendingUploads(''), []);
    assert.equal(await s.head('stopped.bin'), undefined);
  });

  it('treats aborting an unknown upload as done', async () => {
    const s = storageFor(`s3://${bucket}`);
    await s.abortPending({ backend: 's3', key: 'never/started', uploadId: 'bm8tc3VjaC11cGxvYWQ' });
    await assert.rejects(s.abortPending({ backend: 'local', key: 'x', uploadId: 'y' }), { kind: 'bad_input' });
  });

  it('reads settings from a private JSON file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpb-s3cfg-'));
    try {
      const m = services().minio;
      const file = join(dir, 's3.json');
      await writeFile(file, JSON.stringify({ endpoint: m.endpoint, region: m.region, accessKeyId: m.accessKey, secretAccessKey: m.secretKey }), { mode: 0o600 });
      await openStorage(`s3://${bucket}`, { env: {}, s3ConfigFile: file }).preflight();
      await openStorage(`s3://${bucket}`, { env: { WPBACKUP_S3_CONFIG: file } }).preflight();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('S3 settings', () => {
  const creds = { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'very-secret-value' };

  it('parses s3://bucket[/prefix]', () => {
    assert.deepEqual(parseS3Destination('s3://my-bucket'), { bucket: 'my-bucket', prefix: '' });
    assert.deepEqual(parseS3Destination('s3://my-bucket/'), { bucket: 'my-bucket', prefix: '' });
    assert.deepEqual(parseS3Destination('s3://my.bucket/a/b/'), { bucket: 'my.bucket', prefix: 'a/b/' });
    for (const bad of ['s3://', 's3://Upper', 's3://ab', 's3://b_x/y', 's3://bucket/a//b', 's3://bucket/../x', 's3:/bucket']) {
      assert.throws(() => parseS3Destination(bad), { kind: 'bad_input' }, bad);
    }
  });

  it('reads the standard AWS variables, defaulting the region and path style', () => {
    const aws = s3StorageOptions('s3://b-1/p', { env: creds });
    assert.equal(aws.region, 'us-east-1');
    assert.equal(aws.endpoint, undefined);
    assert.equal(aws.forcePathStyle, false);
    assert.deepEqual(aws.credentials, { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'very-secret-value' });
    const custom = s3StorageOptions('s3://b-1', { env: { ...creds, AWS_ENDPOINT_URL: 'http://minio:9000/', AWS_DEFAULT_REGION: 'eu-west-1', AWS_SESSION_TOKEN: 'tok' } });
    assert.equal(custom.endpoint, 'http://minio:9000');
    assert.equal(custom.region, 'eu-west-1');
    assert.equal(custom.forcePathStyle, true);
    assert.equal(custom.credentials.sessionToken, 'tok');
    const s3Specific = s3StorageOptions('s3://b-1', { env: { ...creds, AWS_ENDPOINT_URL: 'http://a:1', AWS_ENDPOINT_URL_S3: 'https://b:2', AWS_REGION: 'r1', AWS_DEFAULT_REGION: 'r2', WPBACKUP_S3_PATH_STYLE: 'false' } });
    assert.equal(s3Specific.endpoint, 'https://b:2');
    assert.equal(s3Specific.region, 'r1');
    assert.equal(s3Specific.forcePathStyle, false);
    assert.equal(s3Specific.names.endpoint, 'AWS_ENDPOINT_URL_S3');
  });

  it('names the missing credential variables', () => {
    assert.throws(() => s3StorageOptions('s3://b-1', { env: {} }), { kind: 'bad_input', message: /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set/ });
    assert.throws(() => s3StorageOptions('s3://b-1', { env: { AWS_ACCESS_KEY_ID: 'x' } }), { kind: 'bad_input', message: /AWS_SECRET_ACCESS_KEY is not set/ });
  });

  it('refuses bad endpoints without echoing credentials in them', () => {
    for (const endpoint of ['not a url', 'ftp://host', 'http://user:pw-secret@host']) {
      assert.throws(() => s3StorageOptions('s3://b-1', { env: { ...creds, AWS_ENDPOINT_URL: endpoint } }), (err: Error & { kind?: string; hint?: string }) => {
        assert.equal(err.kind, 'bad_input');
        assert.ok(!`${err.message}${err.hint}`.includes('pw-secret'));
        return true;
      });
    }
    assert.throws(() => s3StorageOptions('s3://b-1', { env: { ...creds, WPBACKUP_S3_PATH_STYLE: 'maybe' } }), { kind: 'bad_input' });
  });

  it('refuses a config file others may read, giving the chmod fix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpb-s3cfg-'));
    try {
      const file = join(dir, 's3.json');
      await writeFile(file, JSON.stringify({ accessKeyId: 'id', secretAccessKey: 'very-secret-value', pathStyle: true }), { mode: 0o644 });
      await chmod(file, 0o644);
      assert.throws(() => s3StorageOptions('s3://b-1', { configFile: file, env: {} }), { kind: 'bad_input', hint: `Run: chmod 600 ${file}` });
      await chmod(file, 0o600);
      const opts = s3StorageOptions('s3://b-1', { configFile: file, env: creds });
      assert.equal(opts.credentials.accessKeyId, 'id', 'the file wins over the environment');
      assert.equal(opts.forcePathStyle, true);
      assert.match(opts.names.secretAccessKey, /"secretAccessKey" in .*s3\.json/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports broken config files without quoting them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpb-s3cfg-'));
    try {
      const file = join(dir, 's3.json');
      const cases = ['{"secretAccessKey": "very-secret-value" oops}', '[]', '{"secretAcessKey": "very-secret-value"}', '{"accessKeyId": "id"}'];
      for (const text of cases) {
        await writeFile(file, text, { mode: 0o600 });
        assert.throws(() => s3StorageOptions('s3://b-1', { configFile: file }), (err: Error & { kind?: string; hint?: string }) => {
          assert.equal(err.kind, 'bad_input', text);
          assert.ok(!`${err.message}${err.hint}`.includes('very-secret-value'), err.message);
          return true;
        });
      }
      assert.throws(() => s3StorageOptions('s3://b-1', { configFile: join(dir, 'missing.json') }), { kind: 'bad_input', message: /Cannot read S3 config file/ });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
