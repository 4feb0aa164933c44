// The schema's history, oldest first. Written once for both databases, in the subset they
// share: TEXT uuids, BIGINT epoch milliseconds (UTC) for every timestamp, INTEGER 0/1 for
// booleans, TEXT for JSON and for encrypted blobs (base64). An applied migration is never
// edited (its checksum is recorded and checked): add a new one instead. A migration that
// truly cannot be portable may give { sqlite, postgres } instead of one string.

export interface Migration {
  version: number;
  name: string;
  sql: string | { sqlite: string; postgres: string };
}

const ACTIVE = `state IN ('queued', 'claimed', 'running')`;

const initial = `
CREATE TABLE nodes (
  id TEXT PRIMARY KEY,
  hostname TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'disabled')),
  last_seen BIGINT,
  quota_bytes BIGINT CHECK (quota_bytes >= 0),
  node_key_hash TEXT UNIQUE,
  created_at BIGINT NOT NULL
);

CREATE TABLE users (
  id TEXT PRIMARY KEY,
  email TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('super_admin', 'node_admin', 'site_admin')),
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_ci ON users (lower(email));

CREATE TABLE storage_providers (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL CHECK (type IN ('local', 's3')),
  root_path TEXT,
  endpoint TEXT,
  bucket TEXT,
  region TEXT,
  path_style INTEGER NOT NULL DEFAULT 0 CHECK (path_style IN (0, 1)),
  prefix TEXT NOT NULL DEFAULT '',
  credentials_enc TEXT,
  is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
  created_at BIGINT NOT NULL,
  CHECK (type <> 'local' OR root_path IS NOT NULL),
  CHECK (type <> 's3' OR bucket IS NOT NULL)
);
-- At most one default provider, enforced by the database rather than by care.
CREATE UNIQUE INDEX storage_providers_one_default ON storage_providers (is_default) WHERE is_default = 1;

-- size_bytes: the site's database and wp-content as last measured, for the quota estimate.
-- current_job_id and last_backup_id have no foreign key: jobs and backups refer to sites, and
-- a cycle of foreign keys cannot be created portably. The repositories keep them consistent.
CREATE TABLE sites (
  id TEXT PRIMARY KEY,
  node_id TEXT NOT NULL REFERENCES nodes (id),
  name TEXT NOT NULL,
  wp_path TEXT NOT NULL,
  db_name TEXT,
  excludes TEXT NOT NULL DEFAULT '[]',
  quota_bytes BIGINT CHECK (quota_bytes >= 0),
  size_bytes BIGINT CHECK (size_bytes >= 0),
  schedule_cron TEXT,
  retention_count INTEGER CHECK (retention_count > 0),
  status TEXT NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'running', 'completed', 'failed', 'stopped')),
  progress INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
  stage TEXT,
  stage_detail TEXT,
  error TEXT,
  started_at BIGINT,
  finished_at BIGINT,
  current_job_id TEXT,
  last_backup_id TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
-- Also the index for "sites of a node" (its leading column).
CREATE UNIQUE INDEX sites_node_path ON sites (node_id, wp_path);

CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL CHECK (type IN ('backup', 'reset')),
  site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  node_id TEXT NOT NULL REFERENCES nodes (id),
  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'claimed', 'running', 'done', 'failed', 'cancelled')),
  claimed_by TEXT REFERENCES nodes (id) ON DELETE SET NULL,
  lease_until BIGINT,
  attempt INTEGER NOT NULL DEFAULT 0,
  storage_id TEXT REFERENCES storage_providers (id) ON DELETE SET NULL,
  upload_key TEXT,
  upload_id TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
  error TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
-- The race guard: one live job of each type per site, whoever inserts it.
CREATE UNIQUE INDEX jobs_one_active ON jobs (site_id, type) WHERE ${ACTIVE};
CREATE INDEX jobs_site_state ON jobs (site_id, state);
CREATE INDEX jobs_queue ON jobs (node_id, state, created_at);
CREATE INDEX jobs_claimed_by ON jobs (claimed_by);
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE ${ACTIVE};

-- source_bytes: what went into the archive, so size / source_bytes is the compression ratio.
CREATE TABLE backups (
  id TEXT PRIMARY KEY,
  site_id TEXT NOT NULL REFERENCES sites (id),
  storage_id TEXT NOT NULL REFERENCES storage_providers (id),
  job_id TEXT,
  key TEXT NOT NULL,
  filename TEXT NOT NULL,
  size BIGINT CHECK (size >= 0),
  source_bytes BIGINT CHECK (source_bytes >= 0),
  sha256 TEXT,
  status TEXT NOT NULL CHECK (status IN ('uploading', 'completed', 'failed', 'deleting')),
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX backups_storage_key ON backups (storage_id, key);
CREATE INDEX backups_site_created ON backups (site_id, created_at);

CREATE TABLE user_nodes (
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  PRIMARY KEY (user_id, node_id)
);
CREATE INDEX user_nodes_node ON user_nodes (node_id);

CREATE TABLE user_sites (
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  PRIMARY KEY (user_id, site_id)
);
CREATE INDEX user_sites_site ON user_sites (site_id);

CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('session', 'api')),
  name TEXT,
  expires_at BIGINT,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE join_codes (
  code_hash TEXT PRIMARY KEY,
  expires_at BIGINT NOT NULL,
  used_at BIGINT,
  used_by_node TEXT REFERENCES nodes (id) ON DELETE SET NULL,
  created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
  created_at BIGINT NOT NULL
);

-- No foreign keys: the log outlives the users, nodes and sites it mentions.
CREATE TABLE audit_log (
  id TEXT PRIMARY KEY,
  at BIGINT NOT NULL,
  user_id TEXT,
  node_id TEXT,
  action TEXT NOT NULL,
  target_type TEXT,
  target_id TEXT,
  detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
`;

