// Request and response types shared by the server, the agent and the CLI: one definition
// of every body that crosses the wire. Field names follow the spec (snake_case).

import { Type, type Static, type TNumber, type TOptional } from '@sinclair/typebox';
import { BACKUP_STATUSES, END_STATUSES, JOIN_CODE_PATTERN, STAGES, type Stage } from './formats.ts';
import { AbsolutePath, AlwaysTrue, Digits, IsoTime, Label, Nullable, Password, PlainText, StringEnum, StringMap, Uuid } from './schema-kit.ts';

// Response bodies are TypeBox schemas too (the OpenAPI document lists them under their status), each
// with its type under the same name (Static<typeof X>).

const ErrorObject = Type.Object({
  code: Type.String({ description: "Stable machine code, e.g. 'not_found', 'conflict', 'quota_exceeded', 'validation'" }),
  message: Type.String({ description: 'One sentence naming the thing and the fix' }),
  details: Type.Optional(Type.Unknown({ description: 'More about it, where the code says (quota_exceeded: the quota check)' })),
});

/** Every error response: a status code that fits (4xx for the client's mistakes) and this body. */
export const ApiErrorBody = Type.Object({ error: ErrorObject });

/** The error body on the routes the original system's scripts call: error.message again as detail (they read .detail). */
export const ApiErrorBodyWithDetail = Type.Object({
  error: ErrorObject,
  detail: Type.String({ description: "error.message again, for the original system's clients" }),
});
export type ApiErrorBody = Static<typeof ApiErrorBody> & { detail?: string };

// ---- sites and live backup state (the spec's status fields) ----

export const BackupStatusBody = Type.Object({
  site_id: Type.String(),
  status: StringEnum(BACKUP_STATUSES),
  progress: Type.Integer({ minimum: 0, maximum: 100 }),
  stage: Nullable(StringEnum(STAGES)),
  stage_detail: Nullable(Type.String()),
  error: Nullable(Type.String()),
  started_at: Nullable(IsoTime()),
  finished_at: Nullable(IsoTime()),
  backup_id: Nullable(Type.String({ description: 'The backup made, when status is completed' })),
  job_id: Nullable(Type.String()),
});
export type BackupStatusBody = Static<typeof BackupStatusBody>;

export const Site = Type.Object({
  id: Type.String(),
  node_id: Type.String(),
  name: Type.String(),
  wp_path: Type.String(),
  db_name: Nullable(Type.String()),
  excludes: Type.Array(Type.String()),
  quota_bytes: Nullable(Type.Integer()),
  created_at: IsoTime(),
  backup: BackupStatusBody,
  next_run_at: Type.Optional(Nullable(IsoTime('The next scheduled backup (GET /sites, GET /sites/{id}, POST /sites); null: none scheduled'))),
});
export type Site = Static<typeof Site>;

/** GET /api/v1/sites */
export const SiteList = Type.Object({ sites: Type.Array(Site) });
export type SiteList = Static<typeof SiteList>;

const SiteName = Label(200);
const Excludes = Type.Array(Label(1024), { maxItems: 500 });
const QuotaBytes = Nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }));

export const CreateSiteRequest = Type.Object(
  { node_id: Uuid, name: SiteName, wp_path: AbsolutePath, excludes: Type.Optional(Excludes), quota_bytes: Type.Optional(QuotaBytes) },
  { additionalProperties: false },
);
export type CreateSiteRequest = Static<typeof CreateSiteRequest>;

/** PATCH /api/v1/sites/{id}: any of name, wp_path, excludes, quota_bytes. */
export const PatchSiteRequest = Type.Object(
  { name: Type.Optional(SiteName), wp_path: Type.Optional(AbsolutePath), excludes: Type.Optional(Excludes), quota_bytes: Type.Optional(QuotaBytes) },
  { additionalProperties: false, minProperties: 1 },
);
export type PatchSiteRequest = Static<typeof PatchSiteRequest>;

/** GET /api/v1/sites: optionally one node's, a page at a time. */
/** GET /api/v1/sites/{id}/backups: before is created_at in epoch ms, to page back. */
export const BackupListQuery = Type.Object({ limit: Type.Optional(Digits(1000)), before: Type.Optional(Digits(1e15)) }, { additionalProperties: false });
export type BackupListQuery = Static<typeof BackupListQuery>;

