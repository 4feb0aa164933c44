import { randomBytes } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { DIRECT_ALIGN, O_DIRECT, alignUp, alignedBuffer, isAlignedBuffer, refusedDirect } from './direct-io.ts';
import { WpbError, badInput, failure, stopped, throwIfStopped } from '../errors.ts';
import { checkExpiry, compareKeys, validateKey, validatePrefix } from './keys.ts';
import { choosePartSize, uploadMultipart, type PartSink } from './multipart.ts';
import type { ObjectInfo, PendingUpload, PutOptions, PutResult, Storage } from './storage.ts';

// A directory as storage. An object is written to a hidden temp file next to its final
// name, fsynced, size-checked and renamed, so a crash never leaves half an object under
// the final name; the temp name is the "upload id" a successor can clean up.
// Writing takes the S3 path's design (multipart.ts): the body is read straight into a few
// reused part buffers and hashed there, and each part is written at its offset while the
// next one fills. No stream stages, no buffer per chunk; parts go to disk as they are written
// (direct I/O, or a datasync every WRITEBACK_EVERY bytes where the filesystem has none), and
// one fsync at the end.

/** Parts written at once: one writing while the next fills is enough for a local disk. */
const WRITE_CONCURRENCY = 2;
/** The write unit: big enough for few thread-pool round trips, small enough to keep RSS low (3 in use). */
const DEFAULT_PART_SIZE = 2 * 1024 * 1024;
/** Bytes written between two writebacks (LocalFile.startWriteback). */
const WRITEBACK_EVERY = 32 * 1024 * 1024;

/** Signs a URL for key; the server passes one so local objects get http URLs. */
export type LocalSigner = (key: string, expiresInSeconds: number) => string | Promise<string>;

const TEMP_PREFIX = '.wpb-upload-';
const TEMP_NAME = /^\.wpb-upload-[0-9a-f]{16}\.tmp$/;

export class LocalStorage implements Storage {
  readonly location: string;
  private readonly signer: LocalSigner | undefined;
  private readonly partSize: number | undefined;
  private readonly directIo: boolean;

  /**
   * partSize: the write unit (default 2 MiB); directIo: write around the page cache where the
   * filesystem allows (default true; false for the plain path).
   */
  constructor(dir: string, opts: { presign?: LocalSigner; partSize?: number; directIo?: boolean } = {}) {
    this.location = resolve(dir);
    this.signer = opts.presign;
    this.partSize = opts.partSize;
    this.directIo = opts.directIo ?? true;
  }

  async preflight(): Promise<void> {
    const probe = join(this.location, tempName());
    try {
      await mkdir(this.location, { recursive: true, mode: 0o700 });
      await (await open(probe, 'wx', 0o600)).close();
      await rm(probe, { force: true });
    } catch (err) {
      throw badInput(`Backup directory ${this.location} is not usable: ${reasonOf(err)}`, 'Fix its permissions or choose another directory', err);
    }
  }

  async put(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    let file: LocalFile | undefined;
    try {
      const path = this.pathOf(key);
      throwIfStopped(opts.signal);
      // A file takes any number of parts, so no size hint has to make them bigger.
      const partSize = choosePartSize(this.partSize ?? DEFAULT_PART_SIZE);
      file = await LocalFile.create(this.location, path, partSize, this.directIo);
      await opts.onUploadStarted?.({ backend: 'local', key, uploadId: file.name });
      const sink = file.sink((err, action) => this.explain(err, `${action} "${key}"`));
      // One attempt per part: a local write that failed (no space, I/O error) fails again.
      const r = await uploadMultipart(body, sink, { partSize, concurrency: WRITE_CONCURRENCY, retries: 1, maxParts: Infinity, signal: opts.signal, onProgress: opts.onProgress });
      return { key, size: r.size, sha256: r.sha256 };
    } catch (err) {
      body.destroy();
      await file?.discard();
      throw this.explain(err, `writing "${key}"`);
    }
  }