// What each node's agent last found on disk (its scan), for adopting as sites. Replaced as a
// whole on every scan; goes with its node. No DB passwords: the agent never sends them.
const discoveredSites = `
CREATE TABLE discovered_sites (
  node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  path TEXT NOT NULL,
  name TEXT NOT NULL,
  db_name TEXT,
  table_prefix TEXT,
  wp_version TEXT,
  error TEXT,
  seen_at BIGINT NOT NULL,
  PRIMARY KEY (node_id, path)
);
`;

// Sign-in hardening. login_throttle: failure counters per source, per (source, account) and per
// account, each a fixed window that starts at its first failure; shared by every server on the
// database; rows past window_end are dead and deleted now and then. A "known source" (a source
// that recently signed in as an account) is a row there too, with failures 0.
// user_mfa: a user's TOTP secret (encrypted), active once confirmed (enabled_at), with the last
// time step used so a code works once. mfa_recovery_codes: hashes of one-time codes.
// login_challenges: the short-lived second step of a sign-in (hash of its id only).
const loginSecurity = `
CREATE TABLE login_throttle (
  key TEXT PRIMARY KEY,
  failures INTEGER NOT NULL,
  window_end BIGINT NOT NULL
);
CREATE INDEX login_throttle_window_end ON login_throttle (window_end);

CREATE TABLE user_mfa (
  user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  secret_enc TEXT NOT NULL,
  enabled_at BIGINT,
  last_step BIGINT,
  created_at BIGINT NOT NULL
);

CREATE TABLE mfa_recovery_codes (
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_hash TEXT NOT NULL,
  used_at BIGINT,
  PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE login_challenges (
  id_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  purpose TEXT NOT NULL CHECK (purpose IN ('verify', 'enroll')),
  failures INTEGER NOT NULL DEFAULT 0,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX login_challenges_user ON login_challenges (user_id);
CREATE INDEX login_challenges_expires ON login_challenges (expires_at);
`;

