import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { WpbError, badInput, failure, stopped } from '../errors.ts';
import { canReadInto, type ReadInto } from '../fd-readable.ts';

// Chops a stream into parts and uploads a few at a time through a PartSink. The sink hides
// who signs the requests: S3 credentials today, presigned part URLs handed out by the
// control plane later, so nothing here may assume S3 credentials.

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

export interface PartSink {
  /**
   * Uploads one part (numbered from 1) and returns its ETag. Must honour signal. body is
   * reused for a later part once the promise settles, so it must not be kept.
   */
  uploadPart(partNumber: number, body: Buffer, signal: AbortSignal): Promise<string>;
  /** Commits the object from the parts, given in part-number order. */
  complete(parts: CompletedPart[]): Promise<void>;
  /** Throws away the parts uploaded so far. Called at most once, after all parts settled. */
  abort(): Promise<void>;
  /**
   * A buffer for parts (reused, never more than the window plus one); a sink whose writes
   * need particular memory, such as aligned buffers for direct I/O, makes its own.
   */
  allocate?(size: number): Buffer;
}

export interface MultipartOptions {
  /** Minimum part size in bytes; raised when sizeHint needs bigger parts. */
  partSize?: number;
  /** Expected object size, so the part size can keep the object under the part limit. */
  sizeHint?: number;
  /** Parts uploading at once. */
  concurrency?: number;
  /** Attempts per part, counting the first one. */
  retries?: number;
  /** Base of the exponential backoff between attempts, in ms (tests make it small). */
  retryDelayMs?: number;
  signal?: AbortSignal;
  /** Running count of bytes in parts the sink accepted. */
  onProgress?: (bytesUploaded: number) => void;
  /** The most parts the sink takes (S3's 10,000 by default; a local file has no limit). */
  maxParts?: number;
}

export interface MultipartResult {
  size: number;
  sha256: string;
  parts: number;
}

const MiB = 1024 * 1024;
export const DEFAULT_PART_SIZE = 8 * MiB;
export const DEFAULT_CONCURRENCY = 4;
export const DEFAULT_ATTEMPTS = 5;
/** S3's limits: 10,000 parts of at most 5 GiB. We aim below 9,000 to leave room for a low hint. */
export const MAX_PARTS = 10_000;
const TARGET_PARTS = 9_000;
const MAX_PART_SIZE = 5 * 1024 * MiB;
/** How long cleanup waits for aborted part requests before calling sink.abort() anyway. */
const SETTLE_MS = 500;

/** The part size for an upload: at least partSize, big enough for sizeHint to fit in < 9,000 parts. */
export function choosePartSize(partSize = DEFAULT_PART_SIZE, sizeHint?: number): number {
  if (!Number.isSafeInteger(partSize) || partSize < 1 || partSize > MAX_PART_SIZE) {
    throw badInput(`Part size ${partSize} is out of range`, `Use 1 byte to 5 GiB`);
  }
  if (sizeHint === undefined || sizeHint <= 0) return partSize;
  const needed = Math.ceil(Math.ceil(sizeHint / (TARGET_PARTS - 1)) / MiB) * MiB;
  const size = Math.max(partSize, needed);
  if (size > MAX_PART_SIZE) {
    throw badInput(`An object of ${sizeHint} bytes is too large for a multipart upload`, 'The limit is about 44 TiB');
  }
  return size;
}

/** Streams body to sink in parts; on any failure or stop the sink is aborted exactly once. */
export async function uploadMultipart(body: Readable, sink: PartSink, opts: MultipartOptions = {}): Promise<MultipartResult> {
  return new MultipartUpload(body, sink, opts).run();
}

class MultipartUpload {
  private readonly hash = createHash('sha256');
  /** Aborts the part requests in flight when anything fails. */
  private readonly controller = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly done: CompletedPart[] = [];
  /** Part buffers back from finished uploads; reusing them keeps RSS near the window. */
  private readonly spare: Buffer[] = [];
  private readonly partSize: number;
  private readonly concurrency: number;
  private readonly attempts: number;
  private error: WpbError | undefined;
  private size = 0;
  private uploaded = 0;
  private partCount = 0;
  private readonly body: Readable;
  private readonly sink: PartSink;
  private readonly opts: MultipartOptions;

