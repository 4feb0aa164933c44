import { WpbError } from '../errors.ts';
import type { ApiErrorBody } from '../api/types.ts';
import { ConflictError, NotFoundError } from './db/errors.ts';

// One error type for every route. A handler returns a value or throws one of these; the
// app's error handler turns everything into { error: { code, message } } with a status
// that fits: 4xx for the client's mistakes, 500 only for ours (with no detail leaked).

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const unauthorized = (message = 'Sign in first: send Authorization: Bearer <token>'): ApiError => new ApiError(401, 'unauthorized', message);
export const forbidden = (message = 'You do not have access to this resource'): ApiError => new ApiError(403, 'forbidden', message);
export const notFound = (what: string, id: string): ApiError => new ApiError(404, 'not_found', `${what} ${id} does not exist`);
export const conflict = (message: string, details?: unknown): ApiError => new ApiError(409, 'conflict', message, details);
export const invalid = (message: string, details?: unknown): ApiError => new ApiError(400, 'validation', message, details);

interface FastifyLikeError {
  statusCode?: number;
  code?: string;
  validation?: unknown;
  message: string;
}

/** Maps anything thrown in a route to a status and body; `internal` tells the caller to log it. */
export function toApiError(err: unknown): { status: number; body: ApiErrorBody; internal: boolean } {
  const body = (code: string, message: string, details?: unknown): ApiErrorBody => ({ error: details === undefined ? { code, message } : { code, message, details } });
  if (err instanceof ApiError) return { status: err.status, body: body(err.code, err.message, err.details), internal: false };
  if (err instanceof ConflictError) return { status: 409, body: body(err.reason === 'active_job' ? 'conflict' : err.reason, err.message), internal: false };
  if (err instanceof NotFoundError) return { status: 404, body: body('not_found', err.message), internal: false };
  if (err instanceof WpbError && err.kind === 'bad_input') return { status: 400, body: body('bad_request', err.hint ? `${err.message}. ${err.hint}` : err.message), internal: false };
  const f = err as FastifyLikeError;
  if (f && typeof f === 'object' && f.validation) return { status: 400, body: body('validation', f.message), internal: false };
  if (f && typeof f.statusCode === 'number' && f.statusCode >= 400 && f.statusCode < 500) return { status: f.statusCode, body: body(String(f.code ?? 'bad_request').toLowerCase(), f.message), internal: false };
  return { status: 500, body: body('internal', 'Something went wrong on the server; it was logged'), internal: true };
}
