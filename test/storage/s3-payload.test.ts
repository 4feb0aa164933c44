import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { S3Storage } from '../../src/storage/s3.ts';
import { unsignedPayloadOk } from '../../src/storage/s3-payload.ts';
import { makeBucket, removeBucket } from '../helpers/s3.ts';
import { services } from '../helpers/services.ts';

// Which parts carry a signed sha256 of their body, seen on the wire: a proxy in front of
// MinIO records each part request's x-amz-content-sha256 and passes it on unchanged, so
// MinIO checks every signature (the Host header is kept, so signatures still match).

const MiB = 1024 * 1024;

interface Recorded {
  payloadHash: string;
  bodySha256: string;
}

function recordingProxy(target: URL, seen: Recorded[]): Server {
  return createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'PUT' && req.url?.includes('partNumber=')) {
        seen.push({ payloadHash: String(req.headers['x-amz-content-sha256']), bodySha256: createHash('sha256').update(body).digest('hex') });
      }
      const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
}

/** An address of this machine that is not loopback, as a network peer would reach it. */
function networkAddress(): string {
  const found = Object.values(networkInterfaces()).flat().find((a) => a && !a.internal && a.family === 'IPv4');
  assert.ok(found, 'this machine has a non-loopback IPv4 address');
  return found.address;
}

describe('S3 part payload signing', () => {
  let bucket: string;
  let proxy: Server;
  let port: number;
  const seen: Recorded[] = [];
  before(async () => {
    bucket = await makeBucket();
    proxy = recordingProxy(new URL(services().minio.endpoint), seen);
    proxy.listen(0, '0.0.0.0');
    await new Promise((r) => proxy.once('listening', r));
    port = (proxy.address() as AddressInfo).port;
  });
  after(async () => {
    proxy.close();
    await removeBucket(bucket);
  });

  it('decides by endpoint: unsigned over https and loopback, signed over plain http elsewhere', () => {
    for (const e of [undefined, 'https://s3.example.com', 'https://10.0.0.5:9000', 'http://127.0.0.1:9000', 'http://localhost:9000', 'http://[::1]:9000', 'http://127.1.2.3']) {
      assert.equal(unsignedPayloadOk(e), true, String(e));
    }
    for (const e of ['http://10.0.0.5:9000', 'http://minio.internal:9000', 'http://localhost.example.com', 'http://[fd00::2]:9000']) {
      assert.equal(unsignedPayloadOk(e), false, e);
    }
  });

  async function upload(host: string): Promise<Buffer> {
    const m = services().minio;
    const storage = new S3Storage({ endpoint: `http://${host}:${port}`, region: m.region, bucket, forcePathStyle: true, credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey }, partSize: 5 * MiB });
    const data = randomBytes(11 * MiB);
    seen.length = 0;
    try {
      const r = await storage.put(`${host}.bin`, Readable.from([data]));
      assert.equal(r.size, data.length);
      assert.equal(r.sha256, createHash('sha256').update(data).digest('hex'));
      assert.equal((await storage.head(`${host}.bin`))?.size, data.length);
    } finally {
      storage.close();
    }
    assert.equal(seen.length, 3, 'three parts went through the proxy');
    return data;
  }

  it('sends parts to a loopback endpoint as UNSIGNED-PAYLOAD, and MinIO stores them', async () => {
    await upload('127.0.0.1');
    assert.deepEqual(new Set(seen.map((s) => s.payloadHash)), new Set(['UNSIGNED-PAYLOAD']));
  });

  it("signs each part's sha256 for a plain-http endpoint across the network", async () => {
    await upload(networkAddress());
    for (const s of seen) assert.equal(s.payloadHash, s.bodySha256);
  });
});
