import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { ensureDataDir } from '../datadir.ts';
import { badInput } from '../errors.ts';
import { createSecretFile, readSecretFile } from '../secret-file.ts';

// The bearer token of GET /metrics: not a user's session or API token (a scraper is no user,
// and a user's token would let the scraper act as that user), and not a node key. Given by
// the operator in WPBACKUP_METRICS_TOKEN (the same on every server behind one database), or
// generated at first start into <data dir>/metrics.token, mode 0600, which the operator copies
// into the scraper's configuration (Prometheus: authorization.credentials_file).

export const METRICS_TOKEN_FILE = 'metrics.token';
export const METRICS_TOKEN_ENV = 'WPBACKUP_METRICS_TOKEN';
const MIN_LENGTH = 32;

export function metricsTokenPath(dataDir: string): string {
  return join(dataDir, METRICS_TOKEN_FILE);
}

export function loadMetricsToken(dataDir: string, env: NodeJS.ProcessEnv): string {
  const given = env[METRICS_TOKEN_ENV]?.trim();
  if (given !== undefined && given !== '') return checked(given, METRICS_TOKEN_ENV);
  const file = metricsTokenPath(ensureDataDir(dataDir));
  return readTokenFile(file) ?? createTokenFile(file);
}

function checked(token: string, source: string): string {
  if (token.length < MIN_LENGTH || !/^[\x21-\x7e]+$/.test(token)) {
    throw badInput(`${source} must be at least ${MIN_LENGTH} printable characters without spaces`, 'Make one with: openssl rand -base64 32');
  }
  return token;
}

/** Whether an Authorization header carries the token; compared by hash, in constant time. */
export function carriesToken(header: string | undefined, token: string): boolean {
  const m = /^Bearer +(\S+)$/i.exec(header?.trim() ?? '');
  if (!m?.[1] || m[1].length > 512) return false;
  const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(m[1]), digest(token));
}

function readTokenFile(file: string): string | undefined {
  const text = readSecretFile(file, 'metrics token');
  return text === undefined ? undefined : checked(text.trim(), file);
}

function createTokenFile(file: string): string {
  return checked(createSecretFile(file, 'metrics token', `wpb_m_${randomBytes(32).toString('base64url')}\n`).trim(), file);
}
