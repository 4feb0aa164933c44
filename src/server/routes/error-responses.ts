// Error statuses for a route's OpenAPI entry: every one has the { error: { code, message } } body.

const DESCRIPTIONS: Record<number, string> = {
  400: 'Malformed request',
  401: 'Not signed in, or wrong credentials',
  403: 'Not allowed for this caller',
  404: 'No such resource',
  409: 'Refused for the state of things',
  422: 'Wrong code',
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

/** Statuses with the usual descriptions, or with a route's own: errorResponses(401, 429), errorResponses({ 404: 'No such node' }). */
export function errorResponses(...statuses: (number | Record<number, string>)[]): Record<number, unknown> {
  const described = statuses.flatMap((s): [string, string][] => (typeof s === 'number' ? [[String(s), DESCRIPTIONS[s] ?? 'Error']] : Object.entries(s)));
  return Object.fromEntries(described.map(([s, description]) => [s, { description, ...ERROR_BODY }]));
}
