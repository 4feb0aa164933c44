import type { Node, NodeList } from '../../api/admin-types.ts';
import { badInput } from '../../errors.ts';
import type { ServerContext } from '../../server/context.ts';
import type { Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { DATA_DIR_HELP, withServerContext } from '../server-context.ts';
import { str } from '../values.ts';

// `wpbackup nodes join-code|rotate-key|revoke-key`: the CLI twins of POST /api/v1/nodes/join-codes
// and /nodes/{id}/rotate-key|revoke-key, for the first agent before anyone has a token and for an
// operator on the server's machine. Only hashes are stored; a code is printed once, a key never.

const MAX_TTL_MINUTES = 7 * 24 * 60;

/** A node by id or hostname; an unknown or ambiguous name is bad input naming the fix. */
async function findNode(server: ServerContext, ref: string): Promise<{ id: string; hostname: string }> {
  const nodes = await server.repos.nodes.list();
  const byId = nodes.find((n) => n.id === ref);
  if (byId) return byId;
  const named = nodes.filter((n) => n.hostname.toLowerCase() === ref.toLowerCase());
  if (named.length === 1 && named[0]) return named[0];
  if (named.length > 1) throw badInput(`${named.length} nodes are called ${ref}`, `Name the node by its id: ${named.map((n) => n.id).join(', ')}`);
  throw badInput(`No node ${ref}`, 'Give a node id or hostname as GET /api/v1/nodes lists them');
}

export const nodesJoinCode: Command = {
  path: ['nodes', 'join-code'],
  summary: 'Create a one-time code an agent joins with',
  usage: 'nodes join-code [--node NODE] [--ttl MINUTES] [--data-dir DIR]',
  help: `Prints a one-time join code (valid 60 minutes unless --ttl says otherwise). On the web server:
  WPBACKUP_JOIN_CODE=<code> wpbackup agent --server https://your-server
(an environment variable, so the code never shows in ps).

Options:
  --node NODE          a re-join code for this node (id or hostname): the node keeps its id and
                       sites and gets a new key; its old key stops working (after revoke-key)
  --ttl MINUTES        how long the code stays valid (1 to ${MAX_TTL_MINUTES}, default 60)
${DATA_DIR_HELP}`,
  options: { node: { type: 'string' }, ttl: { type: 'string' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    const ttl = Number(str(v.ttl) ?? '60');
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_MINUTES) throw badInput(`--ttl must be a whole number of minutes from 1 to ${MAX_TTL_MINUTES}, not ${str(v.ttl)}`);
    const nodeRef = str(v.node);
    const { createJoinCode } = await import('../../server/node-keys.ts');
    const { code, expires } = await withServerContext(str(v['data-dir']), ctx.env, async (server) => {
      const nodeId = nodeRef === undefined ? undefined : (await findNode(server, nodeRef)).id;
      return createJoinCode(server, { nodeId, ttlMs: ttl * 60_000, actor: { userId: null, via: 'cli' } });
    });
    if (v.json) ctx.stdout.write(JSON.stringify({ code, expires_at: expires.toISOString() }) + '\n');
    else ctx.stdout.write(`${code}\n  valid until ${expires.toISOString()}; on the web server: WPBACKUP_JOIN_CODE=<code> wpbackup agent --server <server url>\n`);
    return EXIT.ok;
  },
};

export const nodesRotateKey: Command = {
  path: ['nodes', 'rotate-key'],
  summary: "Give a node a new key; its agent switches on its next poll",
  usage: 'nodes rotate-key NODE [--data-dir DIR]',
  help: `Asks the node's agent (NODE: id or hostname) to fetch a new key. The agent does so after its next
poll, stores it in agent.json and uses it; the old key stops working then. No restart needed.
For a node you no longer trust, use revoke-key instead.

Options:
${DATA_DIR_HELP}`,
  options: { 'data-dir': { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(v, pos, ctx) {
    const ref = onlyNode(pos);
    const { requestKeyRotation } = await import('../../server/node-keys.ts');
    const node = await withServerContext(str(v['data-dir']), ctx.env, async (server) => requestKeyRotation(server, (await findNode(server, ref)).id, { userId: null, via: 'cli' }));
    if (v.json) ctx.stdout.write(JSON.stringify({ node_id: node.id, key_rotation_requested: true }) + '\n');
    else ctx.stdout.write(`Key rotation asked for ${node.hostname} (${node.id}); its agent switches keys after its next poll.\n`);
    return EXIT.ok;
  },
};

export const nodesRevokeKey: Command = {
  path: ['nodes', 'revoke-key'],
  summary: "Revoke a node's key at once (a compromised server)",
  usage: 'nodes revoke-key NODE [--data-dir DIR]',
  help: `Revokes the key of NODE (id or hostname) at once: its agent's calls get 401, a backup it is
running fails and its upload is aborted. The node keeps its sites; bring it back with
  wpbackup nodes join-code --node NODE

Options:
${DATA_DIR_HELP}`,
  options: { 'data-dir': { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(v, pos, ctx) {
    const ref = onlyNode(pos);
    const { revokeNodeKey } = await import('../../server/node-keys.ts');
    const { node, jobsFailed } = await withServerContext(str(v['data-dir']), ctx.env, async (server) => revokeNodeKey(server, (await findNode(server, ref)).id, { userId: null, via: 'cli' }));
    if (v.json) ctx.stdout.write(JSON.stringify({ node_id: node.id, revoked: true, jobs_failed: jobsFailed }) + '\n');
    else ctx.stdout.write(`Key of ${node.hostname} (${node.id}) revoked; ${jobsFailed} running job(s) failed. Re-join: wpbackup nodes join-code --node ${node.id}\n`);
    return EXIT.ok;
  },
};

function onlyNode(pos: string[]): string {
  if (pos.length !== 1 || !pos[0]) throw badInput('Name one node (its id or hostname)', 'e.g. wpbackup nodes rotate-key web1.example.com');
  return pos[0];
}

export const nodesSetLimit: Command = {
  path: ['nodes', 'set-limit'],
  summary: 'Set how many backups a node runs at once',
  usage: 'nodes set-limit NODE N [--json]',
  help: `NODE is a node id or hostname; N is 1 to 64 (default 1). The server hands the node's agent no
more backups than that at once, and the agent runs up to that many side by side (it learns the
limit from its next poll). Over the API: uses WPBACKUP_URL and WPBACKUP_TOKEN (super_admin, or
the node's node_admin). Exit codes: 0 done, 1 failed, 2 bad input or refused.`,
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  async run(v, pos, ctx) {
    const [ref, limitText] = pos;
    if (pos.length !== 2 || !ref || !limitText) throw badInput('Name one node and a limit', 'e.g. wpbackup nodes set-limit web1.example.com 2');
    const limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit < 1 || limit > 64) throw badInput(`The limit must be a whole number from 1 to 64, not ${limitText}`);
    const { apiClient } = await import('../api-client.ts');
    const api = apiClient(ctx.env);
    const nodes = (await api.json<NodeList>('GET', '/api/v1/nodes')).nodes;
    const matches = nodes.filter((n) => n.id === ref || n.hostname.toLowerCase() === ref.toLowerCase());
    if (matches.length !== 1 || !matches[0]) throw badInput(matches.length ? `${matches.length} nodes are called ${ref}` : `No node ${ref} that you may see`, 'Give a node id as GET /api/v1/nodes lists them');
    const node = await api.json<Node>('PATCH', `/api/v1/nodes/${matches[0].id}`, { job_limit: limit });
    if (v.json) ctx.stdout.write(JSON.stringify({ node_id: node.id, job_limit: node.job_limit }) + '\n');
    else ctx.stdout.write(`${node.hostname} (${node.id}) now runs up to ${node.job_limit} backup(s) at once.\n`);
    return EXIT.ok;
  },
};
