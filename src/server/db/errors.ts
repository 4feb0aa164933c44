import { WpbError, failure } from '../../errors.ts';

// What the data layer reports to the HTTP layer. Both markers are bad_input (the caller can
// fix it) and carry the HTTP status they stand for, so the API maps them in one place.

export type ConflictReason =
  | 'duplicate' // a unique key already exists (email, node key, site path)
  | 'reference' // a row that must exist is missing, or the row is still referenced
  | 'active_job'; // the site already has a queued or running job of that type

export class ConflictError extends WpbError {
  readonly status = 409;
  readonly reason: ConflictReason;

  constructor(reason: ConflictReason, message: string, cause?: unknown) {
    super('bad_input', message, { cause });
    this.name = 'ConflictError';
    this.reason = reason;
  }
}

export class NotFoundError extends WpbError {
  readonly status = 404;

  constructor(what: string, id: string) {
    super('bad_input', `${what} ${id} does not exist`);
    this.name = 'NotFoundError';
  }
}

export function isConflict(err: unknown, reason?: ConflictReason): err is ConflictError {
  return err instanceof ConflictError && (reason === undefined || err.reason === reason);
}

/** A constraint violation named by the driver, in the words both databases share. */
export type Violation = 'unique' | 'foreign_key' | 'check' | 'not_null';

/**
 * Unique and foreign-key violations become conflicts; a check or NOT NULL violation means
 * the caller passed a value the API should have refused, so it is a failure with the detail.
 */
export function violationError(kind: Violation | undefined, detail: string, cause: unknown): Error {
  if (kind === 'unique') return new ConflictError('duplicate', `Already exists (${detail})`, cause);
  if (kind === 'foreign_key') return new ConflictError('reference', `Refers to a missing row, or is still referenced (${detail})`, cause);
  if (kind) return failure(`Database refused a value (${detail})`, cause);
  return cause instanceof Error ? cause : failure(String(cause));
}
