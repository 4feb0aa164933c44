import { createHash, randomBytes } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import { silentLogger, type Logger } from '../log.ts';
import { runAgent } from './agent.ts';
import { AgentClient, joinServer } from './client.ts';
import { loadIdentity, saveIdentity } from './identity.ts';

// An agent inside the server process (`wpbackup server` on a single machine). It talks to the
// server over HTTP like any other agent, and joins itself with a join code it makes through
// the join-code repository the server passes in. Only that object crosses over, as a plain
// structural type: nothing here imports server code.

/** What the embedded agent needs of the server's join-code repository (repos.joinCodes fits). */
export interface JoinCodeCreator {
  create(c: { codeHash: string; expiresAt: number; createdBy?: string | null }): Promise<unknown>;
}

export interface EmbeddedAgentOptions {
  /** The server's own URL, e.g. RunningServer.url. */
  serverUrl: string;
  /** The agent's data dir (identity and temp dirs), e.g. <server data dir>/agent. */
  dataDir: string;
  joinCodes: JoinCodeCreator;
  /** Stops the agent; a running backup is stopped and cleaned up. */
  signal: AbortSignal;
  hostname?: string;
  logger?: Logger;
  /** Where to look for WordPress sites to offer for adoption (none: no scan). */
  scanRoots?: string[];
}

export interface EmbeddedAgent {
  nodeId: string;
  /** Settles when the agent loop has ended (after signal aborts). */
  done: Promise<void>;
}

/** Same format as the server's join codes: wpb_j_ and 32 random bytes; only the sha256 is stored. */
function newJoinCode(): { code: string; hash: string } {
  const code = `wpb_j_${randomBytes(32).toString('base64url')}`;
  return { code, hash: createHash('sha256').update(code, 'utf8').digest('hex') };
}

export async function startEmbeddedAgent(o: EmbeddedAgentOptions): Promise<EmbeddedAgent> {
  let identity = loadIdentity(o.dataDir);
  const server = new URL(o.serverUrl).href.replace(/\/+$/, '');
  // The server's URL may change between runs (port 0, another --public-url); the node stays.
  if (identity && identity.server !== server) {
    identity = { ...identity, server };
    saveIdentity(o.dataDir, identity);
  }
  if (!identity) {
    const { code, hash } = newJoinCode();
    await o.joinCodes.create({ codeHash: hash, expiresAt: Date.now() + 5 * 60_000, createdBy: null });
    const res = await joinServer(server, { code, hostname: o.hostname ?? osHostname() });
    identity = { server, node_id: res.node_id, node_key: res.node_key };
    saveIdentity(o.dataDir, identity);
  }
  const client = new AgentClient(server, identity.node_key);
  const log = o.logger ?? silentLogger();
  const done = runAgent({ client, dataDir: o.dataDir, signal: o.signal, logger: log, scanRoots: o.scanRoots }).catch((err: unknown) => log.error({ err }, 'embedded agent stopped'));
  return { nodeId: identity.node_id, done };
}
