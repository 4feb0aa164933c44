import { AuditRepo } from './audit.ts';
import { BackupsRepo } from './backups.ts';
import type { Queryable } from './db.ts';
import { DiscoveredSitesRepo } from './discovered-sites.ts';
import { JobsRepo } from './jobs.ts';
import type { ReportBatchesOptions } from './report-batches.ts';
import { JoinCodesRepo } from './join-codes.ts';
import { LoginThrottleRepo } from './login-throttle.ts';
import { MfaRepo } from './mfa.ts';
import type { NodeKeyReadsOptions } from './node-key-reads.ts';
import { NodesRepo } from './nodes.ts';
import { RetentionRepo } from './retention.ts';
import type { RepoContext } from './rows.ts';
import { SchedulesRepo } from './schedules.ts';
import type { SecretBox } from './secrets.ts';
import { SitesRepo } from './sites.ts';
import { StorageProvidersRepo } from './storage-providers.ts';
import { TokensRepo } from './tokens.ts';
import { UsersRepo } from './users.ts';

// Every repository over one Queryable. Over the Db for plain calls; inside a transaction,
// over its handle, so several repositories' changes commit or roll back together:
//   await db.transaction(async (tx) => { const r = createRepos(tx, opts); ... });

export interface Repos {
  nodes: NodesRepo;
  joinCodes: JoinCodesRepo;
  sites: SitesRepo;
  discoveredSites: DiscoveredSitesRepo;
  jobs: JobsRepo;
  backups: BackupsRepo;
  users: UsersRepo;
  tokens: TokensRepo;
  storageProviders: StorageProvidersRepo;
  audit: AuditRepo;
  loginThrottle: LoginThrottleRepo;
  mfa: MfaRepo;
  retention: RetentionRepo;
  schedules: SchedulesRepo;
  /**
   * Runs fn in one transaction, with repositories over its handle (tx) and the same clock. Without
   * onJobQueued: a wake-up before the commit would find nothing to claim.
   */
  transaction<T>(fn: (repos: Repos, tx: Queryable) => Promise<T>): Promise<T>;
}

export interface RepoOptions {
  secrets: SecretBox;
  /** Epoch milliseconds; Date.now by default. */
  now?: () => number;
  /** See RepoContext.onJobQueued. */
  onJobQueued?: (nodeId: string) => void;
  /** See RepoContext.authChanged. */
  authChanged?: () => void | Promise<void>;
  /** Progress reports written together while others run (PostgreSQL; report-batches.ts): the server's repositories only. */
  batchReports?: ReportBatchesOptions;
  /** Agents' key reads together while others run (PostgreSQL; node-key-reads.ts): the server's repositories only. */
  batchKeyReads?: NodeKeyReadsOptions;
}

/**
 * fn's repositories over the transaction's handle. Their authChanged is told after the commit
 * (or the rollback, which changed nothing but costs only a cache refill): told before, a read
 * between it and the commit would find the old row and keep it as current.
 */
async function inTransaction<T>(db: Queryable, opts: RepoOptions, fn: (repos: Repos, tx: Queryable) => Promise<T>): Promise<T> {
  let changed = false;
  const authChanged = opts.authChanged && ((): void => void (changed = true));
  try {
    return await db.transaction((tx) => fn(createRepos(tx, { secrets: opts.secrets, now: opts.now, authChanged }), tx));
  } finally {
    if (changed) await opts.authChanged?.();
  }
}

export function createRepos(db: Queryable, opts: RepoOptions): Repos {
  const ctx: RepoContext = { db, now: opts.now ?? Date.now, onJobQueued: opts.onJobQueued, authChanged: opts.authChanged };
  return {
    nodes: new NodesRepo(ctx, opts.batchKeyReads),
    joinCodes: new JoinCodesRepo(ctx),
    sites: new SitesRepo(ctx),
    discoveredSites: new DiscoveredSitesRepo(ctx),
    jobs: new JobsRepo(ctx, opts.batchReports),
    backups: new BackupsRepo(ctx),
    users: new UsersRepo(ctx),
    tokens: new TokensRepo(ctx),
    storageProviders: new StorageProvidersRepo(ctx, opts.secrets),
    audit: new AuditRepo(ctx),
    loginThrottle: new LoginThrottleRepo(ctx),
    mfa: new MfaRepo(ctx),
    retention: new RetentionRepo(ctx),
    schedules: new SchedulesRepo(ctx),
    transaction: (fn) => inTransaction(db, opts, fn),
  };
}
