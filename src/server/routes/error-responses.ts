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

export function errorResponses(...statuses: number[]): Record<number, unknown> {
  return Object.fromEntries(statuses.map((s) => [s, { description: DESCRIPTIONS[s] ?? 'Error', ...ERROR_BODY }]));
}