export const SiteListQuery = Type.Object(
  { node_id: Type.Optional(Uuid), limit: Type.Optional(Digits(1000)), offset: Type.Optional(Digits(1_000_000)) },
  { additionalProperties: false },
);
export type SiteListQuery = Static<typeof SiteListQuery>;

export const JOB_STATES = ['queued', 'claimed', 'running', 'done', 'failed', 'cancelled'] as const;
export const JobState = StringEnum(JOB_STATES);
export type JobState = Static<typeof JobState>;

export const StartBackupResponse = Type.Object({
  job_id: Type.String(),
  site_id: Type.String(),
  state: JobState,
  created_at: IsoTime(),
  success: AlwaysTrue("Always true on a 202: what the original system's start_backup.sh checks"),
});
export type StartBackupResponse = Static<typeof StartBackupResponse>;

/** GET /sites/{id}/backup/status: the status, and stage_detail again as message (what monitor_backup.sh prints). */
export const BackupStatusResponse = Type.Object({
  ...BackupStatusBody.properties,
  message: Nullable(Type.String({ description: "stage_detail again, for the original system's monitor_backup.sh" })),
});
export type BackupStatusResponse = Static<typeof BackupStatusResponse>;

export const QuotaCheck = Type.Object({
  can_proceed: Type.Boolean(),
  current_usage_bytes: Type.Integer(),
  estimate_bytes: Type.Integer(),
  estimate_basis: StringEnum(['last_backup', 'site_size_x_ratio', 'none'], { description: "What the estimate is: the last backup's size, the site's size times the compression ratio, or nothing known yet" }),
  projected_usage_bytes: Type.Integer(),
  site_quota_bytes: Nullable(Type.Integer()),
  node_quota_bytes: Nullable(Type.Integer()),
  exceeded: Type.Array(StringEnum(['site', 'node']), { description: 'Which quotas the projection would exceed' }),
});
export type QuotaCheck = Static<typeof QuotaCheck>;

/** The spec's QuotaCheck, plus the node's side of it (current_usage_bytes is the site's). */
export const QuotaCheckBody = Type.Object({ ...QuotaCheck.properties, node_usage_bytes: Type.Integer(), node_projected_usage_bytes: Type.Integer() });
export type QuotaCheckBody = Static<typeof QuotaCheckBody>;

export const StopBackupResponse = Type.Object({
  job_id: Type.String(),
  immediate: Type.Boolean({ description: 'True: the job was still queued and is cancelled now. False: the agent is asked to stop.' }),
  status: BackupStatusBody,
});
export type StopBackupResponse = Static<typeof StopBackupResponse>;

export const ResetBackupResponse = Type.Object({
  status: BackupStatusBody,
  reset_job_id: Type.String({ description: "The clean-up job queued for the site's agent" }),
  cancelled_job_ids: Type.Array(Type.String()),
  aborted_uploads: Type.Integer(),
  success: AlwaysTrue("Always true on a 200: what the original system's reset_backup.sh checks"),
  message: Type.String(),
  cleanup: Type.Object({
    dirs_removed: Type.Integer(),
    space_freed_mb: Type.Number(),
    pending: Type.Boolean(),
  }, { description: "The original system's clean-up report. The server removes no temp dirs itself: the node's agent removes them when it runs reset_job_id, after this reply, so the counts are 0 and pending is true" }),
});
export type ResetBackupResponse = Static<typeof ResetBackupResponse>;

export const Backup = Type.Object({
  id: Type.String(),
  site_id: Type.String(),
  storage_id: Type.String(),
  key: Type.String(),
  filename: Type.String(),
  size: Type.Integer(),
  sha256: Type.String(),
  status: StringEnum(['completed']),
  created_at: IsoTime(),
  pinned: Type.Boolean({ description: 'Kept forever by retention (wpbackup backups pin ID)' }),
});
export type Backup = Static<typeof Backup>;

/** GET /api/v1/sites/{id}/backups */
export const BackupList = Type.Object({ backups: Type.Array(Backup) });
export type BackupList = Static<typeof BackupList>;

