import { setTimeout as sleep } from 'node:timers/promises';
import type {
  ApiErrorBody, FinishRequest, JoinRequest, JoinResponse, PartUrlsResponse, PollResponse, ProgressReply, ProgressReport,
  RotateKeyResponse, ScanReply, ScanReport, UploadCompleteRequest, UploadCompleteResponse, UploadStartResponse,
} from '../api/types.ts';
import { KEY_ROTATION_HEADER } from '../api/types.ts';
import { WpbError, badInput, failure, stopped } from '../errors.ts';
import { backoffMs } from '../storage/multipart.ts';

// The agent's side of the protocol: JSON over HTTP with the node key as bearer token, and
// retries with backoff for what is worth retrying (network trouble, 5xx, 408, 429). The
// key is never logged and never part of an error message.

export class AgentHttpError extends WpbError {
  readonly status: number;
  readonly code: string;
  /** Read by the multipart uploader's retry logic, and by ours. */
  readonly retryable: boolean;

  constructor(status: number, code: string, message: string) {
    super(status >= 400 && status < 500 && status !== 408 && status !== 429 ? 'bad_input' : 'failed', message);
    this.name = 'AgentHttpError';
    this.status = status;
    this.code = code;
    this.retryable = status >= 500 || status === 408 || status === 429;
  }
}

export interface ClientOptions {
  /** Attempts per request, counting the first. */
  attempts?: number;
  retryDelayMs?: number;
  /** Per-request timeout, except polls (which wait pollTimeoutMs). */
  timeoutMs?: number;
  pollTimeoutMs?: number;
}

