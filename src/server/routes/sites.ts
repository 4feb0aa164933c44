import type { FastifyInstance } from 'fastify';
import { CreateSiteRequest, PatchSiteRequest, Site, SiteList, SiteListQuery } from '../../api/types.ts';
import { conflict, invalid, notFound } from '../api-error.ts';
import { siteFilter } from '../auth/roles.ts';
import type { ServerContext } from '../context.ts';
import type { SitePatch, SiteRow } from '../db/sites.ts';
import { defineRoute, must, replied } from '../route.ts';
import { errorResponses, errorResponsesWithDetail, noContent, ok, success } from './error-responses.ts';
import { registerDiscoveredSiteRoutes } from './discovered-sites.ts';
import { registerSiteBackupRoutes } from './site-backup.ts';
import { registerSiteEventRoutes } from './site-events.ts';
import { setSiteSchedule } from '../services/schedules.ts';
import { idParams, siteBody, siteFor, type IdParams } from './site-common.ts';
import { iso, noQuery, pathMessage, userId } from './schema.ts';

// Sites: create, list (what the caller may see), read, edit, delete. The backup actions on a
// site live in site-backup.ts, its live event stream in site-events.ts.

/** An absolute path without "." or ".." segments: the agent backs up exactly this directory. */
function checkWpPath(path: string | undefined): void {
  if (path === undefined) return;
  if (path.split('/').some((s) => s === '..' || s === '.')) throw invalid(`wp_path "${path}" must not contain "." or ".." segments`);
}

function toPatch(b: PatchSiteRequest): SitePatch {
  const patch: SitePatch = {};
  if (b.name !== undefined) patch.name = b.name;
  if (b.wp_path !== undefined) patch.wpPath = b.wp_path;
  if (b.excludes !== undefined) patch.excludes = b.excludes;
  if (b.quota_bytes !== undefined) patch.quotaBytes = b.quota_bytes;
  return patch;
}

