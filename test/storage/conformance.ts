import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { WpbError } from '../../src/errors.ts';
import type { PendingUpload, Storage } from '../../src/storage/storage.ts';
import { waitFor } from '../helpers/wait.ts';

// The one suite every storage backend must pass. Backends are set up with a small part
// size (where they have parts), so the 40 MB object below uploads as several parts at once.

export interface ConformanceTarget {
  storage: Storage;
  /** Incomplete uploads left in the backend (temp files, multipart uploads). */
  pendingUploads(): Promise<number>;
  cleanup(): Promise<void>;
}

const MB = 1_000_000;
const MiB = 1024 * 1024;

export function storageConformance(name: string, setup: () => Promise<ConformanceTarget>): void {
  describe(`storage conformance: ${name}`, () => {
    let t: ConformanceTarget;
    let s: Storage;
    before(async () => {
      t = await setup();
      s = t.storage;
    });
    after(async () => t?.cleanup());

    it('passes preflight', async () => {
      await s.preflight();
    });

    it('round-trips a streamed object with a matching sha256', async () => {
      const data = randomBytes(3 * MB + 17);
      const put = await s.put('round/trip.bin', chunks(data, 64 * 1024));
      assert.deepEqual(put, { key: 'round/trip.bin', size: data.length, sha256: sha256(data) });
      assert.equal(sha256(await readAll(await s.get('round/trip.bin'))), sha256(data));
      const head = await s.head('round/trip.bin');
      assert.equal(head?.size, data.length);
      assert.ok(head && Math.abs(head.modified.getTime() - Date.now()) < 5 * 60_000);
    });

    it('stores a 40 MB object streamed in small chunks as several parts', async () => {
      const body = generated(40 * MB, 16 * 1024);
      const events: string[] = [];
      let last = 0;
      const put = await s.put('big/forty.bin', body.stream, {
        onUploadStarted: () => void events.push('started'),
        onProgress: (n) => {
          assert.ok(n >= last, 'progress never goes back');
          last = n;
          if (events.at(-1) !== 'progress') events.push('progress');
        },
      });
      assert.equal(put.size, 40 * MB);
      assert.equal(put.sha256, body.sha256());
      assert.equal(last, 40 * MB);
      assert.deepEqual(events, ['started', 'progress']);
      assert.equal((await s.head('big/forty.bin'))?.size, 40 * MB);
      assert.equal(sha256(await readAll(await s.get('big/forty.bin'))), put.sha256);
    });

    it('stores an empty object', async () => {
      const put = await s.put('empty/nothing', Readable.from([]));
      assert.deepEqual(put, { key: 'empty/nothing', size: 0, sha256: sha256(Buffer.alloc(0)) });
      assert.equal((await s.head('empty/nothing'))?.size, 0);
      assert.equal((await readAll(await s.get('empty/nothing'))).length, 0);
    });

    it('handles unicode and URL-special characters in keys', async () => {
      const keys = ['unicode/ünïcödé 日本語 — файл 🎉.txt', 'unicode/a+b %20 ?x=1&y#frag.txt'];
      for (const key of keys) {
        await s.put(key, Readable.from([Buffer.from(key)]));
        assert.equal((await readAll(await s.get(key))).toString(), key);
        assert.equal((await s.head(key))?.size, Buffer.byteLength(key));
      }
      assert.deepEqual((await s.list('unicode/')).map((o) => o.key), [...keys].sort(byBytes));
    });

    it('answers undefined for the head of a missing key', async () => {
      assert.equal(await s.head('missing/never-written'), undefined);
      await assert.rejects(s.get('missing/never-written'), { kind: 'bad_input' });
    });

    it('lists by prefix, sorted by key', async () => {
      const keys = ['list/b.txt', 'list/a/y.txt', 'list/é.txt', 'list/a/x.txt', 'list/B.txt', 'list/z.txt', 'listing.txt'];
      for (const key of keys) await s.put(key, Readable.from([Buffer.from(key)]));
      const listed = await s.list('list/');
      assert.deepEqual(listed.map((o) => o.key), ['list/B.txt', 'list/a/x.txt', 'list/a/y.txt', 'list/b.txt', 'list/z.txt', 'list/é.txt']);
      assert.equal(listed[0]?.size, Buffer.byteLength('list/B.txt'));
      assert.ok(listed[0]?.modified instanceof Date);
      assert.deepEqual((await s.list('list/a')).map((o) => o.key), ['list/a/x.txt', 'list/a/y.txt']);
      assert.deepEqual((await s.list('list')).map((o) => o.key).at(-1), 'listing.txt');
      assert.deepEqual(await s.list('nothing-here/'), []);
    });

    it('deletes idempotently', async () => {
      await s.put('del/me', Readable.from([Buffer.from('x')]));
      await s.put('del/me-too', Readable.from([Buffer.from('y')]));
      await s.delete('del/me');
      assert.equal(await s.head('del/me'), undefined);
      // Retention and reconcile rely on it: the key is gone from listings, its neighbours stay.
      assert.deepEqual((await s.list('del/')).map((o) => o.key), ['del/me-too']);
      await assert.rejects(s.get('del/me'), { kind: 'bad_input' });
      await s.delete('del/me');
      await s.delete('del/never-existed');
    });

    it('presigns a URL that returns the same bytes', async () => {
      const data = randomBytes(300_000);
      for (const key of ['presign/plain.bin', 'presign/ünï cödé+%.bin']) {
        await s.put(key, Readable.from([data]));
        const url = await s.presignGet(key, 60);
        assert.ok(sha256(await fetchUrl(url)) === sha256(data), `${url} returned other bytes`);
      }
    });

    it('rejects bad keys with bad_input', async () => {
      const bad = ['', '/abs', 'a/../b', '..', './a', 'a//b', 'a/', 'a\u0000b', 'a\nb', 'x'.repeat(1025)];
      for (const key of bad) {
        const body = Readable.from([Buffer.from('x')]);
        await assert.rejects(s.put(key, body), { kind: 'bad_input' }, `put ${JSON.stringify(key)}`);
        assert.ok(body.destroyed, 'a refused body is destroyed so its producer stops');
        await assert.rejects(s.get(key), { kind: 'bad_input' });
        await assert.rejects(s.head(key), { kind: 'bad_input' });
        await assert.rejects(s.delete(key), { kind: 'bad_input' });
        await assert.rejects(s.presignGet(key, 60), { kind: 'bad_input' });
      }
      await assert.rejects(s.list('/abs'), { kind: 'bad_input' });
      await assert.rejects(s.list('a/../'), { kind: 'bad_input' });
    });

    it('stops within a second on abort mid-upload, leaving no object and no pending upload', async () => {
      const body = stalling(12 * MiB);
      const ctl = new AbortController();
      let stored = 0;
      const put = s.put('abort/me.bin', body, { signal: ctl.signal, onProgress: (n) => (stored = n) });
      put.catch(() => undefined);
      await waitFor('part of the upload to land', async () => stored >= 5 * MiB && (await t.pendingUploads()) > 0, { ms: 30_000, every: 20 });
      const t0 = performance.now();
      ctl.abort();
      await assert.rejects(put, { kind: 'stopped' });
      const took = performance.now() - t0;
      assert.ok(took < 1000, `settled in ${took.toFixed(0)} ms`);
      assert.equal(await s.head('abort/me.bin'), undefined);
      assert.equal(await t.pendingUploads(), 0);
    });

    it('fails cleanly when the body errors mid-way', async () => {
      const broken = new Error('tar: file changed as we read it');
      const body = stalling(12 * MiB, broken);
      const err = await s.put('broken/body.bin', body).catch((e: unknown) => e);
      assert.ok(err instanceof WpbError, String(err));
      assert.equal(err.kind, 'failed');
      assert.ok(causes(err).includes(broken), 'the body error is in the cause chain');
      assert.equal(await s.head('broken/body.bin'), undefined);
      assert.equal(await t.pendingUploads(), 0);
    });

    it('cleans up a started upload with abortPending', async () => {
      const body = stalling(6 * MiB);
      let pending: PendingUpload | undefined;
      const put = s.put('crash/left-behind.bin', body, { onUploadStarted: (p) => void (pending = p) });
      put.catch(() => undefined);
      await waitFor('the upload to start', async () => pending !== undefined && (await t.pendingUploads()) > 0, { ms: 30_000, every: 20 });
      assert.ok(pending);
      assert.equal(pending.key, 'crash/left-behind.bin');
      await s.abortPending(pending); // as a successor of a crashed run would
      assert.equal(await t.pendingUploads(), 0);
      await s.abortPending(pending); // already gone: fine
      body.destroy(new Error('the crashed run goes away'));
      await assert.rejects(put);
      assert.equal(await s.head('crash/left-behind.bin'), undefined);
      assert.equal(await t.pendingUploads(), 0);
    });
  });
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function chunks(data: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) parts.push(data.subarray(at, at + size));
  return Readable.from(parts);
}

/** size pseudo-random bytes produced on demand (no big buffer), hashed as they go out. */
function generated(size: number, chunkSize: number): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  const block = randomBytes(chunkSize);
  let sent = 0;
  const stream = new Readable({
    read() {
      if (sent >= size) return void this.push(null);
      const n = Math.min(chunkSize, size - sent);
      block.writeUInt32BE(sent >>> 0, 0); // vary the data so parts differ
      const chunk = Buffer.from(block.subarray(0, n));
      hash.update(chunk);
      sent += n;
      this.push(chunk);
    },
  });
  return { stream, sha256: () => hash.digest('hex') };
}

/** Sends size bytes, then either fails with error or stalls until destroyed. */
function stalling(size: number, error?: Error): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent < size) {
        sent += 64 * 1024;
        this.push(randomBytes(64 * 1024));
      } else if (error) {
        this.destroy(error);
      }
    },
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function fetchUrl(url: string): Promise<Buffer> {
  if (url.startsWith('file:')) return readFile(fileURLToPath(url));
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  return Buffer.from(await res.arrayBuffer());
}

function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = err; e !== undefined && chain.length < 10; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}