export const DownloadResponse = Type.Object({
  url: Type.String(),
  download_url: Type.String({ description: "url again, under the original system's name" }),
  expires_in_seconds: Type.Integer(),
  filename: Type.String(),
  size: Type.Integer(),
  sha256: Type.String({ description: "The whole object's sha256 as recorded at upload: `wpbackup restore --sha256` checks it (and `--backup ID` uses it)" }),
});
export type DownloadResponse = Static<typeof DownloadResponse>;

// ---- auth ----

const LoginEmail = Type.String({ minLength: 3, maxLength: 254 });

export const LoginRequest = Type.Object({ email: LoginEmail, password: Password }, { additionalProperties: false });
export type LoginRequest = Static<typeof LoginRequest>;

/** The original system's sign-in body: username is the email. */
export const UsernameLoginRequest = Type.Object(
  { username: Type.String({ ...LoginEmail, description: "The email under the original system's name: send email or username, not both" }), password: Password },
  { additionalProperties: false },
);
export type UsernameLoginRequest = Static<typeof UsernameLoginRequest>;

/** POST /api/v1/auth/login's body: LoginRequest or UsernameLoginRequest, one object with both names (as documented since the start). */
export const LoginBody = Type.Object(
  { email: Type.Optional(LoginEmail), username: Type.Optional(UsernameLoginRequest.properties.username), password: Password },
  { additionalProperties: false, oneOf: [{ required: ['email'] }, { required: ['username'] }] },
);

export const LoginResponse = Type.Object({ token: Type.String({ description: 'The bearer token' }), expires_at: IsoTime() });
export type LoginResponse = Static<typeof LoginResponse>;

/** POST /auth/login's session also under the original system's names (OAuth2 style). */
export const PasswordLoginResponse = Type.Object({
  ...LoginResponse.properties,
  access_token: Type.String({ description: "token again, for the original system's clients" }),
  token_type: StringEnum(['bearer']),
});
export type PasswordLoginResponse = Static<typeof PasswordLoginResponse>;

/**
 * A right password for an account with a second factor (mfa_required), or of a role that must have
 * one but has none yet (mfa_enrollment_required): no token, a challenge for POST /api/v1/auth/login/mfa.
 */
export const LoginChallenge = Type.Object({
  mfa_required: Type.Optional(AlwaysTrue('The account has a second factor: send a code with the challenge to POST /api/v1/auth/login/mfa')),
  mfa_enrollment_required: Type.Optional(AlwaysTrue('The role must have a second factor: enroll with POST /api/v1/auth/login/mfa/enroll')),
  challenge: Type.String(),
  challenge_expires_at: IsoTime(),
});
export type LoginChallenge = Static<typeof LoginChallenge>;

/** POST /api/v1/auth/login's 200: one object with the fields of both (as documented since the start), either a session or a challenge. */
export const LoginResult = Type.Unsafe<PasswordLoginResponse | LoginChallenge>({
  type: 'object',
  properties: { ...PasswordLoginResponse.properties, ...LoginChallenge.properties },
  oneOf: [{ required: PasswordLoginResponse.required }, { required: LoginChallenge.required }],
});
export type LoginResult = Static<typeof LoginResult>;

const Challenge = Type.String({ minLength: 1, maxLength: 100 });
/** A 6-digit TOTP code, or a recovery code (xxxx-xxxx-xxxx-xxxx). */
const Code = Type.String({ minLength: 1, maxLength: 40 });

export const LoginMfaRequest = Type.Object({ challenge: Challenge, code: Code }, { additionalProperties: false });
export type LoginMfaRequest = Static<typeof LoginMfaRequest>;

/** POST /api/v1/auth/login/mfa/enroll */
export const LoginEnrollRequest = Type.Object({ challenge: Challenge }, { additionalProperties: false });
export type LoginEnrollRequest = Static<typeof LoginEnrollRequest>;

/** The session; after an enrollment challenge, also the recovery codes (shown this once). */
export const LoginMfaResponse = Type.Object({
  ...LoginResponse.properties,
  recovery_codes: Type.Optional(Type.Array(Type.String(), { description: 'After an enrollment: the one-time recovery codes, shown this once' })),
});
export type LoginMfaResponse = Static<typeof LoginMfaResponse>;

export const MfaEnrollment = Type.Object({
  secret: Type.String({ description: 'The TOTP secret in base32, for typing into an authenticator app' }),
  otpauth_uri: Type.String({ description: 'otpauth://totp/... : what a QR code for the app holds' }),
});
export type MfaEnrollment = Static<typeof MfaEnrollment>;

