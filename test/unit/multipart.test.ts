import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { WpbError } from '../../src/errors.ts';
import { DEFAULT_PART_SIZE, choosePartSize, isRetryable, uploadMultipart } from '../../src/storage/multipart.ts';
import type { CompletedPart, PartSink } from '../../src/storage/multipart.ts';
import { waitFor } from '../helpers/wait.ts';

// The uploader against an in-memory sink: sizes, order, window, retries, and that every
// failure path aborts the sink exactly once.

const KiB = 1024;

class FakeSink implements PartSink {
  readonly stored = new Map<number, Buffer>();
  readonly calls: number[] = [];
  readonly failures = new Map<number, unknown[]>();
  active = 0;
  maxActive = 0;
  aborts = 0;
  completed: CompletedPart[] | undefined;
  acceptedBytes = 0;
  delayMs = 0;
  /** Parts never finish until their signal aborts. */
  hang = false;
  completeError: unknown;
  abortError: unknown;

  async uploadPart(partNumber: number, body: Buffer, signal: AbortSignal): Promise<string> {
    this.calls.push(partNumber);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      if (this.hang) await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
      await sleep(this.delayMs, undefined, { signal });
      const failure = this.failures.get(partNumber)?.shift();
      if (failure !== undefined) throw failure;
      this.stored.set(partNumber, Buffer.from(body));
      this.acceptedBytes += body.length;
      return `"etag-${partNumber}"`;
    } finally {
      this.active--;
    }
  }

  async complete(parts: CompletedPart[]): Promise<void> {
    if (this.completeError) throw this.completeError;
    this.completed = parts;
  }

  async abort(): Promise<void> {
    this.aborts++;
    if (this.abortError) throw this.abortError;
  }

  /** The object as the parts would assemble it. */
  object(): Buffer {
    return Buffer.concat((this.completed ?? []).map((p) => this.stored.get(p.partNumber) ?? Buffer.alloc(0)));
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** data cut into chunks of the given sizes, cycling. */
function chunked(data: Buffer, sizes: number[]): Readable {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    chunks.push(data.subarray(at, at + n));
    at += n;
  }
  return Readable.from(chunks);
}

/** An endless body that counts what was read from it. */
function endless(chunkSize: number, stats: { read: number }, highWaterMark = 16 * KiB, onRead?: () => void): Readable {
  const chunk = randomBytes(chunkSize);
  return new Readable({
    highWaterMark,
    read() {
      stats.read += chunk.length;
      onRead?.();
      this.push(chunk);
    },
  });
}

function httpError(status: number, name = `Http${status}`): Error {
  return Object.assign(new Error(`HTTP ${status}`), { name, $metadata: { httpStatusCode: status } });
}

