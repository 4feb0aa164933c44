import { chmodSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { dirname, join } from 'node:path';
import { ensureDataDir, writeJsonAtomic } from '../datadir.ts';
import { badInput } from '../errors.ts';
import { joinServer, normalizeServerUrl, type ClientOptions } from './client.ts';

// Who this agent is to its server: { server, node_id, node_key } in <data dir>/agent.json,
// mode 0600. Made once by joining with a one-time code; later runs only read it. The key is
// never printed, logged or passed on a command line.

export interface AgentIdentity {
  server: string;
  node_id: string;
  node_key: string;
}

export const IDENTITY_FILE = 'agent.json';
const NODE_KEY = /^wpb_n_[A-Za-z0-9_-]{43}$/;
const JOIN_CODE = /^wpb_j_[A-Za-z0-9_-]{43}$/;

export function identityPath(dataDir: string): string {
  return join(dataDir, IDENTITY_FILE);
}

/** The stored identity, or undefined before the first join. A file others can read is tightened to 0600. */
export function loadIdentity(dataDir: string): AgentIdentity | undefined {
  const file = identityPath(dataDir);
  let text: string;
  try {
    const st = statSync(file);
    if ((st.mode & 0o077) !== 0) chmodSync(file, 0o600);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw badInput(`Cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'Run the agent as the user that owns the data dir');
  }
  let id: Partial<AgentIdentity>;
  try {
    id = JSON.parse(text) as Partial<AgentIdentity>;
  } catch {
    throw badInput(`${file} is not valid JSON`, 'Remove it and join again with a new join code');
  }
  if (typeof id.server !== 'string' || typeof id.node_id !== 'string' || typeof id.node_key !== 'string' || !NODE_KEY.test(id.node_key)) {
    throw badInput(`${file} lacks server, node_id or a valid node_key`, 'Remove it and join again with a new join code');
  }
  return { server: id.server, node_id: id.node_id, node_key: id.node_key };
}

export function saveIdentity(dataDir: string, id: AgentIdentity): void {
  ensureDataDir(dataDir);
  writeJsonAtomic(identityPath(dataDir), id, 0o600);
}

/**
 * Stores a rotated node key so that a crash at any point leaves either the old identity or the new one:
 * a temp file (0600) written and fsynced, renamed over agent.json, and the directory fsynced.
 */
export function replaceNodeKey(dataDir: string, nodeKey: string): AgentIdentity {
  if (!NODE_KEY.test(nodeKey)) throw badInput('The new node key is not valid', 'Keep the current key; the server hands out another on the next poll');
  const current = loadIdentity(dataDir);
  if (!current) throw badInput(`No ${identityPath(dataDir)} to store the new key in`, 'Join again with a new join code');
  const next: AgentIdentity = { ...current, node_key: nodeKey };
  const file = identityPath(dataDir);
  const tmp = `${file}.${process.pid}.rotate.tmp`;
  try {
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(next, null, 2) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const dir = openSync(dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
  return next;
}

export function checkJoinCode(code: string): string {
  const c = code.trim();
  if (!JOIN_CODE.test(c)) throw badInput('The join code is not valid (it starts with wpb_j_)', 'Copy it again from the server: join codes are shown once');
  return c;
}

export interface EnsureIdentityOptions {
  dataDir: string;
  /** Required for the first join; otherwise it must match the stored server (or is taken from the file). */
  server?: string;
  joinCode?: string;
  hostname?: string;
  client?: ClientOptions;
}

/** The stored identity, or a new one from joining with the code. */
export async function ensureIdentity(o: EnsureIdentityOptions): Promise<{ identity: AgentIdentity; joined: boolean }> {
  const stored = loadIdentity(o.dataDir);
  const server = o.server === undefined ? undefined : normalizeServerUrl(o.server);
  if (stored && (server === undefined || server === stored.server) && o.joinCode === undefined) return { identity: stored, joined: false };
  if (stored && o.joinCode === undefined) {
    throw badInput(`This agent belongs to ${stored.server}, not ${server}`, `Give a new join code to move it, or remove ${identityPath(o.dataDir)}`);
  }
  const target = server ?? stored?.server;
  if (!target) throw badInput('This agent has not joined a server yet', 'Pass --server URL and a join code (WPBACKUP_JOIN_CODE or --join-code -, read from stdin)');
  if (o.joinCode === undefined) throw badInput(`This agent has not joined ${target} yet`, 'Give it a join code: WPBACKUP_JOIN_CODE=... or --join-code - (read from stdin)');
  const code = checkJoinCode(o.joinCode);
  const res = await joinServer(target, { code, hostname: o.hostname ?? osHostname() }, o.client);
  const identity: AgentIdentity = { server: target, node_id: res.node_id, node_key: res.node_key };
  saveIdentity(o.dataDir, identity);
  return { identity, joined: true };
}