export const MfaStatusBody = Type.Object({
  enabled: Type.Boolean(),
  pending: Type.Boolean({ description: 'An enrollment waits for its confirming code' }),
  required: Type.Boolean({ description: "The server requires a second factor for this user's role" }),
  recovery_codes_left: Type.Integer(),
});
export type MfaStatusBody = Static<typeof MfaStatusBody>;

export const MfaCodeRequest = Type.Object({ code: Code }, { additionalProperties: false });
export type MfaCodeRequest = Static<typeof MfaCodeRequest>;

export const MfaRecoveryCodes = Type.Object({ recovery_codes: Type.Array(Type.String(), { description: 'One-time recovery codes, shown only this once' }) });
export type MfaRecoveryCodes = Static<typeof MfaRecoveryCodes>;

// ---- agents (node key as bearer token) ----

export const JoinRequest = Type.Object(
  { code: Type.String({ minLength: 1, maxLength: 200, pattern: JOIN_CODE_PATTERN }), hostname: Label(253) },
  { additionalProperties: false },
);
export type JoinRequest = Static<typeof JoinRequest>;

/** Returned once; the node key is never shown again by any endpoint. */
export const JoinResponse = Type.Object({ node_id: Type.String(), node_key: Type.String({ description: 'The node key, shown this once' }) });
export type JoinResponse = Static<typeof JoinResponse>;

export const AgentJob = Type.Object({
  job_id: Type.String(),
  type: StringEnum(['backup', 'reset']),
  site: Type.Object({ id: Type.String(), name: Type.String(), wp_path: Type.String(), excludes: Type.Array(Type.String()) }),
  node_id: Type.String(),
  key: Type.String({ description: 'The object key the server chose: <node_uuid>/<site_uuid>/<name>_<date>_<time>.tar.zst (empty for a reset)' }),
  lease_seconds: Type.Number(),
});
export type AgentJob = Static<typeof AgentJob>;

export const PollResponse = Type.Object({
  job: Nullable(AgentJob),
  job_limit: Type.Optional(Type.Integer({ description: 'Backups this node may run at once (an admin sets it; the server hands out no more)' })),
});
export type PollResponse = Static<typeof PollResponse>;

/** Set to '1' on a poll reply when an admin asked for a new node key: fetch it with POST /api/v1/agent/rotate-key. */
export const KEY_ROTATION_HEADER = 'x-wpbackup-rotate-key';

/** POST /api/v1/agent/rotate-key: this node's next key, sent once; the old one works until this one is used. */
export const RotateKeyResponse = Type.Object({ node_key: Type.String() });
export type RotateKeyResponse = Static<typeof RotateKeyResponse>;

/** The agent's progress report; the reply carries cancellation (stop/reset) and the new lease. */
const StageOrNull = Type.Union([StringEnum(STAGES), Type.Null()]);
const ErrorText = Type.Union([Type.String({ maxLength: 4000 }), Type.Null()]);

export const ProgressReport = Type.Object(
  {
    status: StringEnum(BACKUP_STATUSES),
    progress: Type.Integer({ minimum: 0, maximum: 100 }),
    stage: StageOrNull,
    stage_detail: Type.String({ maxLength: 2000 }),
    error: ErrorText,
  },
  { additionalProperties: false },
);
export type ProgressReport = Static<typeof ProgressReport>;

export const ProgressReply = Type.Object({
  cancel: Type.Boolean({ description: 'Stop the backup (a user asked for a stop or reset)' }),
  lease_until: IsoTime('The job is this agent\'s until then; report again before it'),
});
export type ProgressReply = Static<typeof ProgressReply>;

/** POST /api/v1/agent/jobs/{id}/finish: the job's state after the report. */
export const FinishReply = Type.Object({ state: JobState });
export type FinishReply = Static<typeof FinishReply>;

/** Multipart upload through presigned part URLs: the agent never holds storage credentials. */
export const UploadStartResponse = Type.Object({ upload_id: Type.String() });
export type UploadStartResponse = Static<typeof UploadStartResponse>;

export const UploadAbortResponse = Type.Object({ aborted: Type.Boolean({ description: 'False: the job had no upload to abort' }) });
export type UploadAbortResponse = Static<typeof UploadAbortResponse>;