  constructor(body: Readable, sink: PartSink, opts: MultipartOptions) {
    this.body = body;
    this.sink = sink;
    this.opts = opts;
    this.partSize = choosePartSize(opts.partSize, opts.sizeHint);
    this.concurrency = positiveInt(opts.concurrency ?? DEFAULT_CONCURRENCY, 'concurrency');
    this.attempts = positiveInt(opts.retries ?? DEFAULT_ATTEMPTS, 'retries');
  }

  async run(): Promise<MultipartResult> {
    const { signal } = this.opts;
    const onStop = (): void => this.fail(stopped());
    signal?.addEventListener('abort', onStop, { once: true });
    try {
      if (signal?.aborted) throw stopped();
      await this.readParts();
      await Promise.all(this.inFlight);
      this.throwIfFailed();
      // From here on the object is being committed: a stop no longer undoes it.
      signal?.removeEventListener('abort', onStop);
      await this.complete();
      return { size: this.size, sha256: this.hash.digest('hex'), parts: this.partCount };
    } catch (err) {
      throw await this.cleanUp(err);
    } finally {
      signal?.removeEventListener('abort', onStop);
    }
  }

  /**
   * Fills one part buffer at a time, reading straight into it when the body allows (no
   * per-chunk buffers), else copying chunks in; startPart blocks while the window is full.
   */
  private async readParts(): Promise<void> {
    const body = canReadInto(this.body) ? this.body : chunkReader(this.body);
    // The next read is asked for before the bytes just read are hashed, so the read (a
    // thread-pool round trip, 64 KiB at a time from a pipe) overlaps the hashing. A read
    // left pending by a failure settles unobserved, never as an unhandled rejection.
    const read = (buf: Buffer, at: number): Promise<number> => {
      const p = body.readInto(buf, at, this.partSize - at);
      p.catch(() => {});
      return p;
    };
    let part = this.buffer();
    let filled = 0;
    let next = read(part, 0);
    for (;;) {
      this.throwIfFailed();
      const n = await next;
      if (n === 0) break;
      const start = filled;
      filled += n;
      this.size += n;
      if (filled < this.partSize) next = read(part, filled);
      this.hash.update(part.subarray(start, filled));
      if (filled < this.partSize) continue;
      await this.startPart(part);
      part = this.buffer();
      filled = 0;
      next = read(part, 0);
    }
    this.throwIfFailed();
    // An empty body still becomes one (empty) part, so the object exists.
    if (filled > 0 || this.partCount === 0) await this.startPart(part.subarray(0, filled));
  }

  private buffer(): Buffer {
    return this.spare.pop() ?? this.sink.allocate?.(this.partSize) ?? Buffer.allocUnsafe(this.partSize);
  }

  private async startPart(body: Buffer): Promise<void> {
    while (this.inFlight.size >= this.concurrency && !this.error) await Promise.race(this.inFlight);
    this.throwIfFailed();
    const maxParts = this.opts.maxParts ?? MAX_PARTS;
    if (this.partCount >= maxParts) {
      throw failure(`The upload needs more than ${maxParts} parts of ${this.partSize} bytes`, undefined, 'Pass a size hint so bigger parts are used');
    }
    const partNumber = ++this.partCount;
    const task: Promise<void> = this.uploadPart(partNumber, body).finally(() => this.inFlight.delete(task));
    this.inFlight.add(task);
  }

  /** Never rejects: a failed part records the error and stops everything else. */
  private async uploadPart(partNumber: number, body: Buffer): Promise<void> {
    const { signal } = this.controller;
    try {
      const upload = (): Promise<string> => this.sink.uploadPart(partNumber, body, signal);
      const etag = await withRetries(upload, this.attempts, signal, this.opts.retryDelayMs);
      this.done.push({ partNumber, etag });
      if (body.length === this.partSize) this.spare.push(body);
      this.uploaded += body.length;
      this.opts.onProgress?.(this.uploaded);
    } catch (err) {
      this.fail(err instanceof WpbError ? err : failure(`Uploading part ${partNumber} failed: ${messageOf(err)}`, err));
    }
  }

