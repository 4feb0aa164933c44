import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { LocalStorage } from '../../src/storage/local.ts';
import { openStorage } from '../../src/storage/open.ts';
import { S3Storage } from '../../src/storage/s3.ts';
import { waitFor } from '../helpers/wait.ts';
import { storageConformance, type ConformanceTarget } from './conformance.ts';

/** Temp files anywhere under dir (what a crashed or unfinished put leaves). */
async function tempFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => []);
  return entries.filter((e) => /(^|\/)\.wpb-upload-/.test(e));
}

/** A fresh LocalStorage for the conformance suite, made with opts. */
function localTarget(opts: ConstructorParameters<typeof LocalStorage>[1] = {}): () => Promise<ConformanceTarget> {
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpb-local-'));
    const root = join(dir, 'store');
    return {
      storage: new LocalStorage(root, opts),
      pendingUploads: async () => (await tempFiles(root)).length,
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  };
}

storageConformance('local', localTarget());
// The default writes around the page cache (O_DIRECT) on filesystems that take it; these two
// run the same suite through the plain path and through direct writes of many aligned parts.
storageConformance('local, plain writes', localTarget({ directIo: false }));
storageConformance('local, 8 KiB direct parts', localTarget({ partSize: 8192 }));

/** Pages of path in the page cache, by util-linux's fincore. */
function residentPages(path: string): number {
  const out = execFileSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'PAGES', path], { encoding: 'utf8' });
  return Number(out.trim());
}

describe('LocalStorage', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wpb-local-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('creates files 0600 and directories 0700', async () => {
    const s = new LocalStorage(join(dir, 'modes'));
    await s.put('site/2024/backup.tar.zst', Readable.from([Buffer.from('x')]));
    assert.equal((await stat(join(dir, 'modes/site/2024/backup.tar.zst'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'modes/site/2024'))).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, 'modes'))).mode & 0o777, 0o700);
  });

  it('keeps the final name free until the object is complete', async () => {
    const s = new LocalStorage(join(dir, 'atomic'));
    let sawTemp = false;
    const body = new Readable({ read() {} });
    const put = s.put('a/b.bin', body, { onUploadStarted: (p) => void (sawTemp = /^\.wpb-upload-/.test(p.uploadId)) });
    body.push(Buffer.alloc(1000));
    await waitFor('the upload to start under a temp name', async () => sawTemp);
    assert.ok(sawTemp);
    assert.equal(await s.head('a/b.bin'), undefined, 'no object under the final name mid-write');
    assert.deepEqual(await s.list(''), [], 'temp files are not listed');
    body.push(null);
    await put;
    assert.equal((await s.head('a/b.bin'))?.size, 1000);
    assert.deepEqual(await tempFiles(join(dir, 'atomic')), []);
  });

  it('writes around the page cache where the filesystem allows, and cuts the padded last part', async () => {
    // 5 MiB and 123 bytes: two full 2 MiB parts and a short last one, padded to 4 KiB when written.
    const data = randomBytes(5 * 1024 * 1024 + 123);
    const direct = new LocalStorage(join(dir, 'direct'));
    const r = await direct.put('a.bin', Readable.from([data.subarray(0, 999), data.subarray(999)]));
    const plain = new LocalStorage(join(dir, 'plain'), { directIo: false });
    await plain.put('a.bin', Readable.from([data]));
    // Before anything reads them back: the plain write left its pages cached, the direct one none.
    assert.equal(residentPages(join(dir, 'direct/a.bin')), 0);
    assert.ok(residentPages(join(dir, 'plain/a.bin')) > 0, 'the check sees cached pages');
    assert.equal(r.size, data.length);
    assert.equal(r.sha256, createHash('sha256').update(data).digest('hex'));
    assert.ok((await readFile(join(dir, 'direct/a.bin'))).equals(data));
    assert.ok((await readFile(join(dir, 'plain/a.bin'))).equals(data));
  });

  it('replaces an existing object', async () => {
    const s = new LocalStorage(join(dir, 'replace'));
    await s.put('k', Readable.from([Buffer.from('first version')]));
    await s.put('k', Readable.from([Buffer.from('second')]));
    assert.equal((await s.head('k'))?.size, 6);
  });

  it('refuses keys that look like its temp files, and foreign pending uploads', async () => {
    const s = new LocalStorage(join(dir, 'reserved'));
    await assert.rejects(s.head('a/.wpb-upload-0123456789abcdef.tmp'), { kind: 'bad_input' });
    await assert.rejects(s.abortPending({ backend: 'local', key: 'a/b', uploadId: '../../etc/passwd' }), { kind: 'bad_input' });
    await assert.rejects(s.abortPending({ backend: 's3', key: 'a/b', uploadId: 'x' }), { kind: 'bad_input' });
  });

  it('presigns with the signer it was given', async () => {
    const s = new LocalStorage(join(dir, 'signed'), { presign: (key, exp) => `https://server.example/dl/${encodeURIComponent(key)}?exp=${exp}` });
    assert.equal(await s.presignGet('a b/c', 60), 'https://server.example/dl/a%20b%2Fc?exp=60');
    await assert.rejects(s.presignGet('a', 0), { kind: 'bad_input' });
  });

  it('preflight creates the directory, and refuses one it cannot use', async () => {
    await new LocalStorage(join(dir, 'new/deep/dir')).preflight();
    assert.ok((await stat(join(dir, 'new/deep/dir'))).isDirectory());
    await writeFile(join(dir, 'a-file'), 'x');
    await assert.rejects(new LocalStorage(join(dir, 'a-file/sub')).preflight(), (err: Error & { kind?: string; hint?: string }) => {
      assert.equal(err.kind, 'bad_input');
      assert.match(err.message, /a-file\/sub is not usable: a file is in the way/);
      assert.ok(err.hint);
      return true;
    });
    await assert.rejects(new LocalStorage(join(dir, 'a-file')).preflight(), { kind: 'bad_input' });
  });
});

describe('openStorage', () => {
  it('opens plain paths as local directories', () => {
    const abs = openStorage('/var/backups');
    assert.ok(abs instanceof LocalStorage);
    assert.equal(abs.location, '/var/backups');
    assert.equal(openStorage('backups/x').location, resolve('backups/x'));
    assert.equal(openStorage('./odd:name').location, resolve('odd:name'));
  });

  it('opens s3:// as S3 with settings from the environment', () => {
    const env = { AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret', AWS_ENDPOINT_URL: 'http://127.0.0.1:9' };
    const s = openStorage('s3://bucket/some/prefix/', { env });
    assert.ok(s instanceof S3Storage);
    assert.equal(s.location, 's3://bucket/some/prefix');
    (s as S3Storage).close();
  });

  it('refuses other forms with bad_input listing the accepted ones', () => {
    for (const dest of ['ftp://host/dir', 'file:///tmp/x', 's3:/bucket', 'odd:name', '', '  ']) {
      assert.throws(() => openStorage(dest), (err: Error & { kind?: string; hint?: string }) => {
        assert.equal(err.kind, 'bad_input', dest);
        assert.match(err.hint ?? '', /directory path .* or s3:\/\/bucket\/prefix/);
        return true;
      });
    }
  });
});
