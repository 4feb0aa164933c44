import { Hub, type HubLog, type Listener } from '../hub.ts';

// Deletions that failed (the prune after a backup, an on-demand prune, or a retry), told to
// whoever reacts in this process: the "prune failed" alert subscribes here
// (ctx.pruneFailed.subscribe). Each is also in the audit log (backup.delete_failed) and on the
// row (status 'deleting', delete_error, delete_after). Listeners never stop the caller.

export interface PruneFailure {
  backupId: string;
  siteId: string;
  storageId: string;
  key: string;
  error: string;
  /** Tries so far, this one included. */
  attempts: number;
  /** Epoch ms of the next try. */
  retryAt: number;
}

export type PruneFailedListener = Listener<PruneFailure>;

export class PruneFailedHub extends Hub<PruneFailure> {
  constructor(log?: HubLog) {
    super('prune-failed', (f) => `backup ${f.backupId}`, log);
  }
}
