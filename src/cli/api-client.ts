import { badInput, failure, WpbError } from '../errors.ts';
import type { ApiErrorBody } from '../api/types.ts';

// The CLI's way to the server: WPBACKUP_URL and WPBACKUP_TOKEN (an API token from
// POST /api/v1/tokens), the same variables the shell scripts use. API errors keep the
// server's message; 4xx are the caller's to fix (exit 2), the rest are failures.

export interface ApiClient {
  baseUrl: string;
  json<T>(method: string, path: string, body?: unknown): Promise<T>;
  stream(path: string, signal: AbortSignal): Promise<ReadableStream<Uint8Array>>;
}

export function apiClient(env: NodeJS.ProcessEnv): ApiClient {
  const baseUrl = env.WPBACKUP_URL?.replace(/\/+$/, '');
  const token = env.WPBACKUP_TOKEN;
  if (!baseUrl) throw badInput('WPBACKUP_URL is not set', 'Set it to the server, e.g. export WPBACKUP_URL=http://127.0.0.1:8080');
  if (!token) throw badInput('WPBACKUP_TOKEN is not set', 'Create an API token (POST /api/v1/tokens) and export WPBACKUP_TOKEN=...');
  const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
  const request = async (method: string, path: string, init: RequestInit = {}): Promise<Response> => {
    try {
      return await fetch(baseUrl + path, { method, ...init, headers: { ...headers, ...(init.headers as Record<string, string>) } });
    } catch (err) {
      throw failure(`Cannot reach the wpbackup server at ${baseUrl}: ${(err as Error).message}`, err, 'Is it running? Check WPBACKUP_URL');
    }
  };
  const check = async (res: Response): Promise<Response> => {
    if (res.ok) return res;
    const body = (await res.json().catch(() => undefined)) as ApiErrorBody | undefined;
    const msg = body?.error?.message ?? `HTTP ${res.status}`;
    if (res.status === 401) throw badInput(`The server refused the token: ${msg}`, 'Check WPBACKUP_TOKEN');
    throw new WpbError(res.status < 500 ? 'bad_input' : 'failed', msg);
  };
  return {
    baseUrl,
    json: async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const init: RequestInit = body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } };
      const res = await check(await request(method, path, init));
      // 204 No Content (a DELETE): nothing to parse.
      return (res.status === 204 ? undefined : await res.json()) as T;
    },
    stream: async (path, signal) => {
      const res = await check(await request('GET', path, { signal, headers: { accept: 'text/event-stream' } }));
      if (!res.body) throw failure('The server sent no event stream');
      return res.body;
    },
  };
}

/** Reads Server-Sent Events: yields each event's name and parsed JSON data. */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: unknown }> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buf.indexOf('\n\n')) !== -1) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join('\n')) };
    }
  }
}
