import { isAbsolute } from 'node:path';
import type { CreateStorageProviderRequest, UpdateStorageProviderRequest } from '../../api/admin-types.ts';
import { describe } from '../../errors.ts';
import { validatePrefix } from '../../storage/keys.ts';
import { conflict, invalid, notFound, type ApiError } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import type { Queryable } from '../db/db.ts';
import { isConflict } from '../db/errors.ts';
import type { Repos } from '../db/repos.ts';
import type { S3Credentials, StorageProviderRow } from '../db/storage-providers.ts';
import { unsavedS3Storage, type ProviderS3Settings } from '../storage-factory.ts';

// Adding, changing and removing storage providers. The fields are checked first, an s3
// bucket is preflighted with the settings it would get (a network call, so outside any
// transaction), and then the write and its audit entry go in one transaction that checks
// again what the preflight assumed: the name still free, the provider's S3 settings and
// credentials still those the preflight used (else 409: send the change again). So two
// admins racing cannot store a combination of settings that no preflight saw, and a name
// taken meanwhile is the same 409 as one taken before.

export interface Actor {
  userId: string;
}

const S3_FIELDS = ['endpoint', 'bucket', 'region', 'prefix', 'path_style', 'access_key_id', 'secret_access_key'] as const;

/** An absolute path with no '.', '..' or empty segments: what the provider's directory must be. */
function checkRootPath(path: string): void {
  if (!isAbsolute(path) || path.split('/').slice(1).some((s) => s === '' || s === '.' || s === '..')) {
    throw invalid(`root_path must be an absolute, normalised directory path without '..' (got ${JSON.stringify(path)})`);
  }
}

function checkPrefix(prefix: string): void {
  try {
    validatePrefix(prefix);
  } catch (err) {
    throw invalid(`prefix is not usable: ${describe(err)}`);
  }
}

function checkEndpoint(endpoint: string | null | undefined): void {
  if (endpoint == null) return;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw invalid('endpoint must be an http(s) URL such as https://s3.example.com');
  }
  if (url.username || url.password) throw invalid('endpoint must not carry credentials; use access_key_id and secret_access_key');
}

function checkLocalFields(body: UpdateStorageProviderRequest): void {
  const stray = S3_FIELDS.filter((f) => body[f] !== undefined);
  if (stray.length) throw invalid(`A local provider takes root_path, not ${stray.join(', ')}`);
  if (body.root_path !== undefined) checkRootPath(body.root_path);
}

function checkS3Fields(body: UpdateStorageProviderRequest): void {
  if (body.root_path !== undefined) throw invalid('An s3 provider takes bucket and credentials, not root_path');
  checkEndpoint(body.endpoint);
  if (body.prefix !== undefined) checkPrefix(body.prefix);
}

/** HeadBucket with these settings; any failure is the caller's to fix (400), with the secret scrubbed. */
async function preflight(s: ProviderS3Settings): Promise<void> {
  let storage: ReturnType<typeof unsavedS3Storage> | undefined;
  try {
    storage = unsavedS3Storage(s, { endpoint: 'endpoint' });
    await storage.preflight();
  } catch (err) {
    const message = describe(err).split(s.credentials.secretAccessKey).join('[redacted]');
    throw invalid(`Storage preflight failed: ${message}`);
  } finally {
    storage?.close();
  }
}

const nameTaken = (name: string): ApiError => conflict(`A storage provider named ${JSON.stringify(name)} already exists`);

async function checkNameFree(repos: Repos, name: string, exceptId?: string): Promise<void> {
  if ((await repos.storageProviders.list()).some((p) => p.name === name && p.id !== exceptId)) throw nameTaken(name);
}

/** Runs fn over repositories in one transaction; the unique name index losing a race is the usual 409. */
async function inTransaction<T>(ctx: ServerContext, name: string | undefined, fn: (repos: Repos, tx: Queryable) => Promise<T>): Promise<T> {
  try {
    return await ctx.repos.transaction(fn);
  } catch (err) {
    if (name !== undefined && isConflict(err, 'duplicate')) throw nameTaken(name);
    throw err;
  }
}

/** Any settings with a name and type: the schema's two shapes, and what callers outside HTTP send. */
type NewProvider = UpdateStorageProviderRequest & Pick<CreateStorageProviderRequest, 'name' | 'type'>;

export async function createStorageProvider(ctx: ServerContext, actor: Actor, body: NewProvider): Promise<StorageProviderRow> {
  let s3: ProviderS3Settings | undefined;
  if (body.type === 'local') {
    checkLocalFields(body);
    if (body.root_path === undefined) throw invalid('A local provider needs root_path');
  } else {
    if (body.root_path !== undefined) throw invalid('An s3 provider takes bucket and credentials, not root_path');
    if (body.bucket === undefined) throw invalid('An s3 provider needs bucket');
    if (body.access_key_id === undefined || body.secret_access_key === undefined) throw invalid('An s3 provider needs access_key_id and secret_access_key');
    checkEndpoint(body.endpoint);
    checkPrefix(body.prefix ?? '');
    s3 = {
      endpoint: body.endpoint ?? null, bucket: body.bucket, region: body.region ?? 'us-east-1', prefix: body.prefix ?? '', pathStyle: body.path_style ?? body.endpoint != null,
      credentials: { accessKeyId: body.access_key_id, secretAccessKey: body.secret_access_key },
    };
  }
  // Before the preflight too, so a taken name is refused without a call to the bucket.
  await checkNameFree(ctx.repos, body.name);
  if (s3) await preflight(s3);
  return inTransaction(ctx, body.name, async (repos) => {
    await checkNameFree(repos, body.name);
    const row = await repos.storageProviders.create({
      name: body.name, type: body.type, rootPath: body.root_path ?? null, endpoint: s3?.endpoint ?? null, bucket: s3?.bucket ?? null, region: s3?.region ?? null,
      pathStyle: s3?.pathStyle ?? false, prefix: s3?.prefix ?? '', isDefault: body.is_default ?? false, credentials: s3?.credentials ?? null,
    });
    await repos.audit.record({ userId: actor.userId, action: 'storage.create', targetType: 'storage_provider', targetId: row.id, detail: { name: row.name, type: row.type, is_default: row.isDefault } });
    return row;
  });
}

