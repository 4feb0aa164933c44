import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { WpbError, badInput, failure } from '../errors.ts';
import { HashTap } from '../hash-tap.ts';
import { LocalStorage } from './local.ts';
import type { CompletedPart } from './multipart.ts';
import type { ServerMultipart } from './server-multipart.ts';

// ServerMultipart for a local directory: the part URLs point back at the server, which keeps
// each upload's parts in a directory of its own under uploadsRoot (<data dir>/uploads) and
// joins them into the object on completion. Each upload has a random key, kept in its
// directory, that signs its part URLs: a URL's token (<upload id>.<expiry>.<max bytes>.<hmac>)
// is the only credential a part upload carries.

export const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;
const UPLOAD_ID = /^[0-9a-f]{32}$/;
const SECRET_FILE = 'url.key';

/** Why a local upload was refused; the server turns each into its HTTP answer. */
export type LocalUploadRefusal =
  | 'no_upload' // the upload was aborted or completed
  | 'invalid_parts' // a part is missing or does not match, or the joined object does
  | 'bad_token' // a part URL that is forged, expired or for another part
  | 'too_large'; // a part past the size its URL was signed for

export class LocalUploadError extends WpbError {
  readonly reason: LocalUploadRefusal;
  constructor(reason: LocalUploadRefusal, message: string) {
    super('bad_input', message);
    this.name = 'LocalUploadError';
    this.reason = reason;
  }
}

export interface PartToken {
  u: string;
  n: number;
  /** The most bytes this part may hold: the size its URL was signed for. */
  maxBytes: number;
}

export interface LocalMultipartOptions {
  /** The provider's directory, where completed objects go. */
  root: string;
  /** Where unfinished uploads keep their parts, one directory each. */
  uploadsRoot: string;
  /** The URL a part is PUT to, given its token and number. */
  partUrl: (token: string, partNumber: number) => string;
}

function uploadDir(uploadsRoot: string, uploadId: string): string {
  if (!UPLOAD_ID.test(uploadId)) throw badInput(`Upload id ${JSON.stringify(uploadId)} is not one of ours`);
  return join(uploadsRoot, uploadId);
}

const gone = (uploadId: string): LocalUploadError => new LocalUploadError('no_upload', `Upload ${uploadId} does not exist (aborted or already completed)`);

export class LocalServerMultipart implements ServerMultipart {
  readonly location: string;
  private readonly opts: LocalMultipartOptions;
  private readonly storage: LocalStorage;

  constructor(opts: LocalMultipartOptions) {
    this.opts = opts;
    this.storage = new LocalStorage(opts.root);
    this.location = this.storage.location;
  }

  async create(_key: string): Promise<string> {
    await this.storage.preflight();
    const id = randomBytes(16).toString('hex');
    const dir = uploadDir(this.opts.uploadsRoot, id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // The key that signs this upload's part URLs; it never leaves the server.
    await writeFile(join(dir, SECRET_FILE), randomBytes(32).toString('hex'), { mode: 0o600 });
    return id;
  }

  async presignParts(_key: string, uploadId: string, partNumbers: number[], expiresInSeconds: number, partSize = MAX_PART_BYTES): Promise<Record<string, string>> {
    const secret = await readSecret(this.opts.uploadsRoot, uploadId);
    if (!secret) throw gone(uploadId);
    const urls: Record<string, string> = {};
    const expires = (Date.now() + expiresInSeconds * 1000).toString(36);
    const size = Math.min(partSize, MAX_PART_BYTES).toString(36);
    for (const n of partNumbers) urls[String(n)] = this.opts.partUrl(`${uploadId}.${expires}.${size}.${sign(secret, uploadId, expires, n, size)}`, n);
    return urls;
  }

  async complete(key: string, uploadId: string, parts: CompletedPart[], expect: { size: number; sha256: string }): Promise<void> {
    const dir = uploadDir(this.opts.uploadsRoot, uploadId);
    try {
      await stat(dir);
    } catch {
      throw gone(uploadId);
    }
    for (const p of parts) {
      const etag = await readFile(join(dir, `${p.partNumber}.etag`), 'utf8').catch(() => undefined);
      if (etag === undefined) throw new LocalUploadError('invalid_parts', `Part ${p.partNumber} was never uploaded`);
      if (etag !== p.etag) throw new LocalUploadError('invalid_parts', `Part ${p.partNumber}'s ETag does not match what was stored`);
    }
    const put = await this.storage.put(key, concatParts(dir, parts.map((p) => p.partNumber)));
    if (put.size !== expect.size || put.sha256 !== expect.sha256) {
      await this.storage.delete(key);
      throw new LocalUploadError('invalid_parts', `The joined parts hold ${put.size} bytes with sha256 ${put.sha256}, but ${expect.size} bytes with sha256 ${expect.sha256} were reported; the object was removed`);
    }
    await rm(dir, { recursive: true, force: true });
  }

  async abort(_key: string, uploadId: string): Promise<void> {
    await rm(uploadDir(this.opts.uploadsRoot, uploadId), { recursive: true, force: true });
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    const info = await this.storage.head(key);
    return info && { size: info.size };
  }

  delete(key: string): Promise<void> {
    return this.storage.delete(key);
  }

  close(): void {
    // Files only: nothing held open between calls.
  }
}

function concatParts(dir: string, numbers: number[]): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  void (async () => {
    try {
      for (const n of numbers) await pipeline(createReadStream(join(dir, `${n}.part`), { highWaterMark: 1 << 20 }), out, { end: false });
      out.end();
    } catch (err) {
      out.destroy(err as Error);
    }
  })();
  return out;
}

