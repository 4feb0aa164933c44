// Request and response bodies of the admin API: users, tokens, nodes, storage providers, audit.
// snake_case like src/api/types.ts. No body here ever carries a password, a key hash or a
// storage secret; the only secret that goes out is a token value, once, when it is created.
// Request and response bodies are TypeBox schemas with their types (Static, under the same name):
// what the server validates and documents is what clients are typed against.

import { Type, type Static } from '@sinclair/typebox';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, NO_CONTROL_PATTERN, NORMAL_DIR_PATTERN } from './formats.ts';
import { IsoTime, Label, Nullable, Password, StringEnum, Uuid } from './schema-kit.ts';

export const UserRole = StringEnum(['super_admin', 'node_admin', 'site_admin']);
export type UserRole = Static<typeof UserRole>;

export const Email = Type.String({ minLength: 3, maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+$' });
/** A new password: the policy's length (the server checks the rest of the policy). */
export const NewPassword = Type.String({ minLength: MIN_PASSWORD_LENGTH, maxLength: MAX_PASSWORD_LENGTH });

export const User = Type.Object({
  id: Type.String(),
  email: Type.String(),
  role: UserRole,
  node_ids: Type.Array(Type.String()),
  site_ids: Type.Array(Type.String()),
  disabled: Type.Boolean({ description: 'A disabled user cannot sign in and their tokens are gone' }),
  created_at: IsoTime(),
});
export type User = Static<typeof User>;

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

export const UserList = Type.Object({ users: Type.Array(User) });
export type UserList = Static<typeof UserList>;

/** GET /api/v1/auth/me */
export const Me = User;
export type Me = User;

const ApiTokenFields = {
  id: Type.String(),
  kind: StringEnum(['session', 'api']),
  name: Nullable(Type.String()),
  created_at: IsoTime(),
  expires_at: Nullable(IsoTime()),
  last_used_at: Nullable(IsoTime()),
};

export const ApiToken = Type.Object({ ...ApiTokenFields, current: Type.Boolean({ description: 'True for the token this request was made with' }) });
export type ApiToken = Static<typeof ApiToken>;

export const TokenList = Type.Object({ tokens: Type.Array(ApiToken) });
export type TokenList = Static<typeof TokenList>;

export const CreateTokenRequest = Type.Object(
  {
    name: Label(100),
    expires_in_days: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 3650, description: 'Omitted or null: the token lives until revoked' }))),
  },
  { additionalProperties: false },
);
export type CreateTokenRequest = Static<typeof CreateTokenRequest>;

/** The token value is shown here once and never again. */
export const CreateTokenResponse = Type.Object({ ...ApiTokenFields, token: Type.String({ description: 'The token, shown this once' }) });
export type CreateTokenResponse = Static<typeof CreateTokenResponse>;

export const NodeStatus = StringEnum(['pending', 'active', 'disabled']);
export type NodeStatus = Static<typeof NodeStatus>;

export const Node = Type.Object({
  id: Type.String(),
  hostname: Type.String(),
  status: NodeStatus,
  last_seen: Nullable(IsoTime()),
  quota_bytes: Nullable(Type.Integer()),
  has_key: Type.Boolean({ description: 'Whether the node has enrolled (holds a node key); the key itself is never shown' }),
  key_rotation_requested_at: Nullable(IsoTime('When a key rotation was asked for that the agent has not completed yet; null: none pending')),
  job_limit: Type.Integer({ description: 'Backups the node runs at once (its agent runs that many; the server hands out no more)' }),
  created_at: IsoTime(),
});
export type Node = Static<typeof Node>;

/** POST /api/v1/nodes/{id}/revoke-key */
export const RevokeKeyResponse = Type.Object({
  node: Node,
  jobs_failed: Type.Integer({ description: 'Jobs the node held, failed by the revocation (their uploads aborted)' }),
});
export type RevokeKeyResponse = Static<typeof RevokeKeyResponse>;

/** POST /api/v1/nodes/join-codes: with node_id, a re-join code that gives that node a new key. */
export const JoinCodeRequest = Nullable(Type.Object({ node_id: Type.Optional(Uuid) }, { additionalProperties: false }));
export type JoinCodeRequest = Static<typeof JoinCodeRequest>;

export const NodeList = Type.Object({ nodes: Type.Array(Node) });
export type NodeList = Static<typeof NodeList>;

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

export const JoinCodeResponse = Type.Object({ code: Type.String(), expires_at: IsoTime() });
export type JoinCodeResponse = Static<typeof JoinCodeResponse>;

export const StorageType = StringEnum(['local', 's3']);
export type StorageType = Static<typeof StorageType>;

/** Settings are null (prefix empty, path_style false) for callers who may read but not change providers. */
export const StorageProvider = Type.Object({
  id: Type.String(),
  name: Type.String(),
  type: StorageType,
  root_path: Nullable(Type.String()),
  endpoint: Nullable(Type.String()),
  bucket: Nullable(Type.String()),
  region: Nullable(Type.String()),
  prefix: Type.String(),
  path_style: Type.Boolean(),
  is_default: Type.Boolean(),
  has_credentials: Type.Boolean(),
  access_key_id: Nullable(Type.String({ description: 'The access key id of an s3 provider; the secret key is never returned' })),
  created_at: IsoTime(),
});
export type StorageProvider = Static<typeof StorageProvider>;

export const StorageProviderList = Type.Object({ storage_providers: Type.Array(StorageProvider) });
export type StorageProviderList = Static<typeof StorageProviderList>;

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

export const AuditEntryBody = Type.Object({
  id: Type.String(),
  at: IsoTime(),
  user_id: Nullable(Type.String()),
  node_id: Nullable(Type.String()),
  action: Type.String(),
  target_type: Nullable(Type.String()),
  target_id: Nullable(Type.String()),
  detail: Type.Unknown({ description: 'What the action recorded (any JSON, or null)' }),
});
export type AuditEntryBody = Static<typeof AuditEntryBody>;

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

export const AuditPage = Type.Object({
  entries: Type.Array(AuditEntryBody),
  next_before: Nullable(Type.Integer({ description: 'Pass as ?before= for the next (older) page; null when this was the last' })),
});
export type AuditPage = Static<typeof AuditPage>;
