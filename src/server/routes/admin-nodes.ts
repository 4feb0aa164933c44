import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { JoinCodeRequest, JoinCodeResponse, Node, NodeList, UpdateNodeRequest } from '../../api/admin-types.ts';
import { authorize, nodeChangeRefusal } from '../auth/roles.ts';
import { forbidden, notFound, unauthorized } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import { disabledInfo, recordStatusChange } from '../db/node-status.ts';
import type { NodeRow } from '../db/nodes.ts';
import { createJoinCode } from '../node-keys.ts';
import { defineRoute, must, replied } from '../route.ts';
import { idParams, iso, userId } from './admin-common.ts';
import { errorResponses, noContent, ok, success } from './error-responses.ts';

// Nodes (web servers running an agent): listed as far as the caller may see them, edited by
// super_admin or the node's node_admin, within nodeChangeRefusal's limits (roles.ts). Join codes make new nodes, so only super_admin gets them.
// A node's key hash never leaves the database; has_key says whether it has enrolled.

const NodeParams = idParams('id');
type IdP = Static<typeof NodeParams>;


export function nodeBody(n: NodeRow): Node {
  return {
    id: n.id, hostname: n.hostname, status: n.status, last_seen: iso(n.lastSeen), quota_bytes: n.quotaBytes, has_key: n.hasKey,
    key_rotation_requested_at: iso(n.keyRotationAt), job_limit: n.jobLimit, created_at: iso(n.createdAt),
  };
}

async function loadNode(ctx: ServerContext, id: string): Promise<NodeRow> {
  const n = await ctx.repos.nodes.get(id);
  if (!n) throw notFound('Node', id);
  return n;
}

export function registerNodeRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const tags = ['nodes'];

  defineRoute<unknown, Record<string, string>, Record<string, string>, NodeList>(app, ctx, {
    method: 'GET',
    url: '/api/v1/nodes',
    auth: 'user',
    summary: 'The nodes you may see',
    tags,
    schema: { response: ok(NodeList, 'The nodes') },
    handler: async ({ principal }) => {
      if (!principal) throw unauthorized();
      // Each node is checked the way GET /nodes/{id} checks it, so the list never shows more than that would.
      return { nodes: (await ctx.repos.nodes.list()).filter((n) => authorize(principal, 'node.read', { nodeId: n.id }) === 'allow').map(nodeBody) };
    },
  });

  defineRoute<unknown, IdP, Record<string, string>, Node>(app, ctx, {
    method: 'GET',
    url: '/api/v1/nodes/:id',
    auth: 'user',
    summary: 'One node',
    tags,
    schema: { params: NodeParams, response: { ...ok(Node, 'The node'), ...errorResponses({ 404: 'No such node' }) } },
    handler: async ({ params, principal }) => {
      const node = await loadNode(ctx, params.id);
      must(principal, 'node.read', { nodeId: node.id });
      return nodeBody(node);
    },
  });

  defineRoute<UpdateNodeRequest, IdP, Record<string, string>, Node>(app, ctx, {
    method: 'PATCH',
    url: '/api/v1/nodes/:id',
    auth: 'user',
    summary: "Change a node's hostname, status (active/disabled), quota or job_limit (backups at once); a node_admin may not enable a node a super_admin disabled, nor raise or remove its quota (403)",
    tags,
    schema: {
      params: NodeParams,
      body: UpdateNodeRequest,
      response: { ...ok(Node, 'The node as changed'), ...errorResponses({ 403: 'Not allowed for this caller, or a change a node_admin may not make' }, { 404: 'No such node' }) },
    },
    handler: async ({ body, params, principal }) => {
      const node = await loadNode(ctx, params.id);
      const p = must(principal, 'node.write', { nodeId: node.id });
      const { disabledByRole } = await disabledInfo(ctx.db, node.id);
      const refusal = nodeChangeRefusal(p, { ...node, disabledByRole }, body);
      if (refusal) throw forbidden(refusal);
      const updated = await ctx.repos.transaction(async (repos, tx) => {
        const row = await repos.nodes.update(node.id, { hostname: body.hostname, status: body.status, quotaBytes: body.quota_bytes, jobLimit: body.job_limit });
        if (row && body.status !== undefined && body.status !== node.status) await recordStatusChange(tx, node.id, body.status, p.kind === 'user' ? p.role : 'node', ctx.now());
        return row;
      });
      if (!updated) throw notFound('Node', node.id);
      await ctx.repos.audit.record({ userId: userId(p), action: 'node.update', targetType: 'node', targetId: node.id, detail: { ...body } });
      return nodeBody(updated);
    },
  });

  defineRoute<unknown, IdP>(app, ctx, {
    method: 'DELETE',
    url: '/api/v1/nodes/:id',
    auth: 'user',
    summary: 'Remove a node (refused with 409 while it still has sites)',
    tags,
    schema: { params: NodeParams, response: { ...noContent('Removed'), ...errorResponses({ 404: 'No such node' }, { 409: 'The node still has sites' }) } },
    handler: async ({ params, principal }) => {
      const node = await loadNode(ctx, params.id);
      const p = must(principal, 'node.write', { nodeId: node.id });
      if (!(await ctx.repos.nodes.remove(node.id))) throw notFound('Node', node.id);
      await ctx.repos.audit.record({ userId: userId(p), action: 'node.delete', targetType: 'node', targetId: node.id, detail: { hostname: node.hostname } });
      return replied(204, undefined);
    },
  });

  defineRoute<JoinCodeRequest, Record<string, string>, Record<string, string>, JoinCodeResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/nodes/join-codes',
    auth: 'user',
    summary: 'A one-time code (valid 1 h) a new agent joins with, or with node_id one that gives that node a new key (super_admin)',
    tags,
    schema: { body: JoinCodeRequest, response: { ...success(201, 'The code and when it expires', JoinCodeResponse), ...errorResponses({ 404: 'No such node (node_id)' }) } },
    handler: async ({ body, principal }) => {
      // No resource: only a role allowed on any node passes, also for a re-join code (it mints that node's key).
      const p = must(principal, 'node.join_code', {});
      const { code, expires } = await createJoinCode(ctx, { nodeId: body?.node_id, actor: { userId: userId(p) } });
      return replied(201, { code, expires_at: expires.toISOString() });
    },
  });
}
