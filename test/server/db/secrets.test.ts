import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SECRET_KEY_FILE, SecretBox, loadSecretKey, newSecretKey, openSecretBox } from '../../../src/server/db/secrets.ts';
import { inProcesses } from './children.ts';

const LOAD_IN_CHILD = `
import { loadSecretKey } from '{src}server/db/secrets.ts';
console.log(loadSecretKey({ dataDir: process.argv[1], env: {} }).toString('base64'));`;

describe('secrets', () => {
  let dir: string;
  const noEnv = {};
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wpb-secrets-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('round-trips a secret, bound to its context', () => {
    const box = new SecretBox(randomBytes(32));
    const blob = box.encrypt('{"secretAccessKey":"s3cr3t"}', 'storage_providers:1');
    assert.match(blob, /^v1\.[0-9a-f]{8}\./);
    assert.ok(!blob.includes('s3cr3t'));
    assert.notEqual(box.encrypt('same', 'c'), box.encrypt('same', 'c'), 'a fresh IV every time');
    assert.equal(box.decrypt(blob, 'storage_providers:1'), '{"secretAccessKey":"s3cr3t"}');
    assert.throws(() => box.decrypt(blob, 'storage_providers:2'), /integrity check/);
  });

  it('fails with another key, and on a tampered blob', () => {
    const blob = new SecretBox(randomBytes(32)).encrypt('x', 'c');
    assert.throws(() => new SecretBox(randomBytes(32)).decrypt(blob, 'c'), /encrypted with another key/);
    const key = randomBytes(32);
    const box = new SecretBox(key);
    const good = box.encrypt('hello', 'c');
    const raw = Buffer.from(good.split('.')[2] ?? '', 'base64');
    raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
    assert.throws(() => box.decrypt(`v1.${box.keyId}.${raw.toString('base64')}`, 'c'), /integrity check/);
    assert.throws(() => box.decrypt(`v1.${box.keyId}.AAAA`, 'c'), /integrity check/);
    assert.throws(() => box.decrypt('plain text', 'c'), /known format/);
  });

  it('generates the key once into a 0600 file and reads it back', async () => {
    const d = join(dir, 'first');
    const key = loadSecretKey({ dataDir: d, env: noEnv });
    assert.equal(key.length, 32);
    assert.equal((await stat(join(d, SECRET_KEY_FILE))).mode & 0o777, 0o600);
    assert.deepEqual(loadSecretKey({ dataDir: d, env: noEnv }), key);
    assert.deepEqual(await readdir(d), [SECRET_KEY_FILE], 'no temp file left behind');
  });

  it('refuses a key file that group or others can read', async () => {
    const d = join(dir, 'loose');
    loadSecretKey({ dataDir: d, env: noEnv });
    await chmod(join(d, SECRET_KEY_FILE), 0o640);
    assert.throws(() => loadSecretKey({ dataDir: d, env: noEnv }), (e: Error & { kind?: string }) => e.kind === 'bad_input' && /readable by others \(mode 0640\)/.test(e.message));
  });

  it('takes WPBACKUP_SECRET_KEY instead of the file, and refuses a malformed one', async () => {
    const d = join(dir, 'env');
    const text = newSecretKey();
    const box = openSecretBox({ dataDir: d, env: { WPBACKUP_SECRET_KEY: text } });
    assert.equal(new SecretBox(Buffer.from(text, 'base64')).decrypt(box.encrypt('x', 'c'), 'c'), 'x');
    await assert.rejects(stat(join(d, SECRET_KEY_FILE)), /ENOENT/);
    assert.throws(() => loadSecretKey({ dataDir: d, env: { WPBACKUP_SECRET_KEY: 'c2hvcnQ=' } }), /not a base64 32-byte key/);
  });

  it('refuses a key file that does not hold a key', async () => {
    const d = join(dir, 'garbage');
    loadSecretKey({ dataDir: d, env: noEnv });
    await writeFile(join(d, SECRET_KEY_FILE), 'not a key\n');
    assert.throws(() => loadSecretKey({ dataDir: d, env: noEnv }), /not a base64 32-byte key/);
  });

  it('gives six servers starting at once on a new data dir the same key', async () => {
    const d = join(dir, 'race');
    const keys = await inProcesses(6, LOAD_IN_CHILD, d);
    assert.equal(new Set(keys).size, 1);
    assert.deepEqual(loadSecretKey({ dataDir: d, env: noEnv }).toString('base64'), keys[0]);
    assert.deepEqual(await readdir(d), [SECRET_KEY_FILE]);
  });
});
