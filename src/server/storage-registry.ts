import { join } from 'node:path';
import { failure } from '../errors.ts';
import type { ServerMultipart } from '../storage/server-multipart.ts';
import type { PendingUpload, Storage } from '../storage/storage.ts';
import { isConflict } from './db/errors.ts';
import type { StorageProviderRow, StorageProvidersRepo } from './db/storage-providers.ts';
import { providerMultipart, providerStorage, type FactoryDeps } from './storage-factory.ts';

// One Storage per storage provider, made from its row by storage-factory.ts: S3Storage with
// the decrypted credentials, or LocalStorage whose presigned URLs are served by this server
// (local-download.ts). Instances are cached; an entry is rebuilt when the provider's row
// changes, when it is older than CACHE_MS (so changed credentials are picked up), or at once
// after invalidate(). A site without a provider of its own uses the default one; when there
// is none, a local provider under <dataDir>/backups is created on first need. The server
// context owns the registry and closes it (and with it every cached client) at shutdown.

const CACHE_MS = 60_000;
export const DEFAULT_LOCAL_NAME = 'default-local';

interface Entry {
  storage: Storage;
  provider: StorageProviderRow;
  fingerprint: string;
  at: number;
}

export interface ResolvedStorage {
  provider: StorageProviderRow;
  storage: Storage;
}

function fingerprint(p: StorageProviderRow): string {
  return JSON.stringify([p.type, p.rootPath, p.endpoint, p.bucket, p.region, p.pathStyle, p.prefix, p.hasCredentials]);
}

export interface RegistryDeps extends FactoryDeps {
  providers: Pick<StorageProvidersRepo, 'get' | 'getDefault' | 'create' | 'credentials'>;
  /** The default local provider goes under <dataDir>/backups. */
  dataDir: string;
}

export class StorageRegistry {
  readonly #deps: RegistryDeps;
  readonly #cache = new Map<string, Entry>();
  #creatingDefault: Promise<StorageProviderRow> | undefined;

  constructor(deps: RegistryDeps) {
    this.#deps = deps;
  }

  /** The Storage of provider id; undefined when there is no such provider. */
  async get(providerId: string): Promise<ResolvedStorage | undefined> {
    const provider = await this.#deps.providers.get(providerId);
    if (!provider) {
      this.invalidate(providerId);
      return undefined;
    }
    return this.#forRow(provider);
  }

  /** Like get(), but a missing provider is an error (a job or backup names one that was removed). */
  async require(providerId: string): Promise<ResolvedStorage> {
    const found = await this.get(providerId);
    if (!found) throw failure(`Storage provider ${providerId} no longer exists`);
    return found;
  }

  /** The default provider and its Storage, creating the local default first if there is none. */
  async defaultStorage(): Promise<ResolvedStorage> {
    return this.#forRow(await this.defaultProvider());
  }

  /** The default provider; a local one under <dataDir>/backups is created on first need. */
  async defaultProvider(): Promise<StorageProviderRow> {
    const found = await this.#deps.providers.getDefault();
    if (found) return found;
    // One creation per process at a time; other processes race through the unique indexes.
    this.#creatingDefault ??= this.#createDefault().finally(() => {
      this.#creatingDefault = undefined;
    });
    return this.#creatingDefault;
  }

  /** Where a site's new backups go: the default provider (sites have no provider of their own yet). */
  async forSite(_siteId: string): Promise<ResolvedStorage> {
    return this.defaultStorage();
  }

  /** Aborts an unfinished upload recorded on a job; a missing provider or upload is not an error. */
  async abortUpload(u: { storageId: string | null; uploadKey: string | null; uploadId: string | null }): Promise<boolean> {
    if (!u.storageId || !u.uploadKey || !u.uploadId) return false;
    const found = await this.get(u.storageId);
    if (!found) return false;
    const pending: PendingUpload = { backend: found.provider.type, key: u.uploadKey, uploadId: u.uploadId };
    await found.storage.abortPending(pending);
    return true;
  }

  /** A new server-side handle for an agent's upload to provider (not cached: close it when done). */
  multipart(provider: StorageProviderRow): Promise<ServerMultipart> {
    return providerMultipart(this.#deps, provider);
  }

  /** Drops the cached instance of a provider (call after editing or removing it). */
  invalidate(providerId: string): void {
    const entry = this.#cache.get(providerId);
    this.#cache.delete(providerId);
    entry?.storage.close?.();
  }

  /** How many providers have an instance cached (tests). */
  get size(): number {
    return this.#cache.size;
  }

  /** Closes every cached client. */
  close(): void {
    for (const id of [...this.#cache.keys()]) this.invalidate(id);
  }

  async #forRow(provider: StorageProviderRow): Promise<ResolvedStorage> {
    const cached = this.#cache.get(provider.id);
    const fp = fingerprint(provider);
    if (cached && cached.fingerprint === fp && Date.now() - cached.at < CACHE_MS) return { provider, storage: cached.storage };
    const storage = await providerStorage(this.#deps, provider);
    this.invalidate(provider.id);
    this.#cache.set(provider.id, { storage, provider, fingerprint: fp, at: Date.now() });
    return { provider, storage };
  }

  async #createDefault(): Promise<StorageProviderRow> {
    const repo = this.#deps.providers;
    const rootPath = join(this.#deps.dataDir, 'backups');
    for (const name of [DEFAULT_LOCAL_NAME, `${DEFAULT_LOCAL_NAME}-${Date.now()}`]) {
      try {
        return await repo.create({ name, type: 'local', rootPath, isDefault: true });
      } catch (err) {
        if (!isConflict(err, 'duplicate')) throw err;
        // Another server made the default first, or an unrelated provider has that name.
        const now = await repo.getDefault();
        if (now) return now;
      }
    }
    const last = await repo.getDefault();
    if (!last) throw failure('Could not create a default storage provider');
    return last;
  }
}
