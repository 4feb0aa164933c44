import type { TSchema } from '@sinclair/typebox';
import { ApiErrorBody, ApiErrorBodyWithDetail } from '../../api/types.ts';

// A route's statuses for its OpenAPI entry (and Fastify's schema.response): each success with
// the schema of its body (src/api), each error with the { error: { code, message } } body.

const DESCRIPTIONS: Record<number, string> = {
  400: 'Malformed request',
  401: 'Not signed in, or wrong credentials',
  403: 'Not allowed for this caller',
  404: 'No such resource',
  409: 'Refused for the state of things',
  422: 'Wrong code',
  413: 'Request body too large',
  415: 'Body is not JSON (send Content-Type: application/json)',
  429: 'Too many failed attempts; Retry-After says when to try again',
};

type Statuses = (number | Record<number, string>)[];

function described(statuses: Statuses): [string, string][] {
  return statuses.flatMap((s): [string, string][] => (typeof s === 'number' ? [[String(s), DESCRIPTIONS[s] ?? 'Error']] : Object.entries(s)));
}

/** Statuses with the usual descriptions, or with a route's own: errorResponses(401, 429), errorResponses({ 404: 'No such node' }). */
export function errorResponses(...statuses: Statuses): Record<number, unknown> {
  return Object.fromEntries(described(statuses).map(([s, description]) => [s, { ...ApiErrorBody, description }]));
}

/** errorResponses for a route defined with errorDetail (the original system's clients read .detail): the bodies carry detail too. */
export function errorResponsesWithDetail(...statuses: Statuses): Record<number, unknown> {
  return Object.fromEntries(described(statuses).map(([s, description]) => [s, { ...ApiErrorBodyWithDetail, description }]));
}

/** A JSON success body: its schema (from src/api) under its status, with what it means. */
export function success(status: number, description: string, schema: TSchema): Record<number, unknown> {
  return { [status]: { ...schema, description } };
}

/** 200 with a JSON body. */
export function ok(schema: TSchema, description = 'Success'): Record<number, unknown> {
  return success(200, description, schema);
}

/** A success whose body is not JSON: its media type and schema (OpenAPI's content). */
export function successAs(status: number, description: string, mediaType: string, schema: Record<string, unknown>): Record<number, unknown> {
  return { [status]: { description, content: { [mediaType]: { schema } } } };
}

/** 204: done, no body. */
export function noContent(description = 'Done (no body)'): Record<number, unknown> {
  return { 204: { description, type: 'null' } };
}