  private async complete(): Promise<void> {
    const parts = [...this.done].sort((a, b) => a.partNumber - b.partNumber);
    try {
      await this.sink.complete(parts);
    } catch (err) {
      throw err instanceof WpbError ? err : failure(`Completing the upload failed: ${messageOf(err)}`, err);
    }
  }

  /** Records the first error, cancels the part requests and stops reading the body. */
  private fail(err: unknown): void {
    if (this.error) return;
    this.error = toWpbError(err);
    this.controller.abort(this.error);
    this.body.destroy();
  }

  private throwIfFailed(): void {
    if (this.error) throw this.error;
  }

  private async cleanUp(err: unknown): Promise<WpbError> {
    this.fail(err);
    const error = this.error ?? toWpbError(err);
    // Let aborted parts settle first so none lands after the abort; a sink that ignores
    // the signal only delays us by SETTLE_MS.
    await Promise.race([Promise.allSettled(this.inFlight), sleep(SETTLE_MS, undefined, { ref: false })]);
    try {
      await this.sink.abort();
    } catch (abortErr) {
      const message = `${error.message} (cleaning up the incomplete upload also failed: ${messageOf(abortErr)})`;
      return new WpbError(error.kind, message, { cause: error, hint: error.hint });
    }
    return error;
  }
}

/** Body errors and the like become failures; a destroyed-by-us stream never gets here first. */
/** readInto() over any stream: copies from its chunks, keeping what did not fit for the next call. */
function chunkReader(body: Readable): ReadInto {
  const chunks = (body as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  let rest: Buffer = Buffer.alloc(0);
  return {
    async readInto(buf, offset, length) {
      while (rest.length === 0) {
        const next = await chunks.next();
        if (next.done) return 0;
        rest = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      }
      const n = rest.copy(buf, offset, 0, Math.min(length, rest.length));
      rest = rest.subarray(n);
      return n;
    },
  };
}

function toWpbError(err: unknown): WpbError {
  if (err instanceof WpbError) return err;
  if (err instanceof Error && err.name === 'AbortError') return stopped();
  return failure(`Reading the data to upload failed: ${messageOf(err)}`, err);
}

async function withRetries<T>(attempt: () => Promise<T>, attempts: number, signal: AbortSignal, baseMs?: number): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (signal.aborted || i >= attempts || !isRetryable(err)) throw err;
      await sleep(backoffMs(i, baseMs), undefined, { signal });
    }
  }
}

/** Exponential backoff with "equal jitter": half fixed, half random, so retries spread out. */
export function backoffMs(attempt: number, baseMs = 400, capMs = 10_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** (attempt - 1));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

const RETRYABLE_NAMES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  'TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'SlowDown', 'Throttling', 'ThrottlingException',
  'InternalError', 'ServiceUnavailable', 'BadDigest', 'XAmzContentSHA256Mismatch', 'IncompleteBody',
]);

/**
 * Whether a part upload is worth retrying: network trouble, 5xx, 408 and 429 are; other
 * 4xx (auth, validation) and stops are not. Sinks may set `retryable` on an error to decide
 * themselves. The cause chain is searched, so sinks can wrap errors in WpbErrors.
 */
export function isRetryable(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    const verdict = verdictOf(e);
    if (verdict !== undefined) return verdict;
    e = (e as { cause?: unknown }).cause;
  }
  // Nothing says otherwise: most errors without a status are network errors.
  return true;
}

function verdictOf(e: unknown): boolean | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  if (e instanceof WpbError && e.kind !== 'failed') return false;
  const o = e as { retryable?: unknown; name?: unknown; code?: unknown; status?: unknown; statusCode?: unknown; $metadata?: { httpStatusCode?: unknown } };
  if (typeof o.retryable === 'boolean') return o.retryable;
  if (o.name === 'AbortError') return false;
  if (RETRYABLE_NAMES.has(String(o.code)) || RETRYABLE_NAMES.has(String(o.name))) return true;
  const status = o.$metadata?.httpStatusCode ?? o.status ?? o.statusCode;
  if (typeof status === 'number' && status >= 400) return status >= 500 || status === 408 || status === 429;
  return undefined;
}

function positiveInt(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw badInput(`Upload ${what} must be a whole number of at least 1, not ${n}`);
  return n;
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || err.name || (err as { code?: string }).code || 'unknown error';
  return String(err);
}