// Ending access (issue 7): a user can be disabled (no login, no tokens); a node key can be
// rotated (pending_key_hash: the next key, handed to the agent once and promoted the first time
// it is used; key_rotation_at: when an admin asked for it) or revoked (node_key_hash NULL), after
// which a join code bound to the node (join_codes.node_id) gives the same node a new key.
const endingAccess = `
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
ALTER TABLE nodes ADD COLUMN pending_key_hash TEXT;
CREATE UNIQUE INDEX nodes_pending_key ON nodes (pending_key_hash);
ALTER TABLE nodes ADD COLUMN key_rotation_at BIGINT;
ALTER TABLE join_codes ADD COLUMN node_id TEXT REFERENCES nodes (id) ON DELETE CASCADE;
`;

// disabled_at / disabled_by_role: since when a node is disabled (a queued job on it fails after
// a while, naming that time) and whether a super_admin did it (a node_admin may not undo that).
// job_upload_parts: the size each part URL of a job's upload was signed for, so the server can
// refuse URLs beyond the job's byte budget (its site's and node's remaining quota plus a margin).
const limits = `
ALTER TABLE nodes ADD COLUMN disabled_at BIGINT;
ALTER TABLE nodes ADD COLUMN disabled_by_role TEXT;
CREATE TABLE job_upload_parts (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  upload_id TEXT NOT NULL,
  part_number INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
  size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
  PRIMARY KEY (job_id, upload_id, part_number)
);
`;

// Schedules (issue 10). fleet_schedule: the one default (row id 1) sites inherit, and the
// spreading window. site_schedules: each site's choice (inherit, its own cron, or disabled)
// and its next run; a missing row is inherit (the scheduler adds it). The scheduler claims a
// due run by moving next_run_at on (compare-and-set), so one server enqueues it.
// sites.schedule_cron (migration 1) stays unused. nodes.job_limit: jobs a node runs at once.
const schedules = `
CREATE TABLE fleet_schedule (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  cron TEXT,
  timezone TEXT,
  preset TEXT,
  window_minutes INTEGER NOT NULL DEFAULT 30 CHECK (window_minutes BETWEEN 0 AND 1440),
  updated_at BIGINT
);
INSERT INTO fleet_schedule (id) VALUES (1);
CREATE TABLE site_schedules (
  site_id TEXT PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
  mode TEXT NOT NULL DEFAULT 'inherit' CHECK (mode IN ('inherit', 'custom', 'disabled')),
  cron TEXT,
  timezone TEXT,
  preset TEXT,
  next_run_at BIGINT,
  last_run_at BIGINT,
  updated_at BIGINT NOT NULL,
  CHECK (mode <> 'custom' OR (cron IS NOT NULL AND timezone IS NOT NULL))
);
CREATE INDEX site_schedules_next_run ON site_schedules (next_run_at);
ALTER TABLE nodes ADD COLUMN job_limit INTEGER NOT NULL DEFAULT 1 CHECK (job_limit BETWEEN 1 AND 64);
`;

// Retention (issue 10): one policy row for the fleet (id 'fleet', site_id NULL, with the fleet's
// time zone) and at most one per site (id = site_id), which replaces the fleet's as a whole.
// backups.pinned keeps a backup forever; delete_* track a deletion that failed and is retried
// (the row stays 'deleting', is never shown as downloadable, and is retried from delete_after).
const retention = `
CREATE TABLE retention_policies (
  id TEXT PRIMARY KEY,
  site_id TEXT UNIQUE REFERENCES sites (id) ON DELETE CASCADE,
  keep_last INTEGER CHECK (keep_last >= -1),
  keep_hourly INTEGER CHECK (keep_hourly >= -1),
  keep_daily INTEGER CHECK (keep_daily >= -1),
  keep_weekly INTEGER CHECK (keep_weekly >= -1),
  keep_monthly INTEGER CHECK (keep_monthly >= -1),
  keep_yearly INTEGER CHECK (keep_yearly >= -1),
  time_zone TEXT,
  updated_at BIGINT NOT NULL,
  CHECK ((id = 'fleet' AND site_id IS NULL) OR (id <> 'fleet' AND site_id = id))
);
ALTER TABLE backups ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1));
ALTER TABLE backups ADD COLUMN delete_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE backups ADD COLUMN delete_after BIGINT;
ALTER TABLE backups ADD COLUMN delete_error TEXT;
CREATE INDEX backups_site_status ON backups (site_id, status, created_at);
CREATE INDEX backups_deleting ON backups (status, delete_after);
CREATE INDEX backups_storage ON backups (storage_id);
`;

