import type { FastifyInstance } from 'fastify';
import type { PolicyBody } from '../../api/retention.ts';
import {
  FleetPolicyBody, FleetPolicyInput, PolicyInput, PruneFleetBody, PruneInput, PruneSiteBody, ReconcileBody, ReconcileInput, SiteRetentionBody,
} from '../../api/retention.ts';
import { Backup } from '../../api/types.ts';
import { describe } from '../../errors.ts';
import { ApiError, invalid, notFound } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import type { PolicyFields, PolicyRow } from '../db/retention.ts';
import { defineRoute, must } from '../route.ts';
import { isTimeZone } from '../retention/policy.ts';
import { pruneFleet, pruneSite, type SitePrune } from '../retention/prune.ts';
import { reconcile, type ReconcileReport } from '../retention/reconcile.ts';
import { DEFAULT_TIME_ZONE, effectivePolicy } from '../retention/settings.ts';
import { errorResponses, ok } from './error-responses.ts';
import { iso, noQuery, userId } from './schema.ts';
import { backupBody, backupFor, idParams, siteFor, type IdParams } from './site-common.ts';

// Retention: the fleet's default policy and sites' own (which replace it whole), pins, prunes
// (dry runs list what would go and why) and the orphan check of a storage provider. Who may:
// everyone signed in reads the fleet default; a site's policy and pending deletions go with
// backup.read; setting, clearing, pinning and pruning are retention.write (super_admin any
// site and the fleet, node_admin the sites of their nodes, site_admin none, as with
// backup.delete); reconcile is storage.write (super_admin).

const tags = ['retention'];

function policyBody(p: Pick<PolicyRow, 'keepLast' | 'keepHourly' | 'keepDaily' | 'keepWeekly' | 'keepMonthly' | 'keepYearly'> | undefined): PolicyBody {
  return {
    keep_last: p?.keepLast ?? null, keep_hourly: p?.keepHourly ?? null, keep_daily: p?.keepDaily ?? null,
    keep_weekly: p?.keepWeekly ?? null, keep_monthly: p?.keepMonthly ?? null, keep_yearly: p?.keepYearly ?? null,
  };
}

function fleetBody(p: PolicyRow | undefined): FleetPolicyBody {
  return { ...policyBody(p), time_zone: p?.timeZone ?? DEFAULT_TIME_ZONE, updated_at: p ? iso(p.updatedAt) : null };
}

function fieldsOf(b: PolicyInput, timeZone: string | null): PolicyFields {
  return {
    keepLast: b.keep_last ?? null, keepHourly: b.keep_hourly ?? null, keepDaily: b.keep_daily ?? null,
    keepWeekly: b.keep_weekly ?? null, keepMonthly: b.keep_monthly ?? null, keepYearly: b.keep_yearly ?? null, timeZone,
  };
}

async function siteRetention(ctx: ServerContext, siteId: string): Promise<SiteRetentionBody> {
  const eff = await effectivePolicy(ctx.repos.retention, siteId);
  const pending = await ctx.repos.retention.pendingDeletions(siteId);
  return {
    site_id: siteId, source: eff.source, own: eff.own ? policyBody(eff.own) : null, fleet: fleetBody(eff.fleet),
    effective: policyBody(eff.source === 'site' ? eff.own : eff.fleet), time_zone: eff.timeZone,
    pending_deletions: pending.map((b) => ({ backup_id: b.id, site_id: b.siteId, key: b.key, attempts: b.deleteAttempts, error: b.deleteError, retry_at: b.deleteAfter === null ? null : iso(b.deleteAfter) })),
  };
}

export function pruneBody(p: SitePrune, dryRun: boolean): PruneSiteBody {
  return {
    site_id: p.siteId, dry_run: dryRun, source: p.source, policy: p.policy, time_zone: p.timeZone, skipped: p.skipped ?? null,
    keep: p.keep.map((k) => ({ backup_id: k.backup.id, created_at: iso(k.backup.createdAt), kept_by: k.keptBy })),
    remove: p.remove.map((r) => ({ backup_id: r.backup.id, created_at: iso(r.backup.createdAt), key: r.backup.key, reason: r.reason, deleted: r.deleted ?? null, error: r.error ?? null })),
  };
}

