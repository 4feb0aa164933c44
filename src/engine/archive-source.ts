import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { badInput, failure } from '../errors.ts';
import { openStorage } from '../storage/open.ts';

// Where a restore reads its archive from: a file, an s3://bucket/key, or an http(s) URL
// (a presigned download link). Always a stream; nothing is downloaded to disk first.
// locateArchive() checks what it can without downloading (the file exists, the object
// exists), so a restore can check its database before the first byte comes.

export interface ArchiveStream {
  /** A download's bytes, or a local file, which extraction reads with a thread of its own. */
  stream: Readable | FileHandle;
  /** Compressed size, when the source says. */
  size: number | undefined;
  name: string;
}

export interface SourceOptions {
  env?: NodeJS.ProcessEnv;
  s3ConfigFile?: string;
  signal?: AbortSignal;
}

async function fromHttp(url: string, signal?: AbortSignal): Promise<ArchiveStream> {
  let res: Response;
  try {
    res = await fetch(url, { signal });
  } catch (err) {
    throw failure(`Cannot download ${new URL(url).host}: ${(err as Error).message}`, err, 'Check the URL and the network');
  }
  if (!res.ok || !res.body) {
    const hint = res.status === 403 ? 'A presigned link expires after an hour: ask for a new one' : 'Check the URL';
    throw badInput(`Download of the archive failed with HTTP ${res.status}`, hint);
  }
  const len = Number(res.headers.get('content-length'));
  return { stream: Readable.fromWeb(res.body as ReadableStream), size: Number.isFinite(len) && len > 0 ? len : undefined, name: new URL(url).pathname.split('/').pop() ?? 'archive' };
}

async function fromS3(url: string, o: SourceOptions): Promise<ArchiveLocation> {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m) throw badInput(`${url} names no object`, 'Use s3://bucket/path/to/archive.tar.zst');
  const [, bucket, key] = m as unknown as [string, string, string];
  const storage = openStorage(`s3://${bucket}`, { env: o.env, s3ConfigFile: o.s3ConfigFile });
  const info = await storage.head(key);
  if (!info) throw badInput(`There is no archive at ${url}`, 'List the backups with your S3 tool, or check the key');
  const name = key.split('/').pop() ?? key;
  return { name, open: async () => ({ stream: await storage.get(key, { signal: o.signal }), size: info.size, name }) };
}

async function fromFile(path: string): Promise<ArchiveLocation> {
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile()) throw badInput(`Archive ${path} does not exist or is not a file`, 'Pass a .tar.zst file, an s3://bucket/key or a download URL');
  const name = path.split('/').pop() ?? path;
  return { name, open: () => openFile(path, name) };
}

/** O_NONBLOCK: a FIFO put at the name since the check must not hang the open (files ignore it). */
async function openFile(path: string, name: string): Promise<ArchiveStream> {
  const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const st = await file.stat();
  if (!st.isFile()) {
    await file.close();
    throw badInput(`Archive ${path} is not a file`, 'Pass a .tar.zst file, an s3://bucket/key or a download URL');
  }
  return { stream: file, size: st.size, name };
}

export interface ArchiveLocation {
  name: string;
  /** Starts the download (or the read). */
  open(): Promise<ArchiveStream>;
}

/** Checks that the archive is there, as far as that goes without downloading it. */
export async function locateArchive(archive: string, o: SourceOptions = {}): Promise<ArchiveLocation> {
  if (/^https?:\/\//i.test(archive)) {
    const url = new URL(archive);
    return { name: url.pathname.split('/').pop() ?? 'archive', open: () => fromHttp(archive, o.signal) };
  }
  if (archive.startsWith('s3://')) return fromS3(archive, o);
  if (archive.startsWith('file://')) return fromFile(fileURLToPath(archive));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(archive)) throw badInput(`Unsupported archive location ${archive}`, 'Use a file path, s3://bucket/key, or an https:// URL');
  return fromFile(resolve(archive));
}

export async function openArchive(archive: string, o: SourceOptions = {}): Promise<ArchiveStream> {
  return (await locateArchive(archive, o)).open();
}
