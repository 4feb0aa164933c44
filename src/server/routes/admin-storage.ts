import { isAbsolute } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { CreateStorageProviderRequest, StorageProvider, StorageProviderList, UpdateStorageProviderRequest } from '../../api/admin-types.ts';
import { describe } from '../../errors.ts';
import { validatePrefix } from '../../storage/keys.ts';
import { S3Storage } from '../../storage/s3.ts';
import { conflict, invalid, notFound } from '../api-error.ts';
import { seesStorageSettings, type Principal } from '../auth/roles.ts';
import type { ServerContext } from '../context.ts';
import type { S3Credentials, StorageProviderRow } from '../db/storage-providers.ts';
import { defineRoute, must, replied } from '../route.ts';
import { emptyBody, idParams, iso, label, userId } from './admin-common.ts';
import { storageRegistry } from '../storage-registry.ts';

// Storage providers: a local directory or an S3 bucket. S3 credentials go in and are stored
// encrypted (the repository seals them); responses say has_credentials and show at most the
// access key id, and only to those who may change the provider (a node_admin sees names and
// types: namesOnly). An s3 provider is only saved after a preflight against the bucket passes.

type IdP = { id: string };

const NO_CONTROL = '^[^\\u0000-\\u001f\\u007f]*$';
const PROPS = {
  name: label(100),
  root_path: { type: 'string', minLength: 1, maxLength: 4096, pattern: NO_CONTROL },
  endpoint: { type: 'string', minLength: 1, maxLength: 2048, pattern: '^https?://[^\\s]+$', nullable: true },
  bucket: { type: 'string', minLength: 3, maxLength: 63, pattern: '^[a-z0-9][a-z0-9.-]*[a-z0-9]$' },
  region: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-z0-9-]+$' },
  prefix: { type: 'string', maxLength: 512, pattern: NO_CONTROL },
  path_style: { type: 'boolean' },
  access_key_id: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[^\\s]+$' },
  secret_access_key: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^[^\\s]+$' },
  is_default: { type: 'boolean' },
} as const;

const S3_FIELDS = ['endpoint', 'bucket', 'region', 'prefix', 'path_style', 'access_key_id', 'secret_access_key'] as const;

async function loadProvider(ctx: ServerContext, id: string): Promise<StorageProviderRow> {
  const p = await ctx.repos.storageProviders.get(id);
  if (!p) throw notFound('Storage provider', id);
  return p;
}

async function accessKeyIdOf(ctx: ServerContext, p: StorageProviderRow): Promise<string | null> {
  if (!p.hasCredentials) return null;
  try {
    return (await ctx.repos.storageProviders.credentials(p.id))?.accessKeyId ?? null;
  } catch {
    return null; // sealed under another server key: the provider is still listed
  }
}

/**
 * What a node_admin (storage.read without storage.write) sees: name, type, whether it is the
 * default and has credentials. Paths, endpoints, buckets, regions, prefixes and key ids stay
 * with those who may change them: they map the storage out for an attacker holding one node.
 */
function namesOnly(b: StorageProvider): StorageProvider {
  return { ...b, root_path: null, endpoint: null, bucket: null, region: null, prefix: '', path_style: false, access_key_id: null };
}

async function visibleBody(ctx: ServerContext, principal: Principal, p: StorageProviderRow): Promise<StorageProvider> {
  if (seesStorageSettings(principal)) return providerBody(ctx, p);
  return namesOnly({ ...(await providerBody(ctx, { ...p, hasCredentials: false })), has_credentials: p.hasCredentials });
}

async function providerBody(ctx: ServerContext, p: StorageProviderRow): Promise<StorageProvider> {
  return {
    id: p.id, name: p.name, type: p.type, root_path: p.rootPath, endpoint: p.endpoint, bucket: p.bucket, region: p.region, prefix: p.prefix,
    path_style: p.pathStyle, is_default: p.isDefault, has_credentials: p.hasCredentials, access_key_id: await accessKeyIdOf(ctx, p), created_at: iso(p.createdAt),
  };
}

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

interface S3Settings {
  endpoint: string | null;
  bucket: string;
  region: string;
  prefix: string;
  pathStyle: boolean;
  credentials: S3Credentials;
}