describe('uploadMultipart', () => {
  it('cuts parts of partSize in order, last one short, and hashes the whole object', async () => {
    const data = randomBytes(35 * KiB);
    const sink = new FakeSink();
    const result = await uploadMultipart(chunked(data, [1000, 7 * KiB, 13]), sink, { partSize: 10 * KiB });
    assert.deepEqual(result, { size: data.length, sha256: sha256(data), parts: 4 });
    assert.deepEqual(sink.completed?.map((p) => p.partNumber), [1, 2, 3, 4]);
    assert.deepEqual([...sink.stored.values()].map((b) => b.length).sort((a, b) => b - a), [10 * KiB, 10 * KiB, 10 * KiB, 5 * KiB]);
    assert.deepEqual(sink.object(), data);
    assert.equal(sink.completed?.[2]?.etag, '"etag-3"');
    assert.equal(sink.aborts, 0);
  });

  it('sends no empty trailing part when the size is an exact multiple', async () => {
    const data = randomBytes(30 * KiB);
    const sink = new FakeSink();
    const result = await uploadMultipart(chunked(data, [30 * KiB]), sink, { partSize: 10 * KiB });
    assert.equal(result.parts, 3);
    assert.deepEqual(sink.object(), data);
  });

  it('uploads an empty body as one empty part', async () => {
    const sink = new FakeSink();
    const result = await uploadMultipart(Readable.from([]), sink, { partSize: 10 * KiB });
    assert.deepEqual(result, { size: 0, sha256: sha256(Buffer.alloc(0)), parts: 1 });
    assert.deepEqual(sink.completed, [{ partNumber: 1, etag: '"etag-1"' }]);
    assert.equal(sink.stored.get(1)?.length, 0);
  });

  it('accepts string chunks', async () => {
    const sink = new FakeSink();
    const result = await uploadMultipart(Readable.from(['héllo ', 'wörld']), sink, { partSize: 4 });
    assert.equal(sink.object().toString(), 'héllo wörld');
    assert.equal(result.sha256, sha256(Buffer.from('héllo wörld')));
  });

  it('never has more than concurrency parts in flight, and uses the window', async () => {
    const sink = new FakeSink();
    sink.delayMs = 3;
    const data = randomBytes(50 * KiB);
    await uploadMultipart(chunked(data, [3 * KiB]), sink, { partSize: KiB, concurrency: 3 });
    assert.equal(sink.maxActive, 3);
    assert.deepEqual(sink.object(), data);
  });

  it('stops reading while the window is full, so memory stays near (concurrency + 1) x partSize', async () => {
    const sink = new FakeSink();
    sink.delayMs = 5;
    const stats = { read: 0 };
    const partSize = 64 * KiB;
    const hwm = 16 * KiB;
    let maxHeld = 0;
    const body = endless(4 * KiB, stats, hwm, () => (maxHeld = Math.max(maxHeld, stats.read - sink.acceptedBytes)));
    const ctl = new AbortController();
    const onProgress = (uploaded: number): void => {
      if (uploaded >= 40 * partSize) ctl.abort();
    };
    await assert.rejects(uploadMultipart(body, sink, { partSize, concurrency: 2, signal: ctl.signal, onProgress }), { kind: 'stopped' });
    assert.ok(maxHeld > 2 * partSize, `window was used (${maxHeld})`);
    assert.ok(maxHeld <= 3 * partSize + 2 * hwm, `held ${maxHeld} bytes, more than the window allows`);
  });

  it('reports progress as parts are accepted, ending at the size', async () => {
    const sink = new FakeSink();
    const seen: number[] = [];
    const data = randomBytes(25 * KiB);
    await uploadMultipart(chunked(data, [KiB]), sink, { partSize: 10 * KiB, onProgress: (n) => seen.push(n) });
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
    assert.equal(seen.at(-1), data.length);
  });

  it('retries transient failures (5xx, 429, network) with backoff, then succeeds', async () => {
    const sink = new FakeSink();
    sink.failures.set(2, [httpError(503), Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), httpError(429)]);
    const data = randomBytes(30 * KiB);
    const result = await uploadMultipart(chunked(data, [KiB]), sink, { partSize: 10 * KiB, retryDelayMs: 1 });
    assert.equal(sink.calls.filter((n) => n === 2).length, 4);
    assert.equal(result.sha256, sha256(data));
    assert.deepEqual(sink.object(), data);
    assert.equal(sink.aborts, 0);
  });

  it('gives up after the attempts, aborts once and keeps the cause', async () => {
    const sink = new FakeSink();
    const last = httpError(500, 'InternalError');
    sink.failures.set(1, [httpError(500), httpError(502), last]);
    const err = await uploadMultipart(chunked(randomBytes(30 * KiB), [KiB]), sink, { partSize: 10 * KiB, retries: 3, retryDelayMs: 1 }).catch((e: unknown) => e);
    assert.ok(err instanceof WpbError);
    assert.equal(err.kind, 'failed');
    assert.equal(err.cause, last);
    assert.match(err.message, /part 1/);
    assert.equal(sink.calls.filter((n) => n === 1).length, 3);
    assert.equal(sink.aborts, 1);
    assert.equal(sink.completed, undefined);
  });

  it('does not retry a 403 and aborts exactly once', async () => {
    const sink = new FakeSink();
    const denied = httpError(403, 'AccessDenied');
    sink.failures.set(1, [denied]);
    sink.delayMs = 2;
    const err = await uploadMultipart(chunked(randomBytes(100 * KiB), [KiB]), sink, { partSize: 10 * KiB, retryDelayMs: 1 }).catch((e: unknown) => e);
    assert.ok(err instanceof WpbError);
    assert.equal(err.cause, denied);
    assert.equal(sink.calls.filter((n) => n === 1).length, 1);
    assert.equal(sink.aborts, 1);
  });

  it('keeps a WpbError thrown by the sink as it is', async () => {
    const sink = new FakeSink();
    const mine = new WpbError('bad_input', 'S3 bucket "x" does not exist');
    sink.failures.set(1, [mine]);
    await assert.rejects(uploadMultipart(Readable.from([Buffer.alloc(10)]), sink, { partSize: 4 }), (e) => e === mine);
    assert.deepEqual(sink.calls.filter((n) => n === 1).length, 1);
    assert.equal(sink.aborts, 1);
  });

  it('aborts on signal within milliseconds while parts are in flight', async () => {
    const sink = new FakeSink();
    sink.hang = true;
    const body = endless(4 * KiB, { read: 0 });
    const ctl = new AbortController();
    const upload = uploadMultipart(body, sink, { partSize: 8 * KiB, concurrency: 2, signal: ctl.signal });
    await waitFor('two parts in flight', async () => sink.active === 2);
    const t0 = performance.now();
    ctl.abort();
    await assert.rejects(upload, { kind: 'stopped' });
    assert.ok(performance.now() - t0 < 200, 'settled quickly');
    assert.equal(sink.aborts, 1);
    assert.equal(sink.active, 0);
    assert.ok(body.destroyed);
    assert.equal(sink.completed, undefined);
  });

  it('aborts on signal while the body is stalled', async () => {
    const sink = new FakeSink();
    const body = new Readable({ read() {} });
    body.push(Buffer.alloc(20 * KiB));
    const ctl = new AbortController();
    const upload = uploadMultipart(body, sink, { partSize: 8 * KiB, signal: ctl.signal });
    // The two whole parts the body holds are stored; the rest waits for bytes that never come.
    await waitFor('the parts the body holds to be stored', async () => sink.stored.size === 2);
    const t0 = performance.now();
    ctl.abort();
    await assert.rejects(upload, { kind: 'stopped' });
    assert.ok(performance.now() - t0 < 200);
    assert.equal(sink.aborts, 1);
  });

  it('with an already aborted signal uploads nothing and still aborts the sink once', async () => {
    const sink = new FakeSink();
    await assert.rejects(uploadMultipart(Readable.from([Buffer.alloc(10)]), sink, { signal: AbortSignal.abort() }), { kind: 'stopped' });
    assert.deepEqual(sink.calls, []);
    assert.equal(sink.aborts, 1);
  });

  it('fails when the body errors mid-way, keeping its error as the cause', async () => {
    const sink = new FakeSink();
    const broken = new Error('disk read failed');
    async function* gen(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(25 * KiB);
      throw broken;
    }
    const err = await uploadMultipart(Readable.from(gen()), sink, { partSize: 10 * KiB }).catch((e: unknown) => e);
    assert.ok(err instanceof WpbError);
    assert.equal(err.kind, 'failed');
    assert.equal(err.cause, broken);
    assert.match(err.message, /disk read failed/);
    assert.equal(sink.aborts, 1);
    assert.equal(sink.completed, undefined);
  });

  it('aborts once when complete fails', async () => {
    const sink = new FakeSink();
    sink.completeError = httpError(400, 'InvalidPart');
    await assert.rejects(uploadMultipart(Readable.from([Buffer.alloc(10)]), sink, { partSize: 4 }), { kind: 'failed' });
    assert.equal(sink.aborts, 1);
  });

  it('reports a failing abort without losing the first error', async () => {
    const sink = new FakeSink();
    sink.failures.set(1, [httpError(403, 'AccessDenied')]);
    sink.abortError = new Error('connection refused');
    const err = await uploadMultipart(Readable.from([Buffer.alloc(10)]), sink, { partSize: 4 }).catch((e: unknown) => e);
    assert.ok(err instanceof WpbError);
    assert.match(err.message, /HTTP 403.*cleaning up the incomplete upload also failed: connection refused/);
    assert.equal(sink.aborts, 1);
  });
});