function reconcileBody(r: ReconcileReport): ReconcileBody {
  return {
    provider_id: r.providerId, location: r.location, objects_scanned: r.objectsScanned,
    orphan_objects: r.orphanObjects.map((o) => ({ key: o.key, size: o.size, modified: iso(o.modified) })),
    orphan_rows: r.orphanRows.map((o) => ({ backup_id: o.id, site_id: o.siteId, key: o.key, status: o.status })),
    skipped: { in_progress: r.skipped.inProgress, recent: r.skipped.recent }, removed: r.removed ?? null,
  };
}

export function registerRetentionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  registerPolicyRoutes(app, ctx);
  registerPruneRoutes(app, ctx);
}

function registerPolicyRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, Record<string, string>, Record<string, string>, FleetPolicyBody>(app, ctx, {
    method: 'GET', url: '/api/v1/retention', auth: 'user', tags,
    summary: 'The fleet default retention policy and time zone (sites without a policy of their own follow it)',
    schema: { querystring: noQuery, response: { 200: { description: 'The fleet policy', ...FleetPolicyBody }, ...errorResponses(401, 403) } },
    handler: async () => fleetBody(await ctx.repos.retention.getPolicy(null)),
  });

  defineRoute<FleetPolicyInput, Record<string, string>, Record<string, string>, FleetPolicyBody>(app, ctx, {
    method: 'PUT', url: '/api/v1/retention', auth: 'user', tags,
    summary: 'Replace the fleet default policy (fields left out are off; time_zone defaults to UTC)',
    schema: { querystring: noQuery, body: FleetPolicyInput, response: { 200: { description: 'The fleet policy as stored', ...FleetPolicyBody }, ...errorResponses(400, 401, 403) } },
    handler: async ({ body, principal }) => {
      const p = must(principal, 'retention.write');
      const tz = body.time_zone ?? DEFAULT_TIME_ZONE;
      if (!isTimeZone(tz)) throw invalid(`time_zone "${tz}" is not a time zone this server knows; use an IANA name such as Europe/Berlin, or UTC`);
      const row = await ctx.repos.retention.setPolicy(null, fieldsOf(body, tz));
      await ctx.repos.audit.record({ userId: userId(p), action: 'retention.set', targetType: 'fleet', detail: { ...body, time_zone: tz } });
      return fleetBody(row);
    },
  });

  defineRoute<unknown, IdParams, Record<string, string>, SiteRetentionBody>(app, ctx, {
    method: 'GET', url: '/api/v1/sites/:id/retention', auth: 'user', tags,
    summary: "A site's retention: its own policy, the fleet default, which applies, and deletions that failed and are retried",
    schema: { params: idParams, querystring: noQuery, response: { 200: { description: "The site's retention", ...SiteRetentionBody }, ...errorResponses(401, 403, 404) } },
    handler: async ({ params, principal }) => {
      const { site } = await siteFor(ctx, principal, 'backup.read', params.id);
      return siteRetention(ctx, site.id);
    },
  });

  defineRoute<PolicyInput, IdParams, Record<string, string>, SiteRetentionBody>(app, ctx, {
    method: 'PUT', url: '/api/v1/sites/:id/retention', auth: 'user', tags,
    summary: "Give a site a policy of its own (replaces the fleet default for it, whole; fields left out are off)",
    schema: { params: idParams, querystring: noQuery, body: PolicyInput, response: { 200: { description: "The site's retention", ...SiteRetentionBody }, ...errorResponses(400, 401, 403, 404) } },
    handler: async ({ params, body, principal }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'retention.write', params.id);
      await ctx.repos.retention.setPolicy(site.id, fieldsOf(body, null));
      await ctx.repos.audit.record({ userId: userId(p), action: 'retention.set', targetType: 'site', targetId: site.id, detail: body });
      return siteRetention(ctx, site.id);
    },
  });

  defineRoute<unknown, IdParams, Record<string, string>, SiteRetentionBody>(app, ctx, {
    method: 'DELETE', url: '/api/v1/sites/:id/retention', auth: 'user', tags,
    summary: "Remove a site's own policy: it follows the fleet default again",
    schema: { params: idParams, querystring: noQuery, response: { 200: { description: "The site's retention", ...SiteRetentionBody }, ...errorResponses(401, 403, 404) } },
    handler: async ({ params, principal }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'retention.write', params.id);
      const removed = await ctx.repos.retention.clearPolicy(site.id);
      await ctx.repos.audit.record({ userId: userId(p), action: 'retention.clear', targetType: 'site', targetId: site.id, detail: { had_policy: removed } });
      return siteRetention(ctx, site.id);
    },
  });

  for (const pinned of [true, false]) {
    defineRoute<unknown, IdParams, Record<string, string>, Backup>(app, ctx, {
      method: pinned ? 'POST' : 'DELETE', url: '/api/v1/backups/backups/:id/pin', auth: 'user', tags,
      summary: pinned ? 'Pin a backup: retention never deletes it' : 'Unpin a backup: retention applies to it again',
      schema: { params: idParams, querystring: noQuery, response: { ...ok(Backup, 'The backup'), ...errorResponses(401, 403, 404) } },
      handler: async ({ params, principal }) => {
        const { backup, principal: p } = await backupFor(ctx, principal, 'retention.write', params.id);
        const row = await ctx.repos.retention.setPinned(backup.id, pinned);
        if (!row) throw notFound('Backup', backup.id);
        await ctx.repos.audit.record({ userId: userId(p), action: pinned ? 'backup.pin' : 'backup.unpin', targetType: 'backup', targetId: backup.id, detail: { site_id: backup.siteId } });
        return backupBody(row);
      },
    });
  }
}

function registerPruneRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<PruneInput, IdParams, Record<string, string>, PruneSiteBody>(app, ctx, {
    method: 'POST', url: '/api/v1/sites/:id/prune', auth: 'user', tags,
    summary: "Apply the site's retention policy now (dry_run: only list what would go and why, and which rule keeps the rest)",
    schema: { params: idParams, querystring: noQuery, body: PruneInput, response: { 200: { description: 'What was kept and removed', ...PruneSiteBody }, ...errorResponses(400, 401, 403, 404) } },
    handler: async ({ params, body, principal }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'retention.write', params.id);
      const dryRun = body?.dry_run === true;
      return pruneBody(await pruneSite(ctx, site.id, { dryRun, actor: { userId: userId(p), via: 'api' } }), dryRun);
    },
  });

  defineRoute<PruneInput, Record<string, string>, Record<string, string>, PruneFleetBody>(app, ctx, {
    method: 'POST', url: '/api/v1/prune', auth: 'user', tags,
    summary: 'Apply retention to every site with backups (dry_run: only list)',
    schema: { querystring: noQuery, body: PruneInput, response: { 200: { description: 'Per site, what was kept and removed', ...PruneFleetBody }, ...errorResponses(400, 401, 403) } },
    handler: async ({ body, principal }) => {
      const p = must(principal, 'retention.write');
      const dryRun = body?.dry_run === true;
      const sites = await pruneFleet(ctx, { dryRun, actor: { userId: userId(p), via: 'api' } });
      return { dry_run: dryRun, sites: sites.map((s) => pruneBody(s, dryRun)) };
    },
  });

  defineRoute<ReconcileInput, IdParams, Record<string, string>, ReconcileBody>(app, ctx, {
    method: 'POST', url: '/api/v1/storage-providers/:id/reconcile', auth: 'user', tags: ['storage', ...tags],
    summary: 'Orphans under a storage provider: rows without an object, and backup objects without a row (delete: remove them)',
    schema: {
      params: idParams, querystring: noQuery, body: ReconcileInput,
      response: { 200: { description: 'The orphans found (and removed)', ...ReconcileBody }, ...errorResponses(400, 401, 403, 404, { 502: 'The storage could not be listed' }) },
    },
    handler: async ({ params, body, principal }) => {
      const p = must(principal, 'storage.write');
      const graceMs = body?.grace_minutes === undefined ? undefined : body.grace_minutes * 60_000;
      let report: ReconcileReport | undefined;
      try {
        report = await reconcile(ctx, params.id, { remove: body?.delete === true, graceMs, userId: userId(p) });
      } catch (err) {
        throw new ApiError(502, 'storage_error', `Could not reconcile storage provider ${params.id}: ${describe(err)}`);
      }
      if (!report) throw notFound('Storage provider', params.id);
      return reconcileBody(report);
    },
  });
}


