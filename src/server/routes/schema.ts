import { AbsolutePath, Digits, EmptyBody, Label, NoQuery, PlainText, Uuid, UuidParams } from '../../api/schema-kit.ts';
import { unauthorized } from '../api-error.ts';
import type { Principal } from '../auth/roles.ts';

// Schema pieces (TypeBox, from src/api/schema-kit.ts, under the names route files use) and small
// conversions every route file shares: one definition each.

export const uuid = Uuid;
export const uuidParams = UuidParams;
export const emptyBody = EmptyBody;
export const noQuery = NoQuery;
export const digits = Digits;
export const label = Label;
export const plainText = PlainText;
export const absolutePath = AbsolutePath;

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
