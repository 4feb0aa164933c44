import type { FastifyInstance } from 'fastify';
import { FleetSchedule, FleetScheduleRequest, ScheduleRequest, SiteSchedule } from '../../api/schedule-types.ts';
import { invalid } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import { defineRoute, must } from '../route.ts';
import { specOf } from '../schedule-spec.ts';
import { fleetBody, setFleetSchedule, setSiteSchedule, siteScheduleBody } from '../services/schedules.ts';
import { errorResponses, ok } from './error-responses.ts';
import { idParams, siteFor, type IdParams } from './site-common.ts';
import { noQuery, userId } from './schema.ts';

// Backup schedules: the fleet default (read by admins, set by super_admin) and each site's
// own (read with site.read, set or cleared with site.schedule: whoever may start the site's
// backups). Every change is audited. What a schedule means: schedule-spec.ts.

type Q = Record<string, string>;
const tags = ['schedules'];

export function registerScheduleRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, Q, Q, FleetSchedule>(app, ctx, {
    method: 'GET',
    url: '/api/v1/schedules/default',
    auth: 'user',
    summary: 'The fleet default schedule sites inherit, and the spreading window (super_admin, node_admin)',
    tags,
    schema: { querystring: noQuery, response: { ...ok(FleetSchedule, 'The fleet\'s default schedule'), ...errorResponses(401, 403) } },
    handler: async ({ principal }) => {
      must(principal, 'schedule.default.read');
      return fleetBody(await ctx.repos.schedules.fleet());
    },
  });

  defineRoute<FleetScheduleRequest, Q, Q, FleetSchedule>(app, ctx, {
    method: 'PUT',
    url: '/api/v1/schedules/default',
    auth: 'user',
    summary: 'Set the fleet default (cron with timezone, a preset, or disabled: true for none) and/or window_minutes (super_admin)',
    tags,
    schema: { body: FleetScheduleRequest, querystring: noQuery, response: { ...ok(FleetSchedule, 'The default schedule as stored'), ...errorResponses(400, 401, 403) } },
    handler: async ({ body, principal }) => {
      const p = must(principal, 'schedule.default.write');
      const { window_minutes: windowMinutes, ...request } = body;
      const givesSchedule = Object.keys(request).length > 0;
      if (!givesSchedule && windowMinutes === undefined) throw invalid('cron: give a schedule (cron, preset or disabled: true), window_minutes, or both', { field: 'cron' });
      const spec = givesSchedule ? specOf(request) : undefined;
      const fleet = await setFleetSchedule(ctx, { spec, windowMinutes });
      await ctx.repos.audit.record({ userId: userId(p), action: 'schedule.default.update', targetType: 'fleet', detail: { schedule: spec, window_minutes: windowMinutes } });
      return fleetBody(fleet);
    },
  });

  defineRoute<unknown, IdParams, Q, SiteSchedule>(app, ctx, {
    method: 'GET',
    url: '/api/v1/sites/:id/schedule',
    auth: 'user',
    summary: "A site's schedule: inherit, custom or disabled, what applies, its spreading offset and next run",
    tags,
    schema: { params: idParams, querystring: noQuery, response: { ...ok(SiteSchedule, 'The site\'s schedule'), ...errorResponses(400, 401, 403, 404) } },
    handler: async ({ params, principal }) => {
      const { site } = await siteFor(ctx, principal, 'site.read', params.id);
      return siteScheduleBody(site.id, await ctx.repos.schedules.get(site.id), await ctx.repos.schedules.fleet());
    },
  });

  defineRoute<ScheduleRequest, IdParams, Q, SiteSchedule>(app, ctx, {
    method: 'PUT',
    url: '/api/v1/sites/:id/schedule',
    auth: 'user',
    summary: "Give a site its own schedule (cron with timezone, or a preset), or disabled: true for none (site.schedule: super_admin, the node's node_admin, the site's site_admin)",
    tags,
    schema: { params: idParams, body: ScheduleRequest, querystring: noQuery, response: { ...ok(SiteSchedule, 'The site\'s schedule'), ...errorResponses(400, 401, 403, 404) } },
    handler: async ({ params, body, principal }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'site.schedule', params.id);
      const spec = specOf(body);
      const row = await setSiteSchedule(ctx, site.id, spec ? 'custom' : 'disabled', spec);
      await ctx.repos.audit.record({ userId: userId(p), action: 'site.schedule.update', targetType: 'site', targetId: site.id, detail: { mode: row.mode, schedule: spec } });
      return siteScheduleBody(site.id, row, await ctx.repos.schedules.fleet());
    },
  });

  defineRoute<unknown, IdParams, Q, SiteSchedule>(app, ctx, {
    method: 'DELETE',
    url: '/api/v1/sites/:id/schedule',
    auth: 'user',
    summary: 'Clear a site\'s own schedule: it inherits the fleet default again (site.schedule)',
    tags,
    schema: { params: idParams, querystring: noQuery, response: { ...ok(SiteSchedule, 'The site\'s schedule'), ...errorResponses(400, 401, 403, 404) } },
    handler: async ({ params, principal }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'site.schedule', params.id);
      const row = await setSiteSchedule(ctx, site.id, 'inherit', null);
      await ctx.repos.audit.record({ userId: userId(p), action: 'site.schedule.clear', targetType: 'site', targetId: site.id, detail: { mode: 'inherit' } });
      return siteScheduleBody(site.id, row, await ctx.repos.schedules.fleet());
    },
  });
}
