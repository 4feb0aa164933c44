import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { WpbError, badInput, failure, stopped, throwIfStopped } from '../errors.ts';
import { HashTap } from '../hash-tap.ts';
import { checkExpiry, compareKeys, validateKey, validatePrefix } from './keys.ts';
import type { ObjectInfo, PendingUpload, PutOptions, PutResult, Storage } from './storage.ts';

// A directory as storage. An object is written to a hidden temp file next to its final
// name, fsynced, size-checked and renamed, so a crash never leaves half an object under
// the final name; the temp name is the "upload id" a successor can clean up.

/** Signs a URL for key; the server passes one so local objects get http URLs. */
export type LocalSigner = (key: string, expiresInSeconds: number) => string | Promise<string>;

const TEMP_PREFIX = '.wpb-upload-';
const TEMP_NAME = /^\.wpb-upload-[0-9a-f]{16}\.tmp$/;

export class LocalStorage implements Storage {
  readonly location: string;
  private readonly signer: LocalSigner | undefined;

  constructor(dir: string, opts: { presign?: LocalSigner } = {}) {
    this.location = resolve(dir);
    this.signer = opts.presign;
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
    let temp: string | undefined;
    try {
      const path = this.pathOf(key);
      throwIfStopped(opts.signal);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const name = tempName();
      temp = join(dirname(path), name);
      const file = await open(temp, 'wx', 0o600);
      try {
        await opts.onUploadStarted?.({ backend: 'local', key, uploadId: name });
      } catch (err) {
        await file.close();
        throw err;
      }
      const { size, sha256 } = await writeAndSync(body, file, opts);
      const stored = (await stat(temp)).size;
      if (stored !== size) throw failure(`Stored ${stored} bytes for "${key}" in ${this.location} but received ${size}`);
      await rename(temp, path);
      await syncDir(dirname(path));
      return { key, size, sha256 };
    } catch (err) {
      body.destroy();
      if (temp) await rm(temp, { force: true });
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

/** Copies body into file while hashing, then fsyncs; reports bytes handed to the file. */
async function writeAndSync(body: Readable, file: FileHandle, opts: PutOptions): Promise<{ size: number; sha256: string }> {
  const tap = new HashTap(opts.onProgress);
  // flush: true makes the stream fsync before closing the file.
  const out = file.createWriteStream({ flush: true, highWaterMark: 1024 * 1024 });
  await pipeline(body, tap, out, { signal: opts.signal });
  return { size: tap.bytes, sha256: tap.sha256() };
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
