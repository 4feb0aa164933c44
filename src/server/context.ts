import type { Db } from './db/db.ts';
import type { Repos } from './db/repos.ts';
import type { SecretBox } from './db/secrets.ts';
import type { LoginLimiter } from './auth/rate-limit.ts';
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
  /** Reverse proxies whose X-Forwarded-For is believed (addresses, CIDRs); none when undefined. */
  trustProxy?: string[];
}

export interface ServerContext {
  db: Db;
  repos: Repos;
  secrets: SecretBox;
  config: ServerConfig;
  loginLimiter: LoginLimiter;
  mfa: MfaService;
}
