// The wire formats every side checks: ids, stage and status names, text without control
// characters. One definition here; the server's schemas, the agent, the CLI and the engine
// all use these (src/api imports nothing, so any of them may).

/** The spec's stages, in the order a backup runs them. */
export const STAGES = ['backup_db', 'backup_files', 'create_bundle', 'upload_remote', 'cleanup'] as const;
export type Stage = (typeof STAGES)[number];

/** The spec's backup status values. */
export const BACKUP_STATUSES = ['idle', 'running', 'completed', 'failed', 'stopped'] as const;
export type BackupStatus = (typeof BACKUP_STATUSES)[number];

/** How a run ends (the statuses an agent's finish report may give). */
export const END_STATUSES = ['completed', 'failed', 'stopped'] as const satisfies readonly BackupStatus[];

/** A uuid in either case, as a JSON schema pattern. */
export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const UUID_RE = new RegExp(UUID_PATTERN);

export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

/** The characters no name, path or label may hold: C0 controls and DEL. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;
const CONTROL_CHARS = new RegExp(CONTROL_CHAR.source, 'g');

/** The same as a JSON schema pattern: text made only of other characters (length limits come separately). */
export const NO_CONTROL_PATTERN = '^[^\\u0000-\\u001f\\u007f]*$';

/** An absolute path without control characters, as a JSON schema pattern. */
export const ABSOLUTE_PATH_PATTERN = '^/[^\\u0000-\\u001f\\u007f]*$';

export function hasControlChars(s: string): boolean {
  return CONTROL_CHAR.test(s);
}

/** s without its control characters. */
export function stripControlChars(s: string): string {
  return s.replace(CONTROL_CHARS, '');
}

/** A retention policy's rules (restic's forget rules), as the API and the CLI name them. */
export const RETENTION_FIELDS = ['keep_last', 'keep_hourly', 'keep_daily', 'keep_weekly', 'keep_monthly', 'keep_yearly'] as const;
const C = '\\u0000-\\u001f\\u007f';
/** A path segment other than "." and "..", without control characters (may be empty: "//"). */
const SEGMENT = `(?:|[^./${C}][^/${C}]*|\\.[^./${C}][^/${C}]*|\\.\\.[^/${C}]+)`;
/** A non-empty segment other than "." and "..". */
const NAMED_SEGMENT = `(?:[^./${C}][^/${C}]*|\\.[^./${C}][^/${C}]*|\\.\\.[^/${C}]+)`;

/** An absolute path without control characters nor "." or ".." segments (what an agent backs up, exactly), as a JSON schema pattern. */
export const CLEAN_PATH_PATTERN = `^/${SEGMENT}(?:/${SEGMENT})*$`;

/** An absolute, normalised directory path: no empty, "." or ".." segments, no trailing slash, not "/". */
export const NORMAL_DIR_PATTERN = `^(?:/${NAMED_SEGMENT})+$`;

/** A join code as the server makes them (auth/tokens.ts): wpb_j_ and 43 base64url characters. */
export const JOIN_CODE_PATTERN = '^wpb_j_[A-Za-z0-9_-]{43}$';

/** The password policy's lengths (code points); the server's policy (auth/password-policy.ts) has the rest. */
export const MIN_PASSWORD_LENGTH = 12;
/** Generous for passphrases; the cap only stops megabyte "passwords". */
export const MAX_PASSWORD_LENGTH = 1024;
