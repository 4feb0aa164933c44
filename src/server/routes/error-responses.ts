// Statuses for a route's OpenAPI entry: every error has the { error: { code, message } } body.

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

const ERROR_BODY = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      additionalProperties: true,
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

/** On the routes the original system's scripts call, the message is also a top-level detail (route option errorDetail). */
const ERROR_BODY_WITH_DETAIL = {
  type: 'object',
  properties: { ...ERROR_BODY.properties, detail: { type: 'string', description: 'error.message again, for the original system\'s clients' } },
} as const;

type Statuses = (number | Record<number, string>)[];

function described(statuses: Statuses): [string, string][] {
  return statuses.flatMap((s): [string, string][] => (typeof s === 'number' ? [[String(s), DESCRIPTIONS[s] ?? 'Error']] : Object.entries(s)));
}

/** Statuses with the usual descriptions, or with a route's own: errorResponses(401, 429), errorResponses({ 404: 'No such node' }). */
export function errorResponses(...statuses: Statuses): Record<number, unknown> {
  return Object.fromEntries(described(statuses).map(([s, description]) => [s, { description, ...ERROR_BODY }]));
}

/** errorResponses for a route defined with errorDetail: the bodies carry detail too. */
export function errorResponsesWithDetail(...statuses: Statuses): Record<number, unknown> {
  return Object.fromEntries(described(statuses).map(([s, description]) => [s, { description, ...ERROR_BODY_WITH_DETAIL }]));
}

/**
 * A success body for the document: the fields named here, and the rest of the body as the
 * route's type says (additionalProperties, so the serializer drops nothing).
 */
export function bodyResponse(description: string, properties: Record<string, unknown>): Record<string, unknown> {
  return { description, type: 'object', additionalProperties: true, properties };
}

/** A success other than 200 (201, 202), with a body as the route's type says. */
export function success(status: number, description: string): Record<number, unknown> {
  return { [status]: { description } };
}

/** 204: done, no body. */
export function noContent(description = 'Done (no body)'): Record<number, unknown> {
  return { 204: { description, type: 'null' } };
}