describe('choosePartSize', () => {
  it('defaults to 8 MiB and keeps it for small objects', () => {
    assert.equal(DEFAULT_PART_SIZE, 8 * 1024 * KiB);
    assert.equal(choosePartSize(), DEFAULT_PART_SIZE);
    assert.equal(choosePartSize(undefined, 1e9), DEFAULT_PART_SIZE);
  });

  it('grows parts so a hinted size fits in fewer than 9,000 parts', () => {
    for (const hint of [8e10, 1e12, 5e12, 3e13]) {
      const size = choosePartSize(undefined, hint);
      assert.ok(Math.ceil(hint / size) < 9000, `${hint}: ${size}`);
      assert.equal(size % (1024 * KiB), 0);
    }
  });

  it('refuses sizes that cannot work', () => {
    assert.throws(() => choosePartSize(0), { kind: 'bad_input' });
    assert.throws(() => choosePartSize(undefined, 1e14), { kind: 'bad_input' });
  });
});

describe('isRetryable', () => {
  it('retries network errors, 5xx, 408, 429 and S3 throttling; not 4xx or stops', () => {
    assert.equal(isRetryable(httpError(500)), true);
    assert.equal(isRetryable(httpError(503)), true);
    assert.equal(isRetryable(httpError(429)), true);
    assert.equal(isRetryable(httpError(408)), true);
    assert.equal(isRetryable(httpError(400, 'RequestTimeout')), true);
    assert.equal(isRetryable(Object.assign(new Error('x'), { code: 'ECONNRESET' })), true);
    assert.equal(isRetryable(new TypeError('fetch failed')), true);
    assert.equal(isRetryable(httpError(403, 'AccessDenied')), false);
    assert.equal(isRetryable(httpError(400, 'InvalidArgument')), false);
    assert.equal(isRetryable(httpError(404, 'NoSuchUpload')), false);
    assert.equal(isRetryable(Object.assign(new Error('x'), { name: 'AbortError' })), false);
    assert.equal(isRetryable(new WpbError('bad_input', 'wrong key')), false);
    assert.equal(isRetryable(new WpbError('failed', 'wrapped', { cause: httpError(503) })), true);
    assert.equal(isRetryable(new WpbError('failed', 'wrapped', { cause: httpError(403) })), false);
    assert.equal(isRetryable(Object.assign(new Error('x'), { retryable: false })), false);
  });
});