export function normalizeServerUrl(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw badInput(`--server "${server}" is not a URL`, 'Use e.g. https://backup.example.com or http://127.0.0.1:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badInput(`--server must be an http:// or https:// URL, not ${url.protocol}`);
  if (url.username || url.password) throw badInput('--server must not contain a user name or password');
  return url.href.replace(/\/+$/, '');
}

/** The header a poll reply carries when an admin asked for a new node key (server/node-keys.ts). */

interface RequestOptions {
  token?: string;
  signal?: AbortSignal;
  timeoutMs: number;
  attempts: number;
  retryDelayMs: number;
  onOk?: (res: Response) => void;
}

async function request<T>(server: string, method: string, path: string, body: unknown, o: RequestOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    if (o.signal?.aborted) throw stopped();
    const timeout = AbortSignal.timeout(o.timeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    let err: unknown;
    try {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      const res = await fetch(server + path, { method, headers, body: JSON.stringify(body ?? {}), signal });
      const text = await res.text();
      if (res.ok) {
        o.onOk?.(res);
        return (text ? JSON.parse(text) : {}) as T;
      }
      let parsed: ApiErrorBody | undefined;
      try {
        parsed = JSON.parse(text) as ApiErrorBody;
      } catch {
        // not our error body (a proxy's page)
      }
      err = new AgentHttpError(res.status, parsed?.error?.code ?? 'http_error', `${method} ${path}: HTTP ${res.status}${parsed?.error?.message ? `: ${parsed.error.message}` : ''}`);
    } catch (e) {
      if (o.signal?.aborted) throw stopped();
      err = timeout.aborted ? failure(`${method} ${path}: no answer from ${server} within ${Math.round(o.timeoutMs / 1000)} s`, e) : failure(`${method} ${path}: cannot reach ${server}: ${causeOf(e)}`, e);
    }
    const retryable = !(err instanceof AgentHttpError) || err.retryable;
    if (!retryable || attempt >= o.attempts) throw err;
    try {
      await sleep(backoffMs(attempt, o.retryDelayMs), undefined, { signal: o.signal });
    } catch {
      throw stopped();
    }
  }
}

function causeOf(e: unknown): string {
  const c = (e as { cause?: { code?: string; message?: string } })?.cause;
  return c?.code ?? c?.message ?? (e instanceof Error ? e.message : String(e));
}

/** Trades a one-time join code for this node's id and key. Not retried on 4xx: a code works once. */
export function joinServer(server: string, req: JoinRequest, opts: ClientOptions = {}): Promise<JoinResponse> {
  return request<JoinResponse>(normalizeServerUrl(server), 'POST', '/api/v1/agent/join', req, { timeoutMs: opts.timeoutMs ?? 30_000, attempts: opts.attempts ?? 5, retryDelayMs: opts.retryDelayMs ?? 500 });
}

export class AgentClient {
  readonly server: string;
  #key: string;
  #rotationAsked = false;
  readonly #o: Required<ClientOptions>;

  constructor(server: string, nodeKey: string, opts: ClientOptions = {}) {
    this.server = normalizeServerUrl(server);
    this.#key = nodeKey;
    this.#o = { attempts: opts.attempts ?? 6, retryDelayMs: opts.retryDelayMs ?? 500, timeoutMs: opts.timeoutMs ?? 60_000, pollTimeoutMs: opts.pollTimeoutMs ?? 90_000 };
  }

  /** Keeps the key out of console.log / util.inspect output. */
  toJSON(): { server: string } {
    return { server: this.server };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `AgentClient(${this.server})`;
  }

  private call<T>(path: string, body: unknown, signal?: AbortSignal, timeoutMs = this.#o.timeoutMs, attempts = this.#o.attempts, onOk?: (res: Response) => void): Promise<T> {
    return request<T>(this.server, 'POST', path, body, { token: this.#key, signal, timeoutMs, attempts, retryDelayMs: this.#o.retryDelayMs, onOk });
  }

  /** One long poll; a single attempt, the agent loop backs off itself. */
  poll(signal?: AbortSignal): Promise<PollResponse> {
    return this.call<PollResponse>('/api/v1/agent/poll', {}, signal, this.#o.pollTimeoutMs, 1, (res) => {
      this.#rotationAsked = res.headers.get(KEY_ROTATION_HEADER) === '1';
    });
  }

  /** Whether the last poll reply said an admin asked for a new node key. */
  get keyRotationAsked(): boolean {
    return this.#rotationAsked;
  }

  /** The node's next key, sent once; the current key keeps working until the new one is used. */
  async fetchNewKey(signal?: AbortSignal): Promise<string> {
    const res = await this.call<RotateKeyResponse>('/api/v1/agent/rotate-key', {}, signal, 30_000, 3);
    if (!/^wpb_n_[A-Za-z0-9_-]{43}$/.test(res.node_key)) throw failure('The server sent a node key that is not one; keeping the current key');
    return res.node_key;
  }

  /** Switches to a new key (after it is safely stored): every later request uses it. */
  useKey(nodeKey: string): void {
    this.#key = nodeKey;
    this.#rotationAsked = false;
  }

  progress(jobId: string, report: ProgressReport, signal?: AbortSignal): Promise<ProgressReply> {
    return this.call<ProgressReply>(`/api/v1/agent/jobs/${encodeURIComponent(jobId)}/progress`, report, signal, 10_000, 2);
  }

  uploadStart(jobId: string, signal?: AbortSignal): Promise<UploadStartResponse> {
    return this.call<UploadStartResponse>(`/api/v1/agent/jobs/${encodeURIComponent(jobId)}/upload/start`, {}, signal);
  }

  /** URLs for these parts, each signed for a body of exactly partSize bytes. */
  partUrls(jobId: string, partNumbers: number[], partSize: number, signal?: AbortSignal): Promise<PartUrlsResponse> {
    return this.call<PartUrlsResponse>(`/api/v1/agent/jobs/${encodeURIComponent(jobId)}/upload/parts`, { part_numbers: partNumbers, part_size: partSize }, signal);
  }

  uploadComplete(jobId: string, body: UploadCompleteRequest, signal?: AbortSignal): Promise<UploadCompleteResponse> {
    return this.call<UploadCompleteResponse>(`/api/v1/agent/jobs/${encodeURIComponent(jobId)}/upload/complete`, body, signal, 300_000);
  }

  uploadAbort(jobId: string): Promise<{ aborted: boolean }> {
    return this.call<{ aborted: boolean }>(`/api/v1/agent/jobs/${encodeURIComponent(jobId)}/upload/abort`, {}, undefined, 30_000, 3);
  }

  /** This node's scan for WordPress sites, replacing the last one on the server. */
  scan(report: ScanReport, signal?: AbortSignal): Promise<ScanReply> {
    return this.call<ScanReply>('/api/v1/agent/scan', report, signal, 60_000, 3);
  }

  finish(jobId: string, body: FinishRequest): Promise<{ state: string }> {
    return this.call<{ state: string }>(`/api/v1/agent/jobs/${encodeURIComponent(jobId)}/finish`, body);
  }
}
