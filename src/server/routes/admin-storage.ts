import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { CreateStorageProviderRequest, StorageProvider, StorageProviderList, UpdateStorageProviderRequest } from '../../api/admin-types.ts';
import { notFound } from '../api-error.ts';
import { seesStorageSettings, type Principal } from '../auth/roles.ts';
import type { ServerContext } from '../context.ts';
import type { StorageProviderRow } from '../db/storage-providers.ts';
import { defineRoute, must, replied } from '../route.ts';
import { errorResponses, noContent, ok, success } from './error-responses.ts';
import { createStorageProvider, removeStorageProvider, setDefaultStorageProvider, updateStorageProvider } from '../services/storage-providers.ts';
import { emptyBody, idParams, iso, userId } from './admin-common.ts';

// Storage providers: a local directory or an S3 bucket. S3 credentials go in and are stored
// encrypted (the repository seals them); responses say has_credentials and show at most the
// access key id, and only to those who may change the provider (a node_admin sees names and
// types: namesOnly). An s3 provider is only saved after a preflight against the bucket passes;
// the checks and writes are in services/storage-providers.ts.

const ProviderParams = idParams('id');
type IdP = Static<typeof ProviderParams>;

const CREATE_MESSAGES = {
  ':anyOf': 'A local provider takes name and root_path (an absolute, normalised directory); an s3 provider takes name, bucket, access_key_id and secret_access_key, and optionally endpoint, region, prefix and path_style',
  '/root_path:pattern': "root_path must be an absolute, normalised directory path without '..'",
};

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

export function registerStorageRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const tags = ['storage'];

  defineRoute<unknown, Record<string, string>, Record<string, string>, StorageProviderList>(app, ctx, {
    method: 'GET',
    url: '/api/v1/storage-providers',
    auth: 'user',
    summary: 'Storage providers (credentials never shown; a node_admin sees names and types only)',
    tags,
    schema: { response: ok(StorageProviderList, 'The storage providers') },
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
    messages: CREATE_MESSAGES,
    schema: {
      body: CreateStorageProviderRequest,
      response: { ...success(201, 'The new provider', StorageProvider), ...errorResponses({ 400: 'Malformed request, or settings that do not fit the type, or the bucket failed its check' }, { 409: 'A provider with that name exists' }) },
    },
    handler: async ({ body, principal }) => {
      const me = must(principal, 'storage.write');
      const row = await createStorageProvider(ctx, { userId: userId(me) }, body);
      return replied(201, await providerBody(ctx, row));
    },
  });

  defineRoute<unknown, IdP, Record<string, string>, StorageProvider>(app, ctx, {
    method: 'GET',
    url: '/api/v1/storage-providers/:id',
    auth: 'user',
    summary: 'One storage provider (credentials never shown; a node_admin sees its name and type only)',
    tags,
    schema: { params: ProviderParams, response: { ...ok(StorageProvider, 'The provider'), ...errorResponses({ 404: 'No such storage provider' }) } },
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
    messages: { '/root_path:pattern': CREATE_MESSAGES['/root_path:pattern'] },
    schema: { params: ProviderParams, body: UpdateStorageProviderRequest, response: { ...ok(StorageProvider, 'The provider as changed'), ...errorResponses({ 400: 'Malformed request, or settings that do not fit the type, or the bucket failed its check' }, { 404: 'No such storage provider' }, { 409: 'A provider with that name exists, or the provider changed meanwhile' }) } },
    handler: async ({ body, params, principal }) => {
      const me = must(principal, 'storage.write');
      const row = await updateStorageProvider(ctx, { userId: userId(me) }, params.id, body);
      return providerBody(ctx, row);
    },
  });

  defineRoute<unknown, IdP>(app, ctx, {
    method: 'DELETE',
    url: '/api/v1/storage-providers/:id',
    auth: 'user',
    summary: 'Remove a storage provider (refused with 409 while backups are stored there)',
    tags,
    schema: { params: ProviderParams, response: { ...noContent('Removed'), ...errorResponses({ 404: 'No such storage provider' }, { 409: 'Backups are stored there, or it is the default' }) } },
    handler: async ({ params, principal }) => {
      const me = must(principal, 'storage.write');
      await removeStorageProvider(ctx, { userId: userId(me) }, params.id);
      return replied(204, undefined);
    },
  });

  defineRoute<unknown, IdP, Record<string, string>, StorageProvider>(app, ctx, {
    method: 'POST',
    url: '/api/v1/storage-providers/:id/default',
    auth: 'user',
    summary: 'Make this the provider new backups go to (super_admin)',
    tags,
    schema: { params: ProviderParams, body: emptyBody, response: { ...ok(StorageProvider, 'The provider, now the default'), ...errorResponses({ 404: 'No such storage provider' }) } },
    handler: async ({ params, principal }) => {
      const me = must(principal, 'storage.write');
      const row = await setDefaultStorageProvider(ctx, { userId: userId(me) }, params.id);
      return providerBody(ctx, row);
    },
  });
}