/** Most parts one multipart upload may have, and bytes one part may hold (S3's limits). */
export const MAX_PARTS = 10_000;
export const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;

export const PartUrlsRequest = Type.Object(
  {
    part_numbers: Type.Array(Type.Integer({ minimum: 1, maximum: MAX_PARTS }), { minItems: 1, maxItems: 100, uniqueItems: true }),
    part_size: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_PART_BYTES, description: 'The exact size of each of these parts; their URLs are signed for it. Required when a quota applies.' })),
  },
  { additionalProperties: false },
);
export type PartUrlsRequest = Static<typeof PartUrlsRequest>;

export const PartUrlsResponse = Type.Object({ urls: StringMap('Each part number asked for, and its presigned upload URL') });
export type PartUrlsResponse = Static<typeof PartUrlsResponse>;

export const UploadCompleteRequest = Type.Object(
  {
    parts: Type.Array(
      Type.Object({ part_number: Type.Integer({ minimum: 1, maximum: MAX_PARTS }), etag: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
      { minItems: 1, maxItems: MAX_PARTS },
    ),
    size: Type.Integer({ minimum: 0 }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  },
  { additionalProperties: false },
);
export type UploadCompleteRequest = Static<typeof UploadCompleteRequest>;

export const UploadCompleteResponse = Type.Object({ backup_id: Type.String() });
export type UploadCompleteResponse = Static<typeof UploadCompleteResponse>;

export const FinishRequest = Type.Object(
  {
    status: StringEnum(END_STATUSES),
    stage: StageOrNull,
    error: ErrorText,
    source_bytes: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'For a completed backup: the uncompressed bytes that went in (dump + wp-content), for quota estimates' })),
    stage_seconds: Type.Optional(
      Type.Object(Object.fromEntries(STAGES.map((s) => [s, Type.Optional(Type.Number({ minimum: 0, maximum: 31_536_000 }))])) as Record<Stage, TOptional<TNumber>>, {
        additionalProperties: false,
        description: 'How long each stage that ended took, in seconds, as the agent measured it (for the metrics)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type FinishRequest = Static<typeof FinishRequest>;

/** One WordPress root an agent's scan found. Never a password: the agent does not send one. */
const OptText = (max: number) => Type.Union([PlainText(max), Type.Null()]);

export const ScannedSite = Type.Object(
  {
    path: AbsolutePath,
    name: Label(200),
    db_name: OptText(200),
    table_prefix: OptText(200),
    wp_version: OptText(100),
    error: Type.Union([Type.String({ maxLength: 4000, description: "Why the site's settings could not be read" }), Type.Null()]),
  },
  { additionalProperties: false },
);
export type ScannedSite = Static<typeof ScannedSite>;

/** POST /api/v1/agent/scan: the node's whole scan, replacing the last one. */
export const ScanReport = Type.Object({ sites: Type.Array(ScannedSite, { maxItems: 1000 }) }, { additionalProperties: false });
export type ScanReport = Static<typeof ScanReport>;

export const ScanReply = Type.Object({ stored: Type.Integer({ description: 'Sites stored from this scan' }) });
export type ScanReply = Static<typeof ScanReply>;

export const DiscoveredSite = Type.Object({
  ...ScannedSite.properties,
  node_id: Type.String(),
  seen_at: IsoTime(),
  adopted: Type.Boolean({ description: 'A site with this node and wp_path exists already' }),
});
export type DiscoveredSite = Static<typeof DiscoveredSite>;

/** GET /api/v1/nodes/{id}/discovered-sites */
export const DiscoveredSiteList = Type.Object({ discovered_sites: Type.Array(DiscoveredSite) });
export type DiscoveredSiteList = Static<typeof DiscoveredSiteList>;

/** GET /healthz */
export const Health = Type.Object({ status: StringEnum(['ok']), version: Type.String(), database: StringEnum(['sqlite', 'postgres']) });
export type Health = Static<typeof Health>;

/** POST /api/v1/sites/adopt: a discovered site becomes a site; name defaults to the discovered one. */
export const AdoptSiteRequest = Type.Object({ node_id: Uuid, path: AbsolutePath, name: Type.Optional(SiteName) }, { additionalProperties: false });
export type AdoptSiteRequest = Static<typeof AdoptSiteRequest>;
