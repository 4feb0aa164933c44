// Request and response bodies of the admin API: users, tokens, nodes, storage providers, audit.
// snake_case like src/api/types.ts. No body here ever carries a password, a key hash or a
// storage secret; the only secret that goes out is a token value, once, when it is created.
// Request bodies are TypeBox schemas with their types (Static): what the server validates and
// documents is what clients are typed against.

import { Type, type Static } from '@sinclair/typebox';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, NO_CONTROL_PATTERN, NORMAL_DIR_PATTERN } from './formats.ts';
import { Label, Nullable, Password, StringEnum, Uuid } from './schema-kit.ts';

export const UserRole = StringEnum(['super_admin', 'node_admin', 'site_admin']);
export type UserRole = Static<typeof UserRole>;

export const Email = Type.String({ minLength: 3, maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+$' });
/** A new password: the policy's length (the server checks the rest of the policy). */
export const NewPassword = Type.String({ minLength: MIN_PASSWORD_LENGTH, maxLength: MAX_PASSWORD_LENGTH });

export interface User {
  id: string;
  email: string;
  role: UserRole;
  node_ids: string[];
  site_ids: string[];
  /** A disabled user cannot sign in and their tokens are gone. */
  disabled: boolean;
  created_at: string;
}

export const CreateUserRequest = Type.Object({ email: Email, password: NewPassword, role: UserRole }, { additionalProperties: false });
export type CreateUserRequest = Static<typeof CreateUserRequest>;

/**
 * A new password ends all the user's sessions and API tokens (other than the caller's own); disabled: true
 * ends them all and refuses sign-in until disabled: false.
 */
export const UpdateUserRequest = Type.Object(
  { role: Type.Optional(UserRole), password: Type.Optional(NewPassword), disabled: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateUserRequest = Static<typeof UpdateUserRequest>;

/** POST /api/v1/auth/password: your own password; your other sessions and API tokens end. */
export const ChangePasswordRequest = Type.Object({ current_password: Password, new_password: NewPassword }, { additionalProperties: false });
export type ChangePasswordRequest = Static<typeof ChangePasswordRequest>;

export interface UserList {
  users: User[];
}

/** GET /api/v1/auth/me */
export type Me = User;

export interface ApiToken {
  id: string;
  kind: 'session' | 'api';
  name: string | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  /** True for the token this request was made with. */
  current: boolean;
}

export interface TokenList {
  tokens: ApiToken[];
}

export const CreateTokenRequest = Type.Object(
  {
    name: Label(100),
    expires_in_days: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 3650, description: 'Omitted or null: the token lives until revoked' }))),
  },
  { additionalProperties: false },
);
export type CreateTokenRequest = Static<typeof CreateTokenRequest>;

/** The token value is shown here once and never again. */
export interface CreateTokenResponse extends Omit<ApiToken, 'current'> {
  token: string;
}

export type NodeStatus = 'pending' | 'active' | 'disabled';

export interface Node {
  id: string;
  hostname: string;
  status: NodeStatus;
  last_seen: string | null;
  quota_bytes: number | null;
  /** Whether the node has enrolled (holds a node key); the key itself is never shown. */
  has_key: boolean;
  /** When a key rotation was asked for that the agent has not completed yet; null: none pending. */
  key_rotation_requested_at: string | null;
  /** Backups the node runs at once (its agent runs that many; the server hands out no more). */
  job_limit: number;
  created_at: string;
}

/** POST /api/v1/nodes/{id}/revoke-key */
export interface RevokeKeyResponse {
  node: Node;
  /** Jobs the node held, failed by the revocation (their uploads aborted). */
  jobs_failed: number;
}

/** POST /api/v1/nodes/join-codes: with node_id, a re-join code that gives that node a new key. */
export const JoinCodeRequest = Nullable(Type.Object({ node_id: Type.Optional(Uuid) }, { additionalProperties: false }));
export type JoinCodeRequest = Static<typeof JoinCodeRequest>;

export interface NodeList {
  nodes: Node[];
}

export const Hostname = Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$' });

export const UpdateNodeRequest = Type.Object(
  {
    hostname: Type.Optional(Hostname),
    status: Type.Optional(StringEnum(['active', 'disabled'])),
    quota_bytes: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }))),
    job_limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'Backups the node runs at once (default 1)' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateNodeRequest = Static<typeof UpdateNodeRequest>;

export interface JoinCodeResponse {
  code: string;
  expires_at: string;
}

export type StorageType = 'local' | 's3';

export interface StorageProvider {
  id: string;
  name: string;
  type: StorageType;
  root_path: string | null;
  endpoint: string | null;
  bucket: string | null;
  region: string | null;
  prefix: string;
  path_style: boolean;
  is_default: boolean;
  has_credentials: boolean;
  /** The access key id of an s3 provider; the secret key is never returned. */
  access_key_id: string | null;
  created_at: string;
}

export interface StorageProviderList {
  storage_providers: StorageProvider[];
}

const STORAGE_NAME = Label(100);
/** An absolute, normalised directory on the server. */
const ROOT_PATH = Type.String({ minLength: 2, maxLength: 4096, pattern: NORMAL_DIR_PATTERN });
const ENDPOINT = Nullable(Type.String({ minLength: 1, maxLength: 2048, pattern: '^https?://[^\\s]+$' }));
const BUCKET = Type.String({ minLength: 3, maxLength: 63, pattern: '^[a-z0-9][a-z0-9.-]*[a-z0-9]$' });
const REGION = Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9-]+$' });
const PREFIX = Type.String({ maxLength: 512, pattern: NO_CONTROL_PATTERN });
const ACCESS_KEY_ID = Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\s]+$' });
const SECRET_ACCESS_KEY = Type.String({ minLength: 1, maxLength: 1024, pattern: '^[^\\s]+$' });

/** A new provider is one of two shapes: a local directory, or an S3 bucket with its credentials. */
export const CreateStorageProviderRequest = Type.Union([
  Type.Object(
    { name: STORAGE_NAME, type: StringEnum(['local']), root_path: ROOT_PATH, is_default: Type.Optional(Type.Boolean()) },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      name: STORAGE_NAME, type: StringEnum(['s3']), endpoint: Type.Optional(ENDPOINT), bucket: BUCKET, region: Type.Optional(REGION), prefix: Type.Optional(PREFIX),
      path_style: Type.Optional(Type.Boolean()), access_key_id: ACCESS_KEY_ID, secret_access_key: SECRET_ACCESS_KEY, is_default: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  ),
]);
export type CreateStorageProviderRequest = Static<typeof CreateStorageProviderRequest>;

/** What fits depends on the stored provider's type, which the server checks. */
export const UpdateStorageProviderRequest = Type.Partial(
  Type.Object({
    name: STORAGE_NAME, root_path: ROOT_PATH, endpoint: ENDPOINT, bucket: BUCKET, region: REGION, prefix: PREFIX, path_style: Type.Boolean(),
    access_key_id: ACCESS_KEY_ID, secret_access_key: SECRET_ACCESS_KEY, is_default: Type.Boolean(),
  }),
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateStorageProviderRequest = Static<typeof UpdateStorageProviderRequest>;

export interface AuditEntryBody {
  id: string;
  at: string;
  user_id: string | null;
  node_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  detail: unknown;
}

export const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$' })),
    before: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    user_id: Type.Optional(Uuid),
    target_type: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    target_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;

export interface AuditPage {
  entries: AuditEntryBody[];
  /** Pass as ?before= for the next (older) page; null when this was the last. */
  next_before: number | null;
}
