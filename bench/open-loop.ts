// An open-loop HTTP load generator: requests arrive at the given rate whether or not earlier ones
// have been answered, as 500 agents and their users do, and each latency runs from the moment
// the request was due, not from when a connection got round to sending it (wrk2's rule against
// coordinated omission: a stall delays every request that fell due during it, and each of those
// counts the wait).
//
// Why not autocannon, which npm run bench:api used until issue 9's last figure: in rate mode
// each connection sends its share of a second back to back as soon as the second starts and then
// idles (lib/httpClient.js, reqsMadeThisSecond), so 2,000 req/s arrived as one burst each second
// at whatever rate the server could take; and its correction for coordinated omission records a
// response of T ms with T-1, T-2, ... 1 ms beside it (recordValueWithExpectedInterval(T,
// Math.ceil(1 / rate)), the per-connection rate being in requests per second, so the interval is
// 1 ms instead of 25 ms), so one 60 ms stall among 30,000 responses decided the p99.
//
// Arrivals are a Poisson process by default (independent clients: bursts happen, as in life);
// `even` spaces them exactly. One request per connection at a time; a request that finds every
// connection busy opens another, up to `maxConnections`, and beyond that waits its turn (the
// wait counts); connections stay open from one run to the next (LoadClient). Responses need a
// Content-Length (Fastify sends one).

import { connect, type Socket } from 'node:net';

export interface LoadRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface OpenLoopOptions {
  /** http://host:port */
  url: string;
  /** Requests per second. */
  rate: number;
  seconds: number;
  /** The next request to send (called once per request, when it falls due). */
  next: () => LoadRequest;
  arrivals?: 'poisson' | 'even';
  maxConnections?: number;
  /** Deterministic arrivals for a given seed (tests); Math.random otherwise. */
  random?: () => number;
}

export interface OpenLoopResult {
  /** Each response's latency from the moment its request was due, ms, in completion order. */
  latencies: number[];
  /** Responses by status code. */
  statuses: Map<number, number>;
  /** Requests that got no response (the connection failed or closed). */
  errors: number;
  /** Requests due over the run (all of them are sent). */
  sent: number;
  /** Connections this run opened. */
  connections: number;
  /** The time from the first request due to the last response, ms. */
  elapsedMs: number;
}

interface Pending {
  dueAt: number;
  request: LoadRequest;
}

/** One keep-alive connection with one request in flight at most. */
class Conn {
  private readonly socket: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private inFlight: Pending | null = null;
  private readonly onDone: (conn: Conn, due: Pending, status: number | null) => void;
  closed = false;

  constructor(host: string, port: number, onDone: (conn: Conn, due: Pending, status: number | null) => void) {
    this.onDone = onDone;
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    this.socket.on('error', () => this.fail());
    this.socket.on('close', () => this.fail());
  }

  get idle(): boolean {
    return this.inFlight === null && !this.closed;
  }

  send(p: Pending, hostHeader: string): void {
    this.inFlight = p;
    const { method, path, headers = {}, body } = p.request;
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${hostHeader}\r\nconnection: keep-alive\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    if (body !== undefined) head += `content-length: ${Buffer.byteLength(body)}\r\n`;
    // One write: two small writes could meet Nagle's algorithm on the other side's delayed ACK.
    this.socket.write(head + '\r\n' + (body ?? ''));
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.subarray(0, end).toString('latin1');
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (!length) {
      this.fail();
      return;
    }
    const total = end + 4 + Number(length[1]);
    if (this.buf.length < total) return;
    this.buf = this.buf.subarray(total);
    const status = Number(head.slice(9, 12));
    const done = this.inFlight;
    this.inFlight = null;
    // Closed first, so the next request waiting does not go out on a connection the server ends.
    if (/\r\nconnection: *close/i.test(head)) this.close();
    if (done) this.onDone(this, done, status);
  }

  private fail(): void {
    if (this.closed && this.inFlight === null) return;
    this.closed = true;
    this.socket.destroy();
    const lost = this.inFlight;
    this.inFlight = null;
    if (lost) this.onDone(this, lost, null);
  }
}

/** The due times of a run, ms from its start. */
export function arrivalTimes(rate: number, seconds: number, arrivals: 'poisson' | 'even', random: () => number): number[] {
  const times: number[] = [];
  const mean = 1000 / rate;
  const end = seconds * 1000;
  for (let t = 0; ; ) {
    t += arrivals === 'even' ? mean : -Math.log(1 - random()) * mean;
    if (t >= end) return times;
    times.push(t);
  }
}

/**
 * Keep-alive connections to one server, kept across runs: a warm-up run opens what the rate
 * needs and the measured run that follows uses them, as agents and browsers keep theirs.
 */
export class LoadClient {
  readonly #host: string;
  readonly #port: number;
  readonly #hostHeader: string;
  readonly #maxConnections: number;
  #conns: Conn[] = [];
  /** The current run's handler of an answered (or lost) request. */
  #onDone: (conn: Conn, p: Pending, status: number | null) => void = () => {};

  constructor(url: string, maxConnections = 256) {
    const u = new URL(url);
    this.#host = u.hostname;
    this.#port = Number(u.port);
    this.#hostHeader = u.host;
    this.#maxConnections = maxConnections;
  }

  async run(o: Omit<OpenLoopOptions, 'url' | 'maxConnections'>): Promise<OpenLoopResult> {
    const due = arrivalTimes(o.rate, o.seconds, o.arrivals ?? 'poisson', o.random ?? Math.random);
    const result: OpenLoopResult = { latencies: [], statuses: new Map(), errors: 0, sent: due.length, connections: 0, elapsedMs: 0 };
    const waiting: Pending[] = [];
    let answered = 0;
    let finish: () => void = () => {};
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const dispatch = (p: Pending, conn = this.#conns.find((c) => c.idle)): void => {
      if (!conn && this.#conns.some((c) => c.closed)) this.#conns = this.#conns.filter((c) => !c.closed);
      if (!conn && this.#conns.length < this.#maxConnections) {
        conn = new Conn(this.#host, this.#port, (c, done, status) => this.#onDone(c, done, status));
        this.#conns.push(conn);
        result.connections++;
      }
      if (conn) conn.send(p, this.#hostHeader);
      else waiting.push(p);
    };
    this.#onDone = (conn, p, status) => {
      answered++;
      if (status === null) result.errors++;
      else {
        result.latencies.push(performance.now() - p.dueAt);
        result.statuses.set(status, (result.statuses.get(status) ?? 0) + 1);
      }
      const next = waiting.shift();
      if (next) dispatch(next, conn.idle ? conn : undefined);
      if (answered === due.length) finish();
    };

    const start = performance.now();
    let i = 0;
    // A 1 ms timer sends whatever has fallen due; lateness of the timer counts in the latencies.
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now() - start;
        while (i < due.length && (due[i] as number) <= now) {
          dispatch({ dueAt: start + (due[i] as number), request: o.next() });
          i++;
        }
        if (i < due.length) setTimeout(tick, 1);
        else resolve();
      };
      tick();
    });
    if (due.length > 0) await finished;
    result.elapsedMs = performance.now() - start;
    return result;
  }

  close(): void {
    for (const c of this.#conns) c.close();
    this.#conns = [];
  }
}

/** One run on connections of its own. */
export async function openLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const client = new LoadClient(o.url, o.maxConnections);
  try {
    return await client.run(o);
  } finally {
    client.close();
  }
}

/** The q-quantile (0..1) of a list of latencies, ms. */
export function quantile(ms: number[], q: number): number {
  const sorted = Float64Array.from(ms).sort();
  return sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number);
}
