import { CLEAN_PATH_PATTERN, NO_CONTROL_PATTERN, UUID_PATTERN } from '../../api/formats.ts';
import { unauthorized } from '../api-error.ts';
import type { Principal } from '../auth/roles.ts';

// JSON schema pieces and small conversions every route file shares: one definition each.

export const uuid = { type: 'string', pattern: UUID_PATTERN, maxLength: 36 } as const;

/** Path params made only of uuids, e.g. uuidParams('id', 'node_id'). */
export function uuidParams(...names: string[]): Record<string, unknown> {
  return { type: 'object', required: names, additionalProperties: false, properties: Object.fromEntries(names.map((n) => [n, uuid])) };
}

/** Routes that take no body still get a schema: nothing, null, or an empty object. */
export const emptyBody = { type: 'object', nullable: true, additionalProperties: false, maxProperties: 0 } as const;

export const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;

/** Query strings are strings (no type coercion): small whole numbers as digits. */
export const digits = (max: number) => ({ type: 'string', pattern: `^[0-9]{1,${String(max).length}}$` }) as const;

/** Free text a person names something with: stored as given, but no control characters. */
export const label = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength, pattern: NO_CONTROL_PATTERN }) as const;

/** Text without control characters that may be empty (a prefix, a root path). */
export const plainText = (maxLength: number) => ({ type: 'string', maxLength, pattern: NO_CONTROL_PATTERN }) as const;

/** An absolute path on a node, without "." or ".." segments: the agent backs up exactly this directory. */
export const absolutePath = { type: 'string', minLength: 1, maxLength: 4096, pattern: CLEAN_PATH_PATTERN } as const;

/** What a client sending a path the pattern refuses is told. */
export const pathMessage = (field: string): string => `${field} must be an absolute path without control characters nor "." or ".." segments`;

export function iso(ms: number): string;
export function iso(ms: number | null): string | null;
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The signed-in user's id (routes with auth 'user' only ever see users). */
export function userId(p: Principal | undefined): string {
  if (p?.kind !== 'user') throw unauthorized();
  return p.userId;
}
