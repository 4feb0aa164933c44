// Request and response types shared by the server, the agent and the CLI: one definition
// of every body that crosses the wire. Field names follow the spec (snake_case).

import { Type, type Static, type TNumber, type TOptional } from '@sinclair/typebox';
import { BACKUP_STATUSES, END_STATUSES, JOIN_CODE_PATTERN, STAGES, type BackupStatus, type Stage } from './formats.ts';
import { AbsolutePath, Digits, Label, Nullable, Password, PlainText, StringEnum, Uuid } from './schema-kit.ts';

/** Every error response: a status code that fits (4xx for the client's mistakes) and this body. */
export interface ApiErrorBody {
  error: {
    /** Stable machine code, e.g. 'not_found', 'conflict', 'quota_exceeded', 'validation'. */
    code: string;
    /** One sentence naming the thing and the fix. */
    message: string;
    details?: unknown;
  };
  /** error.message again, on the routes the original system's scripts call (they read .detail). */
  detail?: string;
}

// ---- sites and live backup state (the spec's status fields) ----

export interface BackupStatusBody {
  site_id: string;
  status: BackupStatus;
  progress: number;
  stage: Stage | null;
  stage_detail: string | null;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
  /** Set when status is completed. */
  backup_id: string | null;
  job_id: string | null;
}

export interface Site {
  id: string;
  node_id: string;
  name: string;
  wp_path: string;
  db_name: string | null;
  excludes: string[];
  quota_bytes: number | null;
  created_at: string;
  backup: BackupStatusBody;
  /** The next scheduled backup (GET /sites, GET /sites/{id}); null: none scheduled. */
  next_run_at?: string | null;
}

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

export interface StartBackupResponse {
  job_id: string;
  site_id: string;
  state: JobState;
  created_at: string;
  /** Always true on a 202: what the original system's start_backup.sh checks. */
  success: true;
}

/** GET /sites/{id}/backup/status: the status, and stage_detail again as message (what monitor_backup.sh prints). */
export interface BackupStatusResponse extends BackupStatusBody {
  message: string | null;
}

export type JobState = 'queued' | 'claimed' | 'running' | 'done' | 'failed' | 'cancelled';

export interface QuotaCheck {
  can_proceed: boolean;
  current_usage_bytes: number;
  estimate_bytes: number;
  /** 'last_backup' or 'site_size_x_ratio' (or 'none' when nothing is known yet). */
  estimate_basis: 'last_backup' | 'site_size_x_ratio' | 'none';
  projected_usage_bytes: number;
  site_quota_bytes: number | null;
  node_quota_bytes: number | null;
  /** Which quotas the projection would exceed. */
  exceeded: ('site' | 'node')[];
}

/** The spec's QuotaCheck, plus the node's side of it (current_usage_bytes is the site's). */
export interface QuotaCheckBody extends QuotaCheck {
  node_usage_bytes: number;
  node_projected_usage_bytes: number;
}

export interface StopBackupResponse {
  job_id: string;
  /** True: the job was still queued and is cancelled now. False: the agent is asked to stop. */
  immediate: boolean;
  status: BackupStatusBody;
}

export interface ResetBackupResponse {
  status: BackupStatusBody;
  /** The clean-up job queued for the site's agent. */
  reset_job_id: string;
  cancelled_job_ids: string[];
  aborted_uploads: number;
  /** Always true on a 200: what the original system's reset_backup.sh checks. */
  success: true;
  message: string;
  /**
   * The original's clean-up report. The server removes no temp dirs itself: the node's agent
   * removes them when it runs reset_job_id, after this reply, so the counts are 0 and pending is true.
   */
  cleanup: { dirs_removed: number; space_freed_mb: number; pending: boolean };
}

export interface Backup {
  id: string;
  site_id: string;
  storage_id: string;
  key: string;
  filename: string;
  size: number;
  sha256: string;
  status: 'completed';
  created_at: string;
  /** Kept forever by retention (wpbackup backups pin ID). */
  pinned: boolean;
}

export interface DownloadResponse {
  url: string;
  /** The same URL under the original system's name. */
  download_url: string;
  expires_in_seconds: number;
  filename: string;
  size: number;
  /** The whole object's sha256 as recorded at upload: `wpbackup restore --sha256` checks it (and `--backup ID` uses it). */
  sha256: string;
}

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

export interface LoginResponse {
  token: string;
  expires_at: string;
}

/** POST /auth/login's session also under the original system's names (OAuth2 style). */
export interface PasswordLoginResponse extends LoginResponse {
  access_token: string;
  token_type: 'bearer';
}