  async get(key: string, opts: { signal?: AbortSignal } = {}): Promise<Readable> {
    const path = this.pathOf(key);
    throwIfStopped(opts.signal);
    try {
      const file = await open(path, 'r');
      if (!(await file.stat()).isFile()) {
        await file.close();
        throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      }
      return createReadStream('', { fd: file, signal: opts.signal });
    } catch (err) {
      throw this.explain(err, `reading "${key}"`);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.pathOf(key);
    try {
      const st = await stat(path);
      return st.isFile() ? { key, size: st.size, modified: st.mtime } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw this.explain(err, `checking "${key}"`);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validatePrefix(prefix);
    // Only whole segments of the prefix name a directory; the rest filters names in it.
    const dirKey = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const found: ObjectInfo[] = [];
    try {
      await this.walk(dirKey, prefix, found);
    } catch (err) {
      throw this.explain(err, `listing "${prefix}"`);
    }
    return found.sort((a, b) => compareKeys(a.key, b.key));
  }

  private async walk(dirKey: string, prefix: string, found: ObjectInfo[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(join(this.location, dirKey), { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const key = dirKey + entry.name;
      if (entry.isDirectory() && (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`))) {
        await this.walk(`${key}/`, prefix, found);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        // A file deleted since readdir is simply not listed.
        const st = await stat(join(this.location, key)).catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(err)));
        if (st) found.push({ key, size: st.size, modified: st.mtime });
      }
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await rm(path);
    } catch (err) {
      if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'ERR_FS_EISDIR') return;
      throw this.explain(err, `deleting "${key}"`);
    }
  }

  async presignGet(key: string, expiresInSeconds: number): Promise<string> {
    const path = this.pathOf(key);
    checkExpiry(expiresInSeconds);
    if (this.signer) return this.signer(key, expiresInSeconds);
    return pathToFileURL(path).href;
  }

  async abortPending(pending: PendingUpload): Promise<void> {
    const path = this.pathOf(pending.key);
    if (pending.backend !== 'local' || !TEMP_NAME.test(pending.uploadId)) {
      throw badInput(`Pending upload "${pending.uploadId}" of "${pending.key}" is not a local temp file`, 'Only uploads started by a local destination can be cleaned up here');
    }
    await rm(join(dirname(path), pending.uploadId), { force: true });
  }

  /** The file for key; also where keys are validated, so every method checks them. */
  private pathOf(key: string): string {
    validateKey(key);
    if (key.split('/').some((s) => s.startsWith(TEMP_PREFIX))) {
      throw badInput(`Invalid storage key "${key}": names starting with ${TEMP_PREFIX} are reserved for temp files`);
    }
    return join(this.location, key);
  }

  private explain(err: unknown, action: string): WpbError {
    if (err instanceof WpbError) return err;
    if (err instanceof Error && err.name === 'AbortError') return stopped();
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const where = `${action} in ${this.location}`;
    if (isMissing(err)) return badInput(`No such object: ${where}`, 'Check the key or the destination', err);
    if (['EACCES', 'EPERM', 'EROFS'].includes(code)) return badInput(`Permission denied ${where}`, 'Fix the directory permissions or choose another directory', err);
    if (['ENOSPC', 'EDQUOT'].includes(code)) return failure(`No space left ${where}`, err, 'Free some space or choose another directory');
    if (['EISDIR', 'ENOTDIR', 'EEXIST'].includes(code)) return badInput(`A key clashes with a directory of other objects ${where}`, 'Use keys that are not prefixes of other keys', err);
    return failure(`Failed ${where}: ${reasonOf(err)}`, err);
  }
}

/**
 * One object being written: a temp file beside its final name, written at offsets, then
 * fsynced, size-checked and renamed into place. Remembers the directories it created so a
 * write that fails or stops leaves no empty ones behind.
 *
 * Parts go to disk around the page cache (direct-io.ts) when the part size is aligned and the
 * filesystem takes O_DIRECT: no kernel copy, no dirty pages to write back, no web server's
 * cache evicted for an archive nobody reads. The last part is written padded to the alignment
 * and the file cut to its size before the fsync. A filesystem that refuses it gets plain writes.
 */
class LocalFile {
  readonly name: string;
  private readonly temp: string;
  private readonly path: string;
  private readonly partSize: number;
  private readonly handle: FileHandle;
  private readonly cleanDirs: () => Promise<void>;
  /** Whether `handle` was opened with O_DIRECT, and whether parts still go through it. */
  private readonly openedDirect: boolean;
  private direct: boolean;
  /** A plain descriptor, for writes direct I/O cannot take (opened when first needed). */
  private plain: Promise<FileHandle> | undefined;
  /** The file holds padding past `written`, cut off at commit. */
  private padded = false;
  private written = 0;
  private closed = false;
  /** Of `written`, when the last writeback started; the one in flight, and the first error one met. */
  private writebackAt = 0;
  private writeback: Promise<void> | undefined;
  private writebackError: unknown;

  private constructor(path: string, name: string, opened: OpenedTemp, partSize: number, cleanDirs: () => Promise<void>) {
    this.path = path;
    this.name = name;
    this.temp = join(dirname(path), name);
    this.handle = opened.handle;
    this.openedDirect = this.direct = opened.direct;
    this.partSize = partSize;
    this.cleanDirs = cleanDirs;
  }

  static async create(root: string, path: string, partSize: number, directIo: boolean): Promise<LocalFile> {
    const dir = dirname(path);
    const created = await mkdir(dir, { recursive: true, mode: 0o700 });
    const cleanDirs = (): Promise<void> => (created ? removeEmptyDirs(root, dir, created) : Promise.resolve());
    const name = tempName();
    try {
      const opened = await openTemp(join(dir, name), directIo && partSize % DIRECT_ALIGN === 0);
      return new LocalFile(path, name, opened, partSize, cleanDirs);
    } catch (err) {
      await cleanDirs();
      throw err;
    }
  }

  /** The PartSink uploadMultipart fills; explain turns fs errors into WpbErrors. */
  sink(explain: (err: unknown, action: string) => WpbError): PartSink {
    return {
      uploadPart: async (partNumber, body) => {
        // Every part but the last is exactly partSize (multipart.ts), so a part's number gives its offset.
        await this.writeAt(body, (partNumber - 1) * this.partSize).catch((err: unknown) => Promise.reject(explain(err, 'writing')));
        return String(partNumber);
      },
      complete: () => this.commit().catch((err: unknown) => Promise.reject(explain(err, 'storing'))),
      abort: () => this.close(),
      allocate: (size) => (this.direct ? alignedBuffer(size) : Buffer.allocUnsafe(size)),
    };
  }

  private async writeAt(buf: Buffer, position: number): Promise<void> {
    if (this.direct && isAlignedBuffer(buf) && position % DIRECT_ALIGN === 0) {
      try {
        await this.writeDirect(buf, position);
        this.written += buf.length;
        return;
      } catch (err) {
        if (!refusedDirect(err)) throw err;
        // The device wants another alignment, or the filesystem changed its mind: plain from here on.
        this.direct = false;
      }
    }
    await writeFully(await this.plainHandle(), buf, position);
    this.written += buf.length;
    this.startWriteback();
  }

  /** Writes an aligned part; the short last part goes out padded (its buffer has the room). */
  private async writeDirect(buf: Buffer, position: number): Promise<void> {
    const length = alignUp(buf.length);
    if (length === buf.length) return writeFully(this.handle, buf, position);
    if (buf.byteOffset + length > buf.buffer.byteLength) throw Object.assign(new Error('no room to pad'), { code: 'EINVAL' });
    const body = Buffer.from(buf.buffer, buf.byteOffset, length).fill(0, buf.length);
    this.padded = true;
    await writeFully(this.handle, body, position);
  }

  private plainHandle(): Promise<FileHandle> {
    if (!this.openedDirect) return Promise.resolve(this.handle);
    this.plain ??= open(this.temp, constants.O_WRONLY);
    return this.plain;
  }
  /**
   * Sends what was written so far to disk while the rest is written (one datasync in flight).
   * Left to the kernel, a multi-GB archive written through the page cache stays dirty until
   * the final fsync, which then writes all of it while the backup waits and the server's
   * other writes queue behind it. (Direct writes leave nothing dirty.)
   */
  private startWriteback(): void {
    if (this.writeback || this.written - this.writebackAt < WRITEBACK_EVERY) return;
    this.writebackAt = this.written;
    this.writeback = this.handle
      .datasync()
      .catch((err: unknown) => void (this.writebackError ??= err))
      .finally(() => (this.writeback = undefined));
  }

  /** Padding cut off, one fsync (of the file, whichever descriptor wrote), the size checked, then the rename, made durable. */
  private async commit(): Promise<void> {
    await this.writeback;
    if (this.writebackError) throw this.writebackError;
    if (this.padded) await this.handle.truncate(this.written);
    await this.handle.sync();
    const stored = (await this.handle.stat()).size;
    await this.close();
    if (stored !== this.written) throw failure(`Stored ${stored} bytes in ${this.temp} but wrote ${this.written}`);
    await rename(this.temp, this.path);
    await syncDir(dirname(this.path));
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writeback;
    const plain = await this.plain?.catch(() => undefined);
    await plain?.close();
    await this.handle.close();
  }

  /** After a failure or stop: no temp file, and no directory this write created left empty. */
  async discard(): Promise<void> {
    await this.close().catch(() => {});
    await rm(this.temp, { force: true });
    await this.cleanDirs();
  }
}

interface OpenedTemp {
  handle: FileHandle;
  direct: boolean;
}

/** Creates the temp file, for direct writes when asked and the filesystem takes them. */
async function openTemp(temp: string, tryDirect: boolean): Promise<OpenedTemp> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
  if (tryDirect && O_DIRECT) {
    try {
      return { handle: await open(temp, flags | O_DIRECT, 0o600), direct: true };
    } catch (err) {
      if (!refusedDirect(err)) throw err;
      // Linux creates the file before it finds the filesystem has no direct I/O.
      await rm(temp, { force: true });
    }
  }
  return { handle: await open(temp, flags, 0o600), direct: false };
}

async function writeFully(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/** Makes the rename durable; some filesystems cannot fsync a directory, which is fine. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // EINVAL/EISDIR on filesystems without directory fsync.
  } finally {
    await handle.close();
  }
}

/**
 * Removes dir and its empty parents that one mkdir created (created is the first of them),
 * never root itself or anything above it. A directory that is not empty (another write's
 * temp file, older backups) stops the walk.
 */
async function removeEmptyDirs(root: string, dir: string, created: string): Promise<void> {
  for (let d = dir; d.startsWith(root + sep) && d.length >= created.length; d = dirname(d)) {
    if (!(await rmdir(d).then(() => true, () => false))) return;
  }
}

function tempName(): string {
  return `${TEMP_PREFIX}${randomBytes(8).toString('hex')}.tmp`;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOTDIR: 'a file is in the way',
  EEXIST: 'a file is in the way',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
};

function reasonOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code) return REASONS[e.code] ?? e.code;
  return e instanceof Error ? e.message : String(err);
}
