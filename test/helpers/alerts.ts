import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApiResponse, TestServer } from './server.ts';
import { services } from './services.ts';

// What the alert tests share: a real HTTP receiver that checks webhook signatures, Mailpit's
// HTTP API (the messages a test's unique address received), and an agent that runs a backup
// job through the real agent API to a failure or a completed upload.

export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The signature header matched HMAC-SHA256(secret, body) under the receiver's secret. */
  signed: boolean;
}

/** Answers each request with the next of `statuses` (200 once they run out). */
export class Receiver {
  readonly got: Received[] = [];
  statuses: number[] = [];
  secret = '';
  url = '';
  #server: Server | undefined;

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        this.got.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, signed: this.#verify(req.headers['x-wpbackup-signature'], body) });
        res.statusCode = this.statuses.shift() ?? 200;
        res.end('ok');
      });
    });
    await new Promise<void>((r) => this.#server?.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  #verify(header: string | string[] | undefined, body: string): boolean {
    if (typeof header !== 'string' || !this.secret) return false;
    const want = Buffer.from(`sha256=${createHmac('sha256', this.secret).update(body).digest('hex')}`);
    const got = Buffer.from(header);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  /** Webhook bodies received (parsed), optionally of one event kind. */
  events(kind?: string): { event: string; reminder: boolean; site: { id: string; url: string } | null; detail: Record<string, unknown>; text: string }[] {
    return this.got.filter((r) => r.method === 'POST' && r.headers['content-type'] === 'application/json').map((r) => JSON.parse(r.body)).filter((e) => !kind || e.event === kind);
  }

  close(): Promise<void> {
    return new Promise((r) => (this.#server ? this.#server.close(() => r()) : r()));
  }
}

/** Mailpit's addresses, from the services file (written by scripts/test-services.sh, which starts it). */
export function mailpit(): { smtpHost: string; smtpPort: number; api: string } {
  const m = services().mailpit as ReturnType<typeof services>['mailpit'] | undefined;
  if (!m) throw new Error("The test services file names no Mailpit: run 'bash scripts/test-services.sh' (it builds and starts Mailpit)");
  return m;
}

export interface MailMessage {
  ID: string;
  Subject: string;
  To: { Address: string }[];
}

/** Every message Mailpit holds for this address. */
export async function mailTo(address: string): Promise<MailMessage[]> {
  const res = await fetch(`${mailpit().api}/api/v1/search?query=${encodeURIComponent(`to:"${address}"`)}&limit=200`);
  if (!res.ok) throw new Error(`Mailpit search answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { messages: MailMessage[] }).messages;
}

export async function mailText(id: string): Promise<string> {
  const res = await fetch(`${mailpit().api}/api/v1/message/${id}`);
  return ((await res.json()) as { Text: string }).Text;
}

export const uniqueAddress = (what: string): string => `${what}-${randomBytes(5).toString('hex')}@alerts.example.com`;

/** An email channel on Mailpit, authenticating with a password (Mailpit takes any). */
export function mailpitChannel(name: string, to: string[], siteIds: string[] | null, password = `smtp-${randomBytes(8).toString('hex')}`): Record<string, unknown> {
  const m = mailpit();
  return { name, type: 'email', site_ids: siteIds, email: { host: m.smtpHost, port: m.smtpPort, tls: 'none', user: 'wpbackup', password, from: 'wpbackup@alerts.example.com', to } };
}

/** A node's agent, driving one backup job of a site through the agent API. */
export function agentOf(t: TestServer, key: string, providerId: string) {
  const post = (path: string, body: unknown = {}): Promise<ApiResponse> => t.api('POST', path, { body, token: key });
  const claim = async (siteId: string): Promise<string> => {
    await t.server.ctx.repos.jobs.enqueueBackup(siteId, { storageId: providerId });
    const polled = await post('/api/v1/agent/poll');
    if (polled.body.job?.site.id !== siteId) throw new Error(`the agent got no job for ${siteId}: ${JSON.stringify(polled.body)}`);
    return polled.body.job.job_id as string;
  };
  return {
    /** A backup that fails during backup_db with error. */
    async fail(siteId: string, error = 'mysqldump: Got error: 2002: Can\'t connect to local server'): Promise<string> {
      const jobId = await claim(siteId);
      const p = await post(`/api/v1/agent/jobs/${jobId}/progress`, { status: 'running', progress: 5, stage: 'backup_db', stage_detail: 'dumping', error: null });
      if (p.status !== 200) throw new Error(`progress: ${JSON.stringify(p.body)}`);
      const f = await post(`/api/v1/agent/jobs/${jobId}/finish`, { status: 'failed', stage: 'backup_db', error });
      if (f.status !== 200) throw new Error(`finish: ${JSON.stringify(f.body)}`);
      return jobId;
    },
    /** A backup that uploads a small archive and completes. */
    async succeed(siteId: string): Promise<string> {
      const jobId = await claim(siteId);
      const base = `/api/v1/agent/jobs/${jobId}/upload`;
      if ((await post(`${base}/start`)).status !== 200) throw new Error('upload/start failed');
      const body = randomBytes(64);
      const urls = await post(`${base}/parts`, { part_numbers: [1], part_size: body.length });
      const res = await fetch(urls.body.urls['1'], { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
      const etag = res.headers.get('etag') ?? '';
      await res.text();
      const done = await post(`${base}/complete`, { parts: [{ part_number: 1, etag }], size: body.length, sha256: createHash('sha256').update(body).digest('hex') });
      if (done.status !== 200) throw new Error(`upload/complete: ${JSON.stringify(done.body)}`);
      const f = await post(`/api/v1/agent/jobs/${jobId}/finish`, { status: 'completed', stage: 'cleanup', error: null, source_bytes: 1000 });
      if (f.status !== 200) throw new Error(`finish: ${JSON.stringify(f.body)}`);
      return jobId;
    },
  };
}
