import type { JoinResponse } from '../api/types.ts';
import { conflict, notFound } from './api-error.ts';
import { expiryFor, generateToken, hashToken } from './auth/tokens.ts';
import type { ServerContext } from './context.ts';
import type { NodeRow } from './db/nodes.ts';
import { reapExpiredJobs } from './reaper.ts';

// A node key's life after joining, shared by the API and the CLI:
// - rotation: an admin asks; the agent sees KEY_ROTATION_HEADER on its next poll reply and fetches a
//   new key once with its current one (POST /api/v1/agent/rotate-key). Only the new key's hash is
//   stored, as pending; the old key keeps working until the new one is first used, so an agent that
//   crashes mid-handover (reply lost, file not written) just fetches again. From then on the old key
//   gets 401. A stolen key could fetch the new key first: that is what revocation is for.
// - revocation: the key (and any pending one) stops working at once, the node's leased jobs fail
//   (the reaper aborts their uploads), and the node comes back only with a re-join code bound to it,
//   which keeps its id, sites and history.


export interface Actor {
  userId: string | null;
  via?: 'cli';
}

async function keyedNode(ctx: ServerContext, nodeId: string): Promise<NodeRow> {
  const node = await ctx.repos.nodes.get(nodeId);
  if (!node) throw notFound('Node', nodeId);
  if (!node.hasKey) throw conflict(`Node ${node.hostname} has no key (never joined, or its key was revoked); give it a re-join code instead`);
  return node;
}

export async function requestKeyRotation(ctx: ServerContext, nodeId: string, actor: Actor): Promise<NodeRow> {
  const node = await keyedNode(ctx, nodeId);
  if (!(await ctx.repos.nodes.requestKeyRotation(node.id))) throw notFound('Node', nodeId);
  await ctx.repos.audit.record({ userId: actor.userId, action: 'node.key.rotate', targetType: 'node', targetId: node.id, detail: { hostname: node.hostname, ...(actor.via ? { via: actor.via } : {}) } });
  return (await ctx.repos.nodes.get(node.id)) ?? node;
}

export async function revokeNodeKey(ctx: ServerContext, nodeId: string, actor: Actor): Promise<{ node: NodeRow; jobsFailed: number }> {
  const node = await keyedNode(ctx, nodeId);
  if (!(await ctx.repos.nodes.revokeKey(node.id))) throw notFound('Node', nodeId);
  // The node's leases ended now: fail its jobs and abort their uploads without waiting for the timer.
  const expired = await reapExpiredJobs(ctx);
  const jobsFailed = expired.filter((j) => j.claimedBy === node.id).length;
  await ctx.repos.audit.record({ userId: actor.userId, action: 'node.key.revoke', targetType: 'node', targetId: node.id, detail: { hostname: node.hostname, jobs_failed: jobsFailed, ...(actor.via ? { via: actor.via } : {}) } });
  return { node: (await ctx.repos.nodes.get(node.id)) ?? node, jobsFailed };
}

/** The agent's one-time fetch of its next key; 409 when no rotation was asked for. */
export async function handOverKey(ctx: ServerContext, nodeId: string): Promise<string> {
  const key = generateToken('node');
  if (!(await ctx.repos.nodes.issuePendingKey(nodeId, hashToken(key)))) throw conflict('No key rotation was asked for this node; keep using the current key');
  await ctx.repos.audit.record({ nodeId, action: 'node.key.handover', targetType: 'node', targetId: nodeId });
  return key;
}

/** A join code; with nodeId, a re-join code that gives that node a new key. Printed once, stored hashed. */
export async function createJoinCode(ctx: ServerContext, o: { nodeId?: string; ttlMs?: number; actor: Actor }): Promise<{ code: string; expires: Date }> {
  if (o.nodeId !== undefined && !(await ctx.repos.nodes.get(o.nodeId))) throw notFound('Node', o.nodeId);
  const code = generateToken('join');
  const expires = expiryFor('join', new Date(), o.ttlMs) as Date;
  await ctx.repos.joinCodes.create({ codeHash: hashToken(code), expiresAt: expires.getTime(), createdBy: o.actor.userId, nodeId: o.nodeId });
  const detail = { expires_at: expires.toISOString(), ...(o.nodeId ? { node_id: o.nodeId } : {}), ...(o.actor.via ? { via: o.actor.via } : {}) };
  await ctx.repos.audit.record({ userId: o.actor.userId, action: 'node.join_code.create', targetType: o.nodeId ? 'node' : 'join_code', targetId: o.nodeId, detail });
  return { code, expires };
}

/**
 * POST /api/v1/agent/join with a re-join code: the bound node gets a new key (its old and pending keys
 * stop working). undefined when the code is not a usable re-join code; the join route goes on as for a new node.
 */
export async function rejoinNode(ctx: ServerContext, code: string): Promise<JoinResponse | undefined> {
  const nodeKey = generateToken('node');
  return ctx.repos.transaction(async (repos) => {
    const used = await repos.joinCodes.consumeRejoin(hashToken(code));
    if (!used?.nodeId || !(await repos.nodes.setKeyHash(used.nodeId, hashToken(nodeKey)))) return undefined;
    await repos.audit.record({ userId: used.createdBy, nodeId: used.nodeId, action: 'node.rejoin', targetType: 'node', targetId: used.nodeId });
    return { node_id: used.nodeId, node_key: nodeKey };
  });
}
