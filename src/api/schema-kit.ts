import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { CLEAN_PATH_PATTERN, NO_CONTROL_PATTERN, UUID_PATTERN } from './formats.ts';

// The pieces request and response schemas are built of, in TypeBox: each is a JSON schema (what
// the server validates and documents) and a TypeScript type (Static<typeof X>) at once. Written
// the way OpenAPI 3.0 reads them: nullable, and enums of strings, not const unions.

/** T or null (OpenAPI 3.0's nullable; an enum lists null too, as OpenAPI 3.0.3 asks). */
export const Nullable = <T extends TSchema>(t: T) =>
  Type.Unsafe<Static<T> | null>({ ...t, ...(Array.isArray(t.enum) ? { enum: [...(t.enum as unknown[]), null] } : {}), nullable: true });

/** One of these strings (an enum, not anyOf of consts). */
export const StringEnum = <const T extends readonly string[]>(values: T, options: { description?: string } = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });

export const Uuid = Type.String({ pattern: UUID_PATTERN, maxLength: 36 });

/** Path params made only of uuids, e.g. UuidParams('id', 'node_id'). */
export const UuidParams = <const K extends string>(...names: K[]) =>
  Type.Object(Object.fromEntries(names.map((n) => [n, Uuid])) as Record<K, typeof Uuid>, { additionalProperties: false });

/** Routes that take no body still get a schema: nothing, null, or an empty object. */
export const EmptyBody = Nullable(Type.Object({}, { additionalProperties: false, maxProperties: 0 }));

export const NoQuery = Type.Object({}, { additionalProperties: false });

/** Query strings are strings (no type coercion): small whole numbers as digits. */
export const Digits = (max: number) => Type.String({ pattern: `^[0-9]{1,${String(max).length}}$` });

/** Free text a person names something with: stored as given, but no control characters. */
export const Label = (maxLength: number) => Type.String({ minLength: 1, maxLength, pattern: NO_CONTROL_PATTERN });

/** Text without control characters that may be empty (a prefix, a root path). */
export const PlainText = (maxLength: number) => Type.String({ maxLength, pattern: NO_CONTROL_PATTERN });

/** An absolute path on a node, without "." or ".." segments: the agent backs up exactly this directory. */
export const AbsolutePath = Type.String({ minLength: 1, maxLength: 4096, pattern: CLEAN_PATH_PATTERN });

/** A password as given (sign-in, the current one): any length the policy ever allowed. */
export const Password = Type.String({ minLength: 1, maxLength: 1024 });

// ---- response pieces: what the server sends, as the OpenAPI document shows it ----

/** A time as the server writes it: Date#toISOString(). */
export const IsoTime = (description = 'ISO-8601 time (UTC)') => Type.String({ description });

/** A boolean that is always true where it appears (the original system's clients check it). */
export const AlwaysTrue = (description: string) => Type.Unsafe<true>({ type: 'boolean', enum: [true], description });

/** An object of string values under any keys (OpenAPI 3.0 has no patternProperties). */
export const StringMap = (description: string) => Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' }, description });
