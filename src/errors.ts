// Error kinds shared by the engine, the CLI and (later) the API. The CLI maps kinds to exit
// codes in one place (src/cli/exit-codes.ts); the API maps them to HTTP statuses.

export type ErrorKind =
  | 'bad_input' // the user can fix it: wrong path, password, bucket, flag
  | 'failed' // something broke that is not the user's input
  | 'stopped'; // a stop was asked for (signal, abort)

export interface ErrorOptions {
  cause?: unknown;
  /** What the user can do about it, printed after the message. */
  hint?: string;
  /** The stage the error happened in, when known. */
  stage?: string;
}

export class WpbError extends Error {
  readonly kind: ErrorKind;
  readonly hint: string | undefined;
  stage: string | undefined;

  constructor(kind: ErrorKind, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'WpbError';
    this.kind = kind;
    this.hint = opts.hint;
    this.stage = opts.stage;
  }
}

export function badInput(message: string, hint?: string, cause?: unknown): WpbError {
  return new WpbError('bad_input', message, { hint, cause });
}

export function failure(message: string, cause?: unknown, hint?: string): WpbError {
  return new WpbError('failed', message, { hint, cause });
}

export function stopped(message = 'Stopped on request'): WpbError {
  return new WpbError('stopped', message);
}

/** The kind of any thrown value: our own errors keep theirs, an AbortError is a stop, the rest failures. */
export function kindOf(err: unknown): ErrorKind {
  if (err instanceof WpbError) return err.kind;
  if (err instanceof Error && err.name === 'AbortError') return 'stopped';
  return 'failed';
}

/** One line for users: message plus hint, never a stack trace. */
export function describe(err: unknown): string {
  if (err instanceof WpbError) return err.hint ? `${err.message}. ${err.hint}` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Throws the signal's stop error if the signal is aborted. */
export function throwIfStopped(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw stopped();
}
