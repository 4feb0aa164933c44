import type { Queryable } from './db.ts';
import { assignments, bool, newId, num, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';
import type { SecretBox } from './secrets.ts';

// Where backups are stored. S3 credentials are encrypted with the server's SecretBox, bound
// to the provider's id; rows never carry them, only credentials() decrypts them.

export type StorageType = 'local' | 's3';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface StorageProviderRow {
  id: string;
  name: string;
  type: StorageType;
  /** The directory of a local provider. */
  rootPath: string | null;
  endpoint: string | null;
  bucket: string | null;
  region: string | null;
  pathStyle: boolean;
  prefix: string;
  isDefault: boolean;
  hasCredentials: boolean;
  createdAt: number;
}

export interface NewStorageProvider {
  name: string;
  type: StorageType;
  rootPath?: string | null;
  endpoint?: string | null;
  bucket?: string | null;
  region?: string | null;
  pathStyle?: boolean;
  prefix?: string;
  isDefault?: boolean;
  credentials?: S3Credentials | null;
}

/** credentials: null removes them, undefined keeps them. */
export type StorageProviderPatch = Partial<Omit<NewStorageProvider, 'type'>>;

const COLUMNS = 'id, name, type, root_path, endpoint, bucket, region, path_style, prefix, is_default, credentials_enc IS NOT NULL AS has_credentials, created_at';

const PATCH_COLUMNS = {
  name: 'name', rootPath: 'root_path', endpoint: 'endpoint', bucket: 'bucket', region: 'region',
  pathStyle: 'path_style', prefix: 'prefix', isDefault: 'is_default', credentials: 'credentials_enc',
} as const;

function toProvider(r: Raw): StorageProviderRow {
  return {
    id: str(r.id),
    name: str(r.name),
    type: r.type as StorageType,
    rootPath: strOrNull(r.root_path),
    endpoint: strOrNull(r.endpoint),
    bucket: strOrNull(r.bucket),
    region: strOrNull(r.region),
    pathStyle: bool(r.path_style),
    prefix: str(r.prefix),
    isDefault: bool(r.is_default),
    hasCredentials: Boolean(r.has_credentials),
    createdAt: num(r.created_at),
  };
}

const context = (id: string): string => `storage_providers:${id}`;

export class StorageProvidersRepo {
  readonly #ctx: RepoContext;
  readonly #box: SecretBox;

  constructor(ctx: RepoContext, box: SecretBox) {
    this.#ctx = ctx;
    this.#box = box;
  }

  /** A ConflictError ('duplicate') for a name in use. The new default replaces the old one. */
  async create(p: NewStorageProvider): Promise<StorageProviderRow> {
    const id = newId();
    return this.#ctx.db.transaction(async (tx) => {
      if (p.isDefault) await clearDefault(tx, id);
      const row = await tx.get<Raw>(
        `INSERT INTO storage_providers (id, name, type, root_path, endpoint, bucket, region, path_style, prefix, is_default, credentials_enc, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
        [id, p.name, p.type, p.rootPath, p.endpoint, p.bucket, p.region, p.pathStyle ?? false, p.prefix ?? '', p.isDefault ?? false, this.#seal(id, p.credentials), this.#ctx.now()],
      );
      return toProvider(row as Raw);
    });
  }

  async update(id: string, patch: StorageProviderPatch): Promise<StorageProviderRow | undefined> {
    const values = { ...patch, credentials: patch.credentials === undefined ? undefined : this.#seal(id, patch.credentials) };
    const set = assignments(values, PATCH_COLUMNS);
    if (set.sql === '') return this.get(id);
    return this.#ctx.db.transaction(async (tx) => {
      if (patch.isDefault) await clearDefault(tx, id);
      const row = await tx.get<Raw>(`UPDATE storage_providers SET ${set.sql} WHERE id = ? RETURNING ${COLUMNS}`, [...set.params, id]);
      return row && toProvider(row);
    });
  }

  async setDefault(id: string): Promise<boolean> {
    return (await this.update(id, { isDefault: true })) !== undefined;
  }

  async get(id: string): Promise<StorageProviderRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM storage_providers WHERE id = ?`, [id]);
    return row && toProvider(row);
  }

  async getDefault(): Promise<StorageProviderRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM storage_providers WHERE is_default = 1`);
    return row && toProvider(row);
  }

  async list(): Promise<StorageProviderRow[]> {
    return (await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM storage_providers ORDER BY name`)).map(toProvider);
  }

  /** Refused with a ConflictError ('reference') while backups are stored there. */
  async remove(id: string): Promise<boolean> {
    return (await this.#ctx.db.exec('DELETE FROM storage_providers WHERE id = ?', [id])) === 1;
  }

  /** The decrypted credentials, for the server's own S3 client; never for a response. */
  async credentials(id: string): Promise<S3Credentials | undefined> {
    const row = await this.#ctx.db.get<Raw>('SELECT credentials_enc FROM storage_providers WHERE id = ?', [id]);
    const blob = strOrNull(row?.credentials_enc);
    return blob === null ? undefined : (JSON.parse(this.#box.decrypt(blob, context(id))) as S3Credentials);
  }

  #seal(id: string, credentials: S3Credentials | null | undefined): string | null {
    return credentials ? this.#box.encrypt(JSON.stringify(credentials), context(id)) : null;
  }
}

async function clearDefault(tx: Queryable, exceptId: string): Promise<void> {
  await tx.exec('UPDATE storage_providers SET is_default = 0 WHERE is_default = 1 AND id <> ?', [exceptId]);
}
