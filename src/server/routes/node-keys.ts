import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Node, RevokeKeyResponse } from '../../api/admin-types.ts';
import { KEY_ROTATION_HEADER, RotateKeyResponse } from '../../api/types.ts';
import { hashToken, parseBearer } from '../auth/tokens.ts';
import type { ServerContext } from '../context.ts';
import { handOverKey, requestKeyRotation, revokeNodeKey } from '../node-keys.ts';
import { defineRoute, must, replied } from '../route.ts';
import { nodeBody } from './admin-nodes.ts';
import { emptyBody, idParams, userId } from './admin-common.ts';
import { errorResponses as errors, ok, success } from './error-responses.ts';
import { nodeIdOf } from './agent-common.ts';

// Node key rotation and revocation (see node-keys.ts for the handover). super_admin, or the node's
// own node_admin (node.write): both only take access away, and neither ever sees a key. Re-join
// codes, which mint a key, stay with super_admin (POST /nodes/join-codes with node_id).

const NodeParams = idParams('id');
type IdP = Static<typeof NodeParams>;
type Q = Record<string, string>;

export function registerNodeKeyRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const tags = ['nodes'];
  const userErrors = { 401: 'Not signed in', 403: 'Not super_admin nor this node’s node_admin', 404: 'No such node', 409: 'The node has no key (never joined, or revoked)' };

  defineRoute<unknown, IdP, Q, Node>(app, ctx, {
    method: 'POST',
    url: '/api/v1/nodes/:id/rotate-key',
    auth: 'user',
    summary: "Give the node a new key: its agent fetches it on its next poll and the old key stops working once the new one is used (super_admin or the node's node_admin)",
    tags,
    schema: { params: NodeParams, body: emptyBody, response: { ...success(202, 'Rotation asked for: the node', Node), ...errors(userErrors) } },
    handler: async ({ params, principal }) => {
      const p = must(principal, 'node.write', { nodeId: params.id });
      return replied(202, nodeBody(await requestKeyRotation(ctx, params.id, { userId: userId(p) })));
    },
  });

  defineRoute<unknown, IdP, Q, RevokeKeyResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/nodes/:id/revoke-key',
    auth: 'user',
    summary: "Revoke the node's key at once (a compromised server): its jobs fail, and it comes back only with a re-join code (super_admin or the node's node_admin)",
    tags,
    schema: { params: NodeParams, body: emptyBody, response: { ...ok(RevokeKeyResponse, 'Key revoked'), ...errors(userErrors) } },
    handler: async ({ params, principal }) => {
      const p = must(principal, 'node.write', { nodeId: params.id });
      const { node, jobsFailed } = await revokeNodeKey(ctx, params.id, { userId: userId(p) });
      return { node: nodeBody(node), jobs_failed: jobsFailed };
    },
  });

  defineRoute<unknown, Q, Q, RotateKeyResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/agent/rotate-key',
    auth: 'node',
    summary: `This node's next key, once, after an admin asked for a rotation (the poll reply says so in ${KEY_ROTATION_HEADER}); the current key works until the new one is used`,
    tags: ['agent'],
    schema: {
      body: emptyBody,
      response: { ...ok(RotateKeyResponse, 'The new key'), ...errors({ 401: 'Unknown or revoked node key', 403: 'Not an agent', 409: 'No rotation asked for' }) },
    },
    handler: async ({ principal }) => ({ node_key: await handOverKey(ctx, nodeIdOf(principal)) }),
  });

  // Poll replies tell the agent a rotation is waiting: one indexed lookup per poll, not per request.
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.routeOptions.url !== '/api/v1/agent/poll' || reply.statusCode !== 200) return payload;
    const cred = parseBearer(req.headers.authorization);
    const node = cred?.kind === 'node' ? await ctx.repos.nodes.findByKeyHash(hashToken(cred.token)) : undefined;
    if (node?.keyRotationAt != null) void reply.header(KEY_ROTATION_HEADER, '1');
    return payload;
  });
}
