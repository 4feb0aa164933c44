import type { FastifyInstance } from 'fastify';
import { AdoptSiteRequest, DiscoveredSiteList, Site } from '../../api/types.ts';
import { ApiError, conflict, notFound } from '../api-error.ts';
import type { Principal } from '../auth/roles.ts';
import type { ServerContext } from '../context.ts';
import type { NodeRow } from '../db/nodes.ts';
import { defineRoute, must, replied } from '../route.ts';
import { errorResponses, ok, success } from './error-responses.ts';
import { idParams, siteBody, type IdParams } from './site-common.ts';
import { noQuery, userId } from './schema.ts';

// What agents' scans found (POST /api/v1/agent/scan), and adopting one of those as a site:
// the same as POST /api/v1/sites, with the path and database name taken from the scan.

/** The node, after checking the caller may do action on it; unknown ids are 404 only to those allowed it anywhere. */
async function nodeFor(ctx: ServerContext, principal: Principal | undefined, action: 'node.read' | 'site.write', id: string): Promise<{ node: NodeRow; principal: Principal }> {
  const node = await ctx.repos.nodes.get(id);
  if (!node) {
    must(principal, action, {});
    throw notFound('Node', id);
  }
  return { node, principal: must(principal, action, { nodeId: node.id }) };
}

export function registerDiscoveredSiteRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, IdParams, Record<string, string>, DiscoveredSiteList>(app, ctx, {
    method: 'GET',
    url: '/api/v1/nodes/:id/discovered-sites',
    auth: 'user',
    summary: `The WordPress sites the node's agent last found, and whether each is a site already`,
    tags: ['nodes'],
    schema: { params: idParams, querystring: noQuery, response: { ...ok(DiscoveredSiteList, 'What the last scan found'), ...errorResponses({ 404: 'No such node' }) } },
    handler: async ({ params, principal }) => {
      const { node } = await nodeFor(ctx, principal, 'node.read', params.id);
      const found = await ctx.repos.discoveredSites.listForNode(node.id);
      const paths = new Set((await ctx.repos.sites.list({ nodeId: node.id })).map((s) => s.wpPath));
      return {
        discovered_sites: found.map((d) => ({
          node_id: d.nodeId, path: d.path, name: d.name, db_name: d.dbName, table_prefix: d.tablePrefix, wp_version: d.wpVersion, error: d.error,
          seen_at: new Date(d.seenAt).toISOString(), adopted: paths.has(d.path),
        })),
      };
    },
  });

  defineRoute<AdoptSiteRequest, Record<string, string>, Record<string, string>, Site>(app, ctx, {
    method: 'POST',
    url: '/api/v1/sites/adopt',
    auth: 'user',
    summary: `Add a site from what the node's agent found (site.write on the node)`,
    tags: ['sites'],
    schema: { body: AdoptSiteRequest, querystring: noQuery, response: { ...success(201, 'The new site', Site), ...errorResponses({ 404: 'No such node, or nothing found at that path' }, { 409: 'That path is a site already' }) } },
    handler: async ({ body, principal }) => {
      const { node, principal: p } = await nodeFor(ctx, principal, 'site.write', body.node_id);
      const found = await ctx.repos.discoveredSites.get(node.id, body.path);
      if (!found) throw new ApiError(404, 'not_found', `No WordPress site was found at ${body.path} on node ${node.id}; is the agent running, and does it scan that directory (--scan-root)?`);
      const existing = (await ctx.repos.sites.list({ nodeId: node.id })).find((s) => s.wpPath === found.path);
      if (existing) throw conflict(`${found.path} on node ${node.id} is already site ${existing.id}`, { site_id: existing.id });
      const site = await ctx.repos.sites.create({ nodeId: node.id, name: body.name ?? found.name, wpPath: found.path, dbName: found.dbName, excludes: [] });
      await ctx.repos.audit.record({
        userId: userId(p), action: 'site.create', targetType: 'site', targetId: site.id, detail: { node_id: node.id, name: site.name, wp_path: site.wpPath, adopted: true },
      });
      return replied(201, siteBody(site));
    },
  });
}
