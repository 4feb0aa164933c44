import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { badInput, failure } from '../errors.ts';
import type { Logger } from '../log.ts';

// `wpbackup server --metrics-listen 127.0.0.1:9464`: GET /metrics without a token, on an
// address of its own (one a firewall keeps to the Prometheus host), and nothing else there.

export interface MetricsScraper {
  scrape(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsListener {
  url: string;
  close(): Promise<void>;
}

/** HOST:PORT, [IPv6]:PORT or :PORT (all addresses); port 0 picks a free one. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw badInput(`--metrics-listen must be HOST:PORT, e.g. 127.0.0.1:9464, not ${text}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export async function startMetricsListener(address: string, metrics: MetricsScraper, log: Logger): Promise<MetricsListener> {
  const { host, port } = parseListenAddress(address);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(path === '/metrics' ? 405 : 404, { 'content-type': 'text/plain; charset=utf-8', ...(path === '/metrics' ? { allow: 'GET, HEAD' } : {}) });
      res.end(path === '/metrics' ? 'Only GET /metrics here\n' : 'Only /metrics here\n');
      return;
    }
    metrics.scrape().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        log.error({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('The scrape failed; the server logged why\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(failure(`Cannot serve metrics on ${address}`, err, 'Pick a free address for --metrics-listen')));
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`;
  return {
    url,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
