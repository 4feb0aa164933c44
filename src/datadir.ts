import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

// The data dir holds this machine's identity (node uuid), a stable uuid per site, and the
// per-run temp dirs. It is private to the user running wpbackup (0700).

export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return flag;
  if (env.WPBACKUP_DATA_DIR) return env.WPBACKUP_DATA_DIR;
  if (process.getuid?.() === 0) return '/var/lib/wpbackup';
  return join(env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'wpbackup');
}

export function ensureDataDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function readJson<T>(file: string, fallback: T): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw new Error(`${file} is unreadable or not JSON; fix or remove it`, { cause: err });
  }
}

/** Writes through a temp file and a rename, so a crash never leaves half a file. */
export function writeJsonAtomic(file: string, value: unknown, mode = 0o600): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode });
  renameSync(tmp, file);
}

export function nodeUuid(dataDir: string): string {
  ensureDataDir(dataDir);
  const file = join(dataDir, 'node.json');
  const node = readJson<{ uuid?: string }>(file, {});
  if (node.uuid) return node.uuid;
  const uuid = randomUUID();
  writeJsonAtomic(file, { uuid });
  return uuid;
}

/** A uuid that stays the same for a site path across runs. */
export function siteUuid(dataDir: string, sitePath: string): string {
  ensureDataDir(dataDir);
  const file = join(dataDir, 'sites.json');
  const sites = readJson<Record<string, string>>(file, {});
  const known = sites[sitePath];
  if (known) return known;
  const uuid = randomUUID();
  writeJsonAtomic(file, { ...sites, [sitePath]: uuid });
  return uuid;
}