export function registerSiteRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<CreateSiteRequest, Record<string, string>, Record<string, string>, Site>(app, ctx, {
    method: 'POST',
    url: '/api/v1/sites',
    auth: 'user',
    summary: 'Add a WordPress site on a node (site.write on the node)',
    tags: ['sites'],
    messages: { '/wp_path:pattern': pathMessage('wp_path') },
    schema: { body: CreateSiteRequest, querystring: noQuery, response: { ...success(201, 'The new site', Site), ...errorResponses({ 404: 'No such node' }) } },
    handler: async ({ body, principal }) => {
      const node = await ctx.repos.nodes.get(body.node_id);
      if (!node) {
        must(principal, 'site.write', {});
        throw notFound('Node', body.node_id);
      }
      const p = must(principal, 'site.write', { nodeId: node.id });
      checkWpPath(body.wp_path);
      const site = await ctx.repos.sites.create({ nodeId: node.id, name: body.name, wpPath: body.wp_path, excludes: body.excludes ?? [], quotaBytes: body.quota_bytes ?? null });
      await ctx.repos.audit.record({ userId: userId(p), action: 'site.create', targetType: 'site', targetId: site.id, detail: { node_id: node.id, name: site.name, wp_path: site.wpPath } });
      // It inherits the fleet default from the start (the scheduler would give it a row within a pass).
      const schedule = await setSiteSchedule(ctx, site.id, 'inherit', null);
      return replied(201, { ...siteBody(site), next_run_at: iso(schedule.nextRunAt) });
    },
  });

  defineRoute<unknown, Record<string, string>, SiteListQuery, SiteList>(app, ctx, {
    method: 'GET',
    url: '/api/v1/sites',
    auth: 'user',
    summary: 'List the sites the caller may see, by name (optionally of one node)',
    tags: ['sites'],
    schema: { querystring: SiteListQuery, response: ok(SiteList, 'The sites') },
    // No single resource to check: siteFilter (the role matrix's site.read) narrows the list.
    // An envelope like every other list, so paging details can join it later.
    handler: async ({ query, principal }) => ({ sites: await withNextRuns(ctx, await listVisible(ctx, principal, query)) }),
  });

  defineRoute<unknown, IdParams, Record<string, string>, Site>(app, ctx, {
    method: 'GET',
    url: '/api/v1/sites/:id',
    auth: 'user',
    summary: 'A site and its backup status',
    tags: ['sites'],
    schema: {
      params: idParams, querystring: noQuery,
      response: {
        ...ok(Site, 'The site (name and wp_path are what the original system\'s clients read)'),
        ...errorResponsesWithDetail(400, 401, 403, 404),
      },
    },
    errorDetail: true,
    handler: async ({ params, principal }) => {
      const { site } = await siteFor(ctx, principal, 'site.read', params.id);
      return { ...siteBody(ctx.progress.overlay(site)), next_run_at: iso((await ctx.repos.schedules.get(site.id))?.nextRunAt ?? null) };
    },
  });

  defineRoute<PatchSiteRequest, IdParams, Record<string, string>, Site>(app, ctx, {
    method: 'PATCH',
    url: '/api/v1/sites/:id',
    auth: 'user',
    summary: 'Edit a site: name, wp_path, excludes, quota_bytes',
    tags: ['sites'],
    messages: { '/wp_path:pattern': pathMessage('wp_path') },
    schema: { params: idParams, body: PatchSiteRequest, querystring: noQuery, response: { ...ok(Site, 'The site as changed'), ...errorResponses({ 404: 'No such site' }) } },
    handler: async ({ params, body, principal }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'site.write', params.id);
      checkWpPath(body.wp_path);
      const updated = await ctx.repos.sites.update(site.id, toPatch(body));
      if (!updated) throw notFound('Site', site.id);
      await ctx.repos.audit.record({ userId: userId(p), action: 'site.update', targetType: 'site', targetId: site.id, detail: { fields: Object.keys(body) } });
      return siteBody(updated);
    },
  });

  defineRoute<unknown, IdParams, Record<string, string>, unknown>(app, ctx, {
    method: 'DELETE',
    url: '/api/v1/sites/:id',
    auth: 'user',
    summary: 'Delete a site (refused while a backup runs or while it has stored backups)',
    tags: ['sites'],
    schema: { params: idParams, querystring: noQuery, response: { ...noContent('Deleted'), ...errorResponses({ 404: 'No such site' }, { 409: 'A backup is queued or running, or backups are stored' }) } },
    handler: async ({ params, principal }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'site.delete', params.id);
      if (site.status === 'running' || (await ctx.repos.jobs.activeForSite(site.id))) {
        throw conflict(`Site ${site.id} has a backup queued or running: stop or reset it first`);
      }
      if ((await ctx.repos.backups.listBySite(site.id, { limit: 1 })).length > 0) {
        throw conflict(`Site ${site.id} still has stored backups: delete them first`);
      }
      if (!(await ctx.repos.sites.remove(site.id))) throw notFound('Site', site.id);
      await ctx.repos.audit.record({ userId: userId(p), action: 'site.delete', targetType: 'site', targetId: site.id, detail: { node_id: site.nodeId, name: site.name } });
      ctx.events.publish(site.id);
      return replied(204, undefined);
    },
  });

  registerSiteBackupRoutes(app, ctx);
  registerSiteEventRoutes(app, ctx);
  registerDiscoveredSiteRoutes(app, ctx);
}

async function listVisible(ctx: ServerContext, principal: Parameters<typeof siteFilter>[0] | undefined, q: SiteListQuery): Promise<Site[]> {
  if (!principal) return [];
  const limit = q.limit === undefined ? 1000 : Math.min(Number(q.limit), 1000);
  const offset = q.offset === undefined ? 0 : Number(q.offset);
  const f = siteFilter(principal);
  if (f.all) return (await ctx.repos.sites.list({ nodeId: q.node_id, limit, offset })).map(siteBody);
  if (principal.kind !== 'user' || (f.nodeIds.length === 0 && f.siteIds.length === 0)) return [];
  // The repository narrows by assignment; the role's filter decides what of that counts.
  const nodes = new Set(f.nodeIds);
  const sites = new Set(f.siteIds);
  const rows: SiteRow[] = await ctx.repos.sites.list({ nodeId: q.node_id, visibleTo: principal.userId });
  return rows.filter((s) => nodes.has(s.nodeId) || sites.has(s.id)).slice(offset, offset + limit).map(siteBody);
}

/** Each site's next scheduled backup (schedules.ts), in one query per 500 sites. */
async function withNextRuns(ctx: ServerContext, sites: Site[]): Promise<Site[]> {
  const next = await ctx.repos.schedules.nextRuns(sites.map((s) => s.id));
  return sites.map((s) => ({ ...s, next_run_at: iso(next.get(s.id) ?? null) }));
}
