import type { Db } from './db/db.ts';
import type { Repos } from './db/repos.ts';
import type { SecretBox } from './db/secrets.ts';
import type { LoginLimiter } from './auth/rate-limit.ts';
import type { JobNotifier } from './job-notifier.ts';
import type { Caps, StreamLimits } from './stream-caps.ts';
import type { MfaService } from './auth/mfa.ts';

// What every route gets: the database and its repositories, the secret box for storage
// credentials, and the server's settings.

export interface ServerConfig {
  /** The URL agents and download links use, e.g. http://backup.example.com:8080. */
  publicUrl: string;
  dataDir: string;
  /** How long an agent's job lease lasts without a report. */
  leaseMs: number;
  /** Longest an agent poll waits for a job. */
  pollWaitMs: number;
  /** How often a waiting poll looks for a job no event announced (job-notifier.ts). */
  pollRecheckMs: number;
  /** Open event streams and long-polls one caller may hold (stream-caps.ts). */
  limits: StreamLimits;
  /** A queued job whose node has been offline or disabled this long fails (reaper.ts). */
  queuedJobTimeoutMs: number;
  /** Bytes a job may upload beyond its site's and node's remaining quota (agent-upload-limits.ts). */
  uploadMarginBytes: number;
  /** Reverse proxies whose X-Forwarded-For is believed (addresses, CIDRs); none when undefined. */
  trustProxy?: string[];
}

export interface ServerContext {
  db: Db;
  repos: Repos;
  secrets: SecretBox;
  config: ServerConfig;
  loginLimiter: LoginLimiter;
  /** Wakes agent polls when a job is queued. */
  jobNotifier: JobNotifier;
  /** Per-process caps on open streams and polls. */
  caps: Caps;
  mfa: MfaService;
}
