import { join } from 'node:path';
import { WpbError } from '../errors.ts';
import { LocalStorage } from '../storage/local.ts';
import { LocalServerMultipart } from '../storage/local-multipart-server.ts';
import { S3ServerMultipart } from '../storage/s3-multipart-server.ts';
import type { S3StorageOptions, SettingNames } from '../storage/s3-options.ts';
import { S3Storage } from '../storage/s3.ts';
import type { ServerMultipart } from '../storage/server-multipart.ts';
import type { Storage } from '../storage/storage.ts';
import type { S3Credentials, StorageProviderRow } from './db/storage-providers.ts';

// The one way from a storage provider's settings to the clients that reach it: the Storage
// the server reads, lists and deletes with (and presigns downloads from), the ServerMultipart
// an agent's upload goes through, and the preflight of settings not stored yet. All of them
// address the bucket alike (endpoint, region, path style, prefix), so an object uploaded
// through one is found by the others.

/** What an s3 provider is reached with: a row's columns, or a create/update request's fields. */
export interface ProviderS3Settings {
  endpoint: string | null;
  bucket: string;
  region: string | null;
  prefix: string;
  /** As stored: an admin may turn it off for an endpoint that serves virtual-hosted buckets. */
  pathStyle: boolean;
  credentials: S3Credentials;
}

export function s3Options(s: ProviderS3Settings, names?: Partial<SettingNames>): S3StorageOptions {
  return {
    endpoint: s.endpoint ?? undefined,
    region: s.region ?? 'us-east-1',
    bucket: s.bucket,
    prefix: s.prefix === '' || s.prefix.endsWith('/') ? s.prefix : `${s.prefix}/`,
    forcePathStyle: s.pathStyle,
    credentials: s.credentials,
    ...(names ? { names } : {}),
  };
}

/** A stored provider that cannot be used as it is (no bucket, no credentials, no directory). */
export class ProviderUnusable extends WpbError {
  constructor(message: string, hint?: string) {
    super('failed', message, { hint });
    this.name = 'ProviderUnusable';
  }
}

export interface FactoryDeps {
  providers: { credentials(id: string): Promise<S3Credentials | undefined> };
  /** <data dir>/uploads: the parts of uploads to local providers. */
  uploadsRoot: string;
  /** Signs a download URL for an object of a local provider (local-download.ts). */
  signDownload(providerId: string, key: string, expiresInSeconds: number): string;
  /** The URL agents PUT a local upload's part to. */
  partUrl(token: string, partNumber: number): string;
}

async function storedS3Settings(deps: FactoryDeps, p: StorageProviderRow): Promise<ProviderS3Settings> {
  if (!p.bucket) throw new ProviderUnusable(`S3 storage provider "${p.name}" has no bucket`);
  const credentials = await deps.providers.credentials(p.id);
  if (!credentials) throw new ProviderUnusable(`S3 storage provider "${p.name}" has no credentials`, 'Set its access key in the storage settings');
  return { endpoint: p.endpoint, bucket: p.bucket, region: p.region, prefix: p.prefix, pathStyle: p.pathStyle, credentials };
}

function localRoot(p: StorageProviderRow): string {
  if (!p.rootPath) throw new ProviderUnusable(`Local storage provider "${p.name}" has no directory`);
  return p.rootPath;
}

/** The Storage of a stored provider; an S3 one holds a client until close(). */
export async function providerStorage(deps: FactoryDeps, p: StorageProviderRow): Promise<Storage> {
  if (p.type === 'local') return new LocalStorage(localRoot(p), { presign: (key, expiresIn) => deps.signDownload(p.id, key, expiresIn) });
  const names = { bucket: `the bucket of storage provider "${p.name}"`, accessKeyId: `the access key of storage provider "${p.name}"` };
  return new S3Storage(s3Options(await storedS3Settings(deps, p), names));
}

/** The server's half of an agent's upload to a stored provider. Close it when done. */
export async function providerMultipart(deps: FactoryDeps, p: StorageProviderRow): Promise<ServerMultipart> {
  if (p.type === 's3') return new S3ServerMultipart(s3Options(await storedS3Settings(deps, p)));
  return new LocalServerMultipart({ root: localRoot(p), uploadsRoot: deps.uploadsRoot, partUrl: deps.partUrl });
}

/** A Storage for settings not stored yet, to preflight them; the caller closes it. */
export function unsavedS3Storage(s: ProviderS3Settings, names: Partial<SettingNames>): S3Storage {
  return new S3Storage(s3Options(s, names));
}

export const uploadsRoot = (dataDir: string): string => join(dataDir, 'uploads');