function sign(secret: string, uploadId: string, expires: string, n: number, size: string): string {
  return createHmac('sha256', secret).update(`${uploadId}.${expires}.${n}.${size}`).digest('base64url');
}

async function readSecret(uploadsRoot: string, uploadId: string): Promise<string | undefined> {
  return readFile(join(uploadDir(uploadsRoot, uploadId), SECRET_FILE), 'utf8').catch(() => undefined);
}

/** Checks a part URL's token; a LocalUploadError ('bad_token') for anything forged, expired or for another part. */
export async function openPartToken(uploadsRoot: string, token: string, partNumber: number): Promise<PartToken> {
  const refused = (why: string): LocalUploadError => new LocalUploadError('bad_token', `This part URL ${why}; ask the server for a new one`);
  const [u = '', expires = '', size = '', mac = ''] = token.split('.');
  if (!UPLOAD_ID.test(u) || !/^[0-9a-z]{1,12}$/.test(expires) || !/^[0-9a-z]{1,12}$/.test(size)) throw refused('is not valid');
  const secret = await readSecret(uploadsRoot, u);
  if (!secret) throw refused('is for an upload that no longer exists');
  const want = Buffer.from(sign(secret, u, expires, partNumber, size));
  const got = Buffer.from(mac);
  if (want.length !== got.length || !timingSafeEqual(want, got)) throw refused('is not valid for this part');
  if (Date.now() > parseInt(expires, 36)) throw refused('has expired');
  return { u, n: partNumber, maxBytes: parseInt(size, 36) };
}

/**
 * Streams one part to <upload dir>/<n>.part (fsynced, renamed into place); returns its ETag.
 * Stops at the size the URL was signed for ('too_large'): the job's byte budget was spent on that.
 */
export async function storeLocalPart(uploadsRoot: string, token: PartToken, body: Readable): Promise<string> {
  const dir = uploadDir(uploadsRoot, token.u);
  try {
    await stat(dir);
  } catch {
    body.resume();
    throw gone(token.u);
  }
  const temp = join(dir, `${token.n}.part.${randomBytes(4).toString('hex')}.tmp`);
  const file = await open(temp, 'wx', 0o600);
  const tap = new HashTap();
  let tooBig = false;
  try {
    let seen = 0;
    const limit = new Transform({
      transform(c: Buffer, _enc, done) {
        seen += c.length;
        if (seen > token.maxBytes) {
          tooBig = true;
          done(new Error('part too large'));
        } else done(null, c);
      },
    });
    await pipeline(body, limit, tap, file.createWriteStream({ flush: true }));
  } catch (err) {
    await rm(temp, { force: true });
    if (tooBig) throw new LocalUploadError('too_large', `Part ${token.n} may hold at most ${token.maxBytes} bytes, the size its URL was signed for`);
    throw failure(`Storing part ${token.n} failed: ${(err as Error).message}`, err);
  }
  const etag = `"${tap.sha256()}"`;
  await rename(temp, join(dir, `${token.n}.part`));
  await writeFile(join(dir, `${token.n}.etag`), etag, { mode: 0o600 });
  return etag;
}

/** Part files left by uploads nobody completed or aborted (for an operator's clean-up). */
export async function localUploadIds(uploadsRoot: string): Promise<string[]> {
  return (await readdir(uploadsRoot).catch(() => [] as string[])).filter((n) => UPLOAD_ID.test(n));
}