/**
 * A right password for an account with a second factor (mfa_required), or of a role that must have
 * one but has none yet (mfa_enrollment_required): no token, a challenge for POST /api/v1/auth/login/mfa.
 */
export interface LoginChallenge {
  mfa_required?: true;
  mfa_enrollment_required?: true;
  challenge: string;
  challenge_expires_at: string;
}

export type LoginResult = PasswordLoginResponse | LoginChallenge;

const Challenge = Type.String({ minLength: 1, maxLength: 100 });
/** A 6-digit TOTP code, or a recovery code (xxxx-xxxx-xxxx-xxxx). */
const Code = Type.String({ minLength: 1, maxLength: 40 });

export const LoginMfaRequest = Type.Object({ challenge: Challenge, code: Code }, { additionalProperties: false });
export type LoginMfaRequest = Static<typeof LoginMfaRequest>;

/** POST /api/v1/auth/login/mfa/enroll */
export const LoginEnrollRequest = Type.Object({ challenge: Challenge }, { additionalProperties: false });
export type LoginEnrollRequest = Static<typeof LoginEnrollRequest>;

/** The session; after an enrollment challenge, also the recovery codes (shown this once). */
export interface LoginMfaResponse extends LoginResponse {
  recovery_codes?: string[];
}

export interface MfaEnrollment {
  /** The TOTP secret in base32, for typing into an authenticator app. */
  secret: string;
  /** otpauth://totp/... : what a QR code for the app holds. */
  otpauth_uri: string;
}

export interface MfaStatusBody {
  enabled: boolean;
  /** An enrollment waits for its confirming code. */
  pending: boolean;
  /** The server requires a second factor for this user's role. */
  required: boolean;
  recovery_codes_left: number;
}

export const MfaCodeRequest = Type.Object({ code: Code }, { additionalProperties: false });
export type MfaCodeRequest = Static<typeof MfaCodeRequest>;

export interface MfaRecoveryCodes {
  recovery_codes: string[];
}

// ---- agents (node key as bearer token) ----

export const JoinRequest = Type.Object(
  { code: Type.String({ minLength: 1, maxLength: 200, pattern: JOIN_CODE_PATTERN }), hostname: Label(253) },
  { additionalProperties: false },
);
export type JoinRequest = Static<typeof JoinRequest>;

/** Returned once; the node key is never shown again by any endpoint. */
export interface JoinResponse {
  node_id: string;
  node_key: string;
}

export interface AgentJob {
  job_id: string;
  type: 'backup' | 'reset';
  site: { id: string; name: string; wp_path: string; excludes: string[] };
  node_id: string;
  /** The object key the server chose: <node_uuid>/<site_uuid>/<name>_<date>_<time>.tar.zst. */
  key: string;
  lease_seconds: number;
}

export interface PollResponse {
  job: AgentJob | null;
  /** Backups this node may run at once (an admin sets it; the server hands out no more). */
  job_limit?: number;
}

/** Set to '1' on a poll reply when an admin asked for a new node key: fetch it with POST /api/v1/agent/rotate-key. */
export const KEY_ROTATION_HEADER = 'x-wpbackup-rotate-key';

/** POST /api/v1/agent/rotate-key: this node's next key, sent once; the old one works until this one is used. */
export interface RotateKeyResponse {
  node_key: string;
}

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

export interface ProgressReply {
  cancel: boolean;
  lease_until: string;
}

/** Multipart upload through presigned part URLs: the agent never holds storage credentials. */
export interface UploadStartResponse {
  upload_id: string;
}

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

export interface PartUrlsResponse {
  urls: Record<string, string>;
}

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

export interface UploadCompleteResponse {
  backup_id: string;
}

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

export interface ScanReply {
  stored: number;
}

export interface DiscoveredSite extends ScannedSite {
  node_id: string;
  seen_at: string;
  /** A site with this node and wp_path exists already. */
  adopted: boolean;
}

/** GET /api/v1/nodes/{id}/discovered-sites */
export interface DiscoveredSiteList {
  discovered_sites: DiscoveredSite[];
}

/** POST /api/v1/sites/adopt: a discovered site becomes a site; name defaults to the discovered one. */
export const AdoptSiteRequest = Type.Object({ node_id: Uuid, path: AbsolutePath, name: Type.Optional(SiteName) }, { additionalProperties: false });
export type AdoptSiteRequest = Static<typeof AdoptSiteRequest>;
