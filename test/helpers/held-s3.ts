import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// An S3 endpoint that answers every request with an empty 200 (a HEAD on a bucket: it exists),
// but only when the test releases it: it holds a preflight at the point where a real server
// would be checking the bucket, so a test can make another request meanwhile. In addition to
// MinIO, which answers too fast to race against.

export interface HeldRequest {
  method: string;
  path: string;
  release(): void;
}

export interface HeldS3 {
  endpoint: string;
  /** Requests received and not yet released, oldest first. */
  held: HeldRequest[];
  close(): Promise<void>;
}

export async function startHeldS3(): Promise<HeldS3> {
  const held: HeldRequest[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const entry: HeldRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      release: () => {
        held.splice(held.indexOf(entry), 1);
        res.writeHead(200, { 'x-amz-request-id': 'held-s3', 'x-amz-bucket-region': 'us-east-1', 'content-length': '0' }).end();
      },
    };
    held.push(entry);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    held,
    close: async () => {
      for (const h of [...held]) h.release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