/** What a preflight of this provider depends on: its S3 columns and its credentials. */
function s3Fingerprint(p: StorageProviderRow, credentials: S3Credentials | undefined): string {
  return JSON.stringify([p.endpoint, p.bucket, p.region, p.prefix, p.pathStyle, credentials?.accessKeyId, credentials?.secretAccessKey, credentials?.sessionToken]);
}

async function loadProvider(repos: Repos, id: string): Promise<StorageProviderRow> {
  const p = await repos.storageProviders.get(id);
  if (!p) throw notFound('Storage provider', id);
  return p;
}

/**
 * Checks and preflights an s3 provider's change; returns the credentials it had (what the
 * preflight assumed) and the new ones (undefined: kept).
 */
async function checkS3Change(ctx: ServerContext, cur: StorageProviderRow, body: UpdateStorageProviderRequest): Promise<{ old: S3Credentials | undefined; credentials: S3Credentials | undefined }> {
  checkS3Fields(body);
  const old = await ctx.repos.storageProviders.credentials(cur.id);
  const accessKeyId = body.access_key_id ?? old?.accessKeyId;
  const secretAccessKey = body.secret_access_key ?? old?.secretAccessKey;
  if (accessKeyId === undefined || secretAccessKey === undefined) throw invalid('An s3 provider needs access_key_id and secret_access_key');
  if (S3_FIELDS.some((f) => body[f] !== undefined)) {
    await preflight({
      endpoint: body.endpoint === undefined ? cur.endpoint : body.endpoint, bucket: body.bucket ?? cur.bucket ?? '', region: body.region ?? cur.region ?? 'us-east-1',
      prefix: body.prefix ?? cur.prefix, pathStyle: body.path_style ?? cur.pathStyle, credentials: { accessKeyId, secretAccessKey },
    });
  }
  const kept = body.access_key_id === undefined && body.secret_access_key === undefined;
  return { old, credentials: kept ? undefined : { accessKeyId, secretAccessKey } };
}

export async function updateStorageProvider(ctx: ServerContext, actor: Actor, id: string, body: UpdateStorageProviderRequest): Promise<StorageProviderRow> {
  const cur = await loadProvider(ctx.repos, id);
  let s3: { old: S3Credentials | undefined; credentials: S3Credentials | undefined } = { old: undefined, credentials: undefined };
  if (cur.type === 'local') checkLocalFields(body);
  else s3 = await checkS3Change(ctx, cur, body);
  if (body.name !== undefined && body.name !== cur.name) await checkNameFree(ctx.repos, body.name, cur.id);
  const row = await inTransaction(ctx, body.name, async (repos, tx) => {
    // Another server's change to this provider waits for ours, or ours for it.
    if (tx.dialect === 'postgres') await tx.get('SELECT id FROM storage_providers WHERE id = ? FOR UPDATE', [cur.id]);
    const now = await loadProvider(repos, cur.id);
    if (cur.type === 's3' && s3Fingerprint(now, await repos.storageProviders.credentials(cur.id)) !== s3Fingerprint(cur, s3.old)) {
      throw conflict(`Storage provider "${cur.name}" was changed by someone else while this change was being checked; read it again and send the change again`);
    }
    if (body.name !== undefined && body.name !== now.name) await checkNameFree(repos, body.name, cur.id);
    const updated = await repos.storageProviders.update(cur.id, {
      name: body.name, rootPath: body.root_path, endpoint: body.endpoint, bucket: body.bucket, region: body.region, prefix: body.prefix,
      pathStyle: body.path_style, isDefault: body.is_default, credentials: s3.credentials,
    });
    if (!updated) throw notFound('Storage provider', cur.id);
    const changed = Object.keys(body).filter((k) => k !== 'secret_access_key');
    if (body.secret_access_key !== undefined) changed.push('credentials');
    await repos.audit.record({ userId: actor.userId, action: 'storage.update', targetType: 'storage_provider', targetId: updated.id, detail: { name: updated.name, changed } });
    return updated;
  });
  // The next backup or download must use the new settings, not a cached client.
  ctx.storage.invalidate(row.id);
  return row;
}

/** Refused (409) while backups are stored there. */
export async function removeStorageProvider(ctx: ServerContext, actor: Actor, id: string): Promise<void> {
  await inTransaction(ctx, undefined, async (repos) => {
    const cur = await loadProvider(repos, id);
    if (!(await repos.storageProviders.remove(cur.id))) throw notFound('Storage provider', cur.id);
    await repos.audit.record({ userId: actor.userId, action: 'storage.delete', targetType: 'storage_provider', targetId: cur.id, detail: { name: cur.name, type: cur.type } });
  });
  ctx.storage.invalidate(id);
}

export async function setDefaultStorageProvider(ctx: ServerContext, actor: Actor, id: string): Promise<StorageProviderRow> {
  return inTransaction(ctx, undefined, async (repos) => {
    const cur = await loadProvider(repos, id);
    const row = await repos.storageProviders.update(cur.id, { isDefault: true });
    if (!row) throw notFound('Storage provider', cur.id);
    await repos.audit.record({ userId: actor.userId, action: 'storage.set_default', targetType: 'storage_provider', targetId: row.id, detail: { name: row.name } });
    return row;
  });
}
