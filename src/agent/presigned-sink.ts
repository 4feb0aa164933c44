import { failure } from '../errors.ts';
import type { CompletedPart, PartSink } from '../storage/multipart.ts';
import type { AgentClient } from './client.ts';

// Parts go to URLs the server signed, fetched in batches; the agent never holds storage
// credentials. Retries per part are uploadMultipart's; a URL the store refuses (expired) is
// dropped so the retry fetches a fresh one. complete() only collects the parts: the storage
// commits them through /upload/complete once the size and sha256 are known. Each URL is signed
// for one part size (the server budgets bytes by it, S3 checks it): parts of the full size
// share batches; a shorter last part gets a URL of its own.

/** URLs are valid for an hour; fetch new ones well before. */
const URL_MAX_AGE_MS = 45 * 60 * 1000;
const MAX_PART = 10_000;

class PartPutError extends Error {
  readonly status: number;
  readonly retryable: boolean;
  constructor(partNumber: number, status: number, text: string) {
    super(`PUT of part ${partNumber} answered HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`);
    this.status = status;
    // 403: most likely an expired URL; a fresh one is fetched on the retry.
    this.retryable = status >= 500 || status === 408 || status === 429 || status === 403;
  }
}

export class PresignedPartSink implements PartSink {
  private readonly client: AgentClient;
  private readonly jobId: string;
  private readonly batch: number;
  private readonly urls = new Map<number, { url: string; at: number; size: number }>();
  /** The size of full parts: the first part's. */
  private fullSize: number | undefined;
  private fetching: Promise<void> = Promise.resolve();
  completed: CompletedPart[] | undefined;

  constructor(client: AgentClient, jobId: string, opts: { batch?: number } = {}) {
    this.client = client;
    this.jobId = jobId;
    this.batch = Math.max(1, Math.min(100, opts.batch ?? 16));
  }

  private async urlFor(partNumber: number, size: number, signal: AbortSignal): Promise<string> {
    const fresh = (): string | undefined => {
      const u = this.urls.get(partNumber);
      return u && u.size === size && Date.now() - u.at < URL_MAX_AGE_MS ? u.url : undefined;
    };
    this.fullSize ??= size;
    // Look-ahead URLs only for full parts; the last, shorter one is asked for alone.
    const count = size === this.fullSize ? Math.min(this.batch, MAX_PART - partNumber + 1) : 1;
    let url = fresh();
    if (url) return url;
    // One batch request at a time; parts waiting behind it usually find their URL in it.
    const next = this.fetching.catch(() => undefined).then(async () => {
      if (fresh()) return;
      const numbers = Array.from({ length: count }, (_, i) => partNumber + i);
      const res = await this.client.partUrls(this.jobId, numbers, size, signal);
      const at = Date.now();
      for (const [n, u] of Object.entries(res.urls)) this.urls.set(Number(n), { url: u, at, size });
    });
    this.fetching = next;
    await next;
    url = fresh();
    if (!url) throw failure(`The server gave no upload URL for part ${partNumber}`);
    return url;
  }

  async uploadPart(partNumber: number, body: Buffer, signal: AbortSignal): Promise<string> {
    const url = await this.urlFor(partNumber, body.length, signal);
    const res = await fetch(url, { method: 'PUT', body, signal, headers: { 'content-type': 'application/octet-stream' } });
    const text = await res.text();
    if (!res.ok) {
      this.urls.delete(partNumber);
      throw new PartPutError(partNumber, res.status, res.headers.get('content-type')?.includes('json') ? text : '');
    }
    const etag = res.headers.get('etag');
    if (!etag) throw failure(`The store returned no ETag for part ${partNumber}`);
    this.urls.delete(partNumber);
    return etag;
  }

  async complete(parts: CompletedPart[]): Promise<void> {
    this.completed = parts;
  }

  async abort(): Promise<void> {
    await this.client.uploadAbort(this.jobId);
  }
}