// Alerts (issue 10). alert_channels: where alerts go, an SMTP server (config: host, port, tls,
// user, from, to) or a webhook (config: url); secret_enc: the SMTP password or the webhook's
// signing secret, encrypted (SecretBox, bound to the channel id). site_ids: JSON array of the
// sites the channel's own recipients hear about, NULL for all. alert_subscriptions: a user's
// own mail for the sites they may read (site_ids NULL: all of them), through an email channel.
// alert_deliveries: one message to one target (a channel, or a site's ping URL as
// target 'ping:<site id>'), sent and retried by whichever server claims it first (state and
// lease_until, changed by conditional UPDATEs); (target, event_key) is unique, so an event
// recorded twice is sent once. alert_state: whether a condition (a failing site, a stale
// one, an offline agent...) is raised, per subject and kind, so every server agrees on what
// was already said. alert_site_settings: a site's freshness window and (encrypted) ping URL.
// alert_settings: one row of fleet-wide thresholds.
const alerts = `
CREATE TABLE alert_channels (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL CHECK (type IN ('email', 'webhook')),
  config TEXT NOT NULL,
  secret_enc TEXT,
  site_ids TEXT,
  on_success INTEGER NOT NULL DEFAULT 0 CHECK (on_success IN (0, 1)),
  created_at BIGINT NOT NULL
);

CREATE TABLE alert_subscriptions (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  channel_id TEXT NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
  site_ids TEXT,
  on_success INTEGER NOT NULL DEFAULT 0 CHECK (on_success IN (0, 1)),
  created_at BIGINT NOT NULL,
  UNIQUE (user_id, channel_id)
);
CREATE INDEX alert_subscriptions_channel ON alert_subscriptions (channel_id);

CREATE TABLE alert_deliveries (
  id TEXT PRIMARY KEY,
  target TEXT NOT NULL,
  channel_id TEXT REFERENCES alert_channels (id) ON DELETE CASCADE,
  site_id TEXT REFERENCES sites (id) ON DELETE CASCADE,
  event_key TEXT NOT NULL,
  kind TEXT NOT NULL,
  recipients TEXT NOT NULL DEFAULT '[]',
  payload TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL,
  lease_until BIGINT,
  last_error TEXT,
  history TEXT NOT NULL DEFAULT '[]',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (target, event_key)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt_at);
CREATE INDEX alert_deliveries_channel ON alert_deliveries (channel_id, created_at);

CREATE TABLE alert_state (
  subject TEXT NOT NULL,
  kind TEXT NOT NULL,
  active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
  since BIGINT,
  notified_at BIGINT,
  detail TEXT,
  PRIMARY KEY (subject, kind)
);

CREATE TABLE alert_site_settings (
  site_id TEXT PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
  freshness_ms BIGINT CHECK (freshness_ms > 0),
  ping_url_enc TEXT
);

CREATE TABLE alert_settings (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  agent_offline_minutes INTEGER NOT NULL CHECK (agent_offline_minutes > 0),
  quota_percent INTEGER NOT NULL CHECK (quota_percent BETWEEN 1 AND 100),
  reminder_hours INTEGER NOT NULL CHECK (reminder_hours > 0)
);
INSERT INTO alert_settings (id, agent_offline_minutes, quota_percent, reminder_hours) VALUES (1, 15, 90, 24);
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema', sql: initial },
  { version: 2, name: 'discovered sites', sql: discoveredSites },
  { version: 3, name: 'login throttle and MFA', sql: loginSecurity },
  { version: 4, name: 'disabled users, node key rotation', sql: endingAccess },
  { version: 5, name: 'node disabled since, upload part budget', sql: limits },
  { version: 6, name: 'schedules, node job limit', sql: schedules },
  { version: 7, name: 'retention policies, pinned backups, retried deletions', sql: retention },
  { version: 8, name: 'alerts', sql: alerts },
];
