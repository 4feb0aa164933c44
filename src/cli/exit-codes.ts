import type { ErrorKind } from '../errors.ts';

// Every exit code wpbackup uses, in one place (README documents the same table).

export const EXIT = {
  ok: 0,
  failed: 1,
  badInput: 2,
  /** The backup finished, but some files could not be read and were left out. */
  okWithWarnings: 3,
  /** Stopped on request (SIGINT/SIGTERM), after cleaning up; 128 + SIGINT like shells. */
  stopped: 130,
} as const;

export function exitCodeFor(kind: ErrorKind): number {
  switch (kind) {
    case 'bad_input':
      return EXIT.badInput;
    case 'stopped':
      return EXIT.stopped;
    case 'failed':
      return EXIT.failed;
  }
}