/** HeadBucket with these settings; any failure is the caller's to fix (400), with the secret scrubbed. */
async function preflight(s: S3Settings): Promise<void> {
  try {
    const storage = new S3Storage({
      endpoint: s.endpoint ?? undefined, region: s.region, bucket: s.bucket, prefix: s.prefix, forcePathStyle: s.pathStyle, credentials: s.credentials,
      names: { endpoint: 'endpoint' },
    });
    await storage.preflight();
  } catch (err) {
    const message = describe(err).split(s.credentials.secretAccessKey).join('[redacted]');
    throw invalid(`Storage preflight failed: ${message}`);
  }
}

export function registerStorageRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const tags = ['storage'];

  defineRoute<unknown, Record<string, string>, Record<string, string>, StorageProviderList>(app, ctx, {
    method: 'GET',
    url: '/api/v1/storage-providers',
    auth: 'user',
    summary: 'Storage providers (credentials never shown; a node_admin sees names and types only)',
    tags,
    handler: async ({ principal }) => {
      const who = must(principal, 'storage.read');
      const rows = await ctx.repos.storageProviders.list();
      return { storage_providers: await Promise.all(rows.map((p) => visibleBody(ctx, who, p))) };
    },
  });

  defineRoute<CreateStorageProviderRequest, Record<string, string>, Record<string, string>, StorageProvider>(app, ctx, {
    method: 'POST',
    url: '/api/v1/storage-providers',
    auth: 'user',
    summary: 'Add a storage provider (super_admin); an s3 bucket is checked first',
    tags,
    schema: {
      body: { type: 'object', required: ['name', 'type'], additionalProperties: false, properties: { ...PROPS, type: { type: 'string', enum: ['local', 's3'] } } },
    },
    handler: async ({ body, principal }) => {
      const me = must(principal, 'storage.write');
      if (body.type === 'local') {
        const stray = S3_FIELDS.filter((f) => body[f] !== undefined);
        if (stray.length) throw invalid(`A local provider takes root_path, not ${stray.join(', ')}`);
        if (body.root_path === undefined) throw invalid('A local provider needs root_path');
        checkRootPath(body.root_path);
      } else {
        if (body.root_path !== undefined) throw invalid('An s3 provider takes bucket and credentials, not root_path');
        if (body.bucket === undefined) throw invalid('An s3 provider needs bucket');
        if (body.access_key_id === undefined || body.secret_access_key === undefined) throw invalid('An s3 provider needs access_key_id and secret_access_key');
        checkEndpoint(body.endpoint);
        checkPrefix(body.prefix ?? '');
      }
      if ((await ctx.repos.storageProviders.list()).some((p) => p.name === body.name)) throw conflict(`A storage provider named ${JSON.stringify(body.name)} already exists`);
      const credentials = body.type === 's3' ? { accessKeyId: body.access_key_id ?? '', secretAccessKey: body.secret_access_key ?? '' } : null;
      const s3 = body.type === 's3'
        ? { endpoint: body.endpoint ?? null, bucket: body.bucket ?? '', region: body.region ?? 'us-east-1', prefix: body.prefix ?? '', pathStyle: body.path_style ?? body.endpoint != null }
        : undefined;
      if (s3 && credentials) await preflight({ ...s3, credentials });
      const row = await ctx.repos.storageProviders.create({
        name: body.name, type: body.type, rootPath: body.root_path ?? null, endpoint: s3?.endpoint ?? null, bucket: s3?.bucket ?? null, region: s3?.region ?? null,
        pathStyle: s3?.pathStyle ?? false, prefix: s3?.prefix ?? '', isDefault: body.is_default ?? false, credentials,
      });
      await ctx.repos.audit.record({ userId: userId(me), action: 'storage.create', targetType: 'storage_provider', targetId: row.id, detail: { name: row.name, type: row.type, is_default: row.isDefault } });
      return replied(201, await providerBody(ctx, row));
    },
  });

  defineRoute<unknown, IdP, Record<string, string>, StorageProvider>(app, ctx, {
    method: 'GET',
    url: '/api/v1/storage-providers/:id',
    auth: 'user',
    summary: 'One storage provider (credentials never shown; a node_admin sees its name and type only)',
    tags,
    schema: { params: idParams('id') },
    handler: async ({ params, principal }) => {
      const who = must(principal, 'storage.read');
      return visibleBody(ctx, who, await loadProvider(ctx, params.id));
    },
  });

  defineRoute<UpdateStorageProviderRequest, IdP, Record<string, string>, StorageProvider>(app, ctx, {
    method: 'PATCH',
    url: '/api/v1/storage-providers/:id',
    auth: 'user',
    summary: 'Change a storage provider (super_admin); an s3 bucket is checked again',
    tags,
    schema: { params: idParams('id'), body: { type: 'object', minProperties: 1, additionalProperties: false, properties: PROPS } },
    handler: async ({ body, params, principal }) => {
      const me = must(principal, 'storage.write');
      const cur = await loadProvider(ctx, params.id);
      let credentials: S3Credentials | undefined;
      if (cur.type === 'local') {
        const stray = S3_FIELDS.filter((f) => body[f] !== undefined);
        if (stray.length) throw invalid(`A local provider takes root_path, not ${stray.join(', ')}`);
        if (body.root_path !== undefined) checkRootPath(body.root_path);
      } else {
        if (body.root_path !== undefined) throw invalid('An s3 provider takes bucket and credentials, not root_path');
        checkEndpoint(body.endpoint);
        if (body.prefix !== undefined) checkPrefix(body.prefix);
        const old = await ctx.repos.storageProviders.credentials(cur.id);
        const accessKeyId = body.access_key_id ?? old?.accessKeyId;
        const secretAccessKey = body.secret_access_key ?? old?.secretAccessKey;
        if (accessKeyId === undefined || secretAccessKey === undefined) throw invalid('An s3 provider needs access_key_id and secret_access_key');
        credentials = { accessKeyId, secretAccessKey };
        const touchesS3 = S3_FIELDS.some((f) => body[f] !== undefined);
        if (touchesS3) {
          await preflight({
            endpoint: body.endpoint === undefined ? cur.endpoint : body.endpoint, bucket: body.bucket ?? cur.bucket ?? '', region: body.region ?? cur.region ?? 'us-east-1',
            prefix: body.prefix ?? cur.prefix, pathStyle: body.path_style ?? cur.pathStyle, credentials,
          });
        }
        if (body.access_key_id === undefined && body.secret_access_key === undefined) credentials = undefined;
      }
      if (body.name !== undefined && body.name !== cur.name && (await ctx.repos.storageProviders.list()).some((p) => p.name === body.name)) {
        throw conflict(`A storage provider named ${JSON.stringify(body.name)} already exists`);
      }
      const row = await ctx.repos.storageProviders.update(cur.id, {
        name: body.name, rootPath: body.root_path, endpoint: body.endpoint, bucket: body.bucket, region: body.region, prefix: body.prefix,
        pathStyle: body.path_style, isDefault: body.is_default, credentials,
      });
      if (!row) throw notFound('Storage provider', cur.id);
      // The next backup or download must use the new settings, not a cached client.
      storageRegistry(ctx).invalidate(row.id);
      const changed = Object.keys(body).filter((k) => k !== 'secret_access_key');
      if (body.secret_access_key !== undefined) changed.push('credentials');
      await ctx.repos.audit.record({ userId: userId(me), action: 'storage.update', targetType: 'storage_provider', targetId: row.id, detail: { name: row.name, changed } });
      return providerBody(ctx, row);
    },
  });

  defineRoute<unknown, IdP>(app, ctx, {
    method: 'DELETE',
    url: '/api/v1/storage-providers/:id',
    auth: 'user',
    summary: 'Remove a storage provider (refused with 409 while backups are stored there)',
    tags,
    schema: { params: idParams('id') },
    handler: async ({ params, principal }) => {
      const me = must(principal, 'storage.write');
      const cur = await loadProvider(ctx, params.id);
      if (!(await ctx.repos.storageProviders.remove(cur.id))) throw notFound('Storage provider', cur.id);
      storageRegistry(ctx).invalidate(cur.id);
      await ctx.repos.audit.record({ userId: userId(me), action: 'storage.delete', targetType: 'storage_provider', targetId: cur.id, detail: { name: cur.name, type: cur.type } });
      return replied(204, undefined);
    },
  });

  defineRoute<unknown, IdP, Record<string, string>, StorageProvider>(app, ctx, {
    method: 'POST',
    url: '/api/v1/storage-providers/:id/default',
    auth: 'user',
    summary: 'Make this the provider new backups go to (super_admin)',
    tags,
    schema: { params: idParams('id'), body: { ...emptyBody, nullable: true } },
    handler: async ({ params, principal }) => {
      const me = must(principal, 'storage.write');
      const cur = await loadProvider(ctx, params.id);
      const row = await ctx.repos.storageProviders.update(cur.id, { isDefault: true });
      if (!row) throw notFound('Storage provider', cur.id);
      await ctx.repos.audit.record({ userId: userId(me), action: 'storage.set_default', targetType: 'storage_provider', targetId: row.id, detail: { name: row.name } });
      return providerBody(ctx, row);
    },
  });
}
