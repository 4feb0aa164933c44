import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { BackupStatusResponse, QuotaCheckBody, ResetBackupResponse, StartBackupResponse, StopBackupResponse, type QuotaCheck } from '../../api/types.ts';
import { ApiError, conflict } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import type { SiteRow } from '../db/sites.ts';
import { defineRoute, replied } from '../route.ts';
import { abortJobUpload } from '../agent-uploads.ts';
import { errorResponses, errorResponsesWithDetail, ok, success } from './error-responses.ts';
import { idParams, siteFor, statusBody, type IdParams } from './site-common.ts';
import { emptyBody, noQuery, userId, uuidParams } from './schema.ts';

// A site's backup: start, status, stop, reset, and the quota check start relies on.
//
// A start the quota would not allow is refused with 422 and code 'quota_exceeded', the quota
// check in error.details (409 stays "a backup is already running", so clients can tell the
// two apart: one waits, the other needs space or a bigger quota).
//
// Start, status and reset also answer the original system's scripts (start_backup.sh,
// monitor_backup.sh, check_status.sh, reset_backup.sh): success, message and cleanup beside
// wpbackup's own fields, and errors with a top-level detail.

const siteIdParams = uuidParams('site_id');

/**
 * What the next backup would add and whether the site's and the node's quotas allow it. The
 * estimate is the last backup's size; without one, the site's measured size times the
 * compression ratio seen so far (this site's, else all sites', else 1); without a size, 0.
 */
export async function quotaCheck(ctx: ServerContext, site: SiteRow): Promise<QuotaCheckBody> {
  const { backups } = ctx.repos;
  const [last, siteUsage, nodeUsage, node] = await Promise.all([
    backups.latestCompleted(site.id), backups.usageBySite(site.id), backups.usageByNode(site.nodeId), ctx.repos.nodes.get(site.nodeId),
  ]);
  let estimate = 0;
  let basis: QuotaCheck['estimate_basis'] = 'none';
  if (last?.size != null) {
    estimate = last.size;
    basis = 'last_backup';
  } else if (site.sizeBytes !== null) {
    const ratio = (await backups.compressionRatio(site.id)) ?? (await backups.compressionRatio()) ?? 1;
    estimate = Math.ceil(site.sizeBytes * ratio);
    basis = 'site_size_x_ratio';
  }
  const projected = siteUsage + estimate;
  const nodeProjected = nodeUsage + estimate;
  const nodeQuota = node?.quotaBytes ?? null;
  const exceeded: QuotaCheck['exceeded'] = [];
  if (site.quotaBytes !== null && projected > site.quotaBytes) exceeded.push('site');
  if (nodeQuota !== null && nodeProjected > nodeQuota) exceeded.push('node');
  return {
    can_proceed: exceeded.length === 0,
    current_usage_bytes: siteUsage,
    estimate_bytes: estimate,
    estimate_basis: basis,
    projected_usage_bytes: projected,
    site_quota_bytes: site.quotaBytes,
    node_quota_bytes: nodeQuota,
    exceeded,
    node_usage_bytes: nodeUsage,
    node_projected_usage_bytes: nodeProjected,
  };
}

export function registerSiteBackupRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, IdParams, Record<string, string>, StartBackupResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/sites/:id/backup/start',
    auth: 'user',
    summary: "Queue a backup for the site's agent: 202 with the job; 409 if one is queued or running; 422 (quota_exceeded) if the quota would be exceeded",
    tags: ['backup'],
    schema: {
      params: idParams, body: emptyBody, querystring: noQuery,
      response: {
        ...success(202, 'The backup job, queued', StartBackupResponse),
        ...errorResponsesWithDetail(400, 401, 403, 404, { 409: 'A backup is already queued or running' }, { 422: 'The backup would exceed the site or node quota (code quota_exceeded)' }),
      },
    },
    errorDetail: true,
    handler: async ({ params, principal }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'site.backup', params.id);
      if (site.status === 'running') throw conflict(`Site ${site.id} already has a backup queued or running`);
      const quota = await quotaCheck(ctx, site);
      if (!quota.can_proceed) {
        throw new ApiError(422, 'quota_exceeded', `Backing up site ${site.id} would exceed the ${quota.exceeded.join(' and ')} quota: delete old backups or raise the quota`, quota);
      }
      const { provider } = await ctx.storage.forSite(site.id);
      const job = await ctx.repos.jobs.enqueueBackup(site.id, { storageId: provider.id });
      await ctx.repos.audit.record({ userId: userId(p), action: 'site.backup.start', targetType: 'site', targetId: site.id, detail: { job_id: job.id, storage_id: provider.id } });
      ctx.events.publish(site.id);
      return replied(202, { job_id: job.id, site_id: site.id, state: job.state, created_at: new Date(job.createdAt).toISOString(), success: true as const });
    },
  });

  defineRoute<unknown, IdParams, Record<string, string>, BackupStatusResponse>(app, ctx, {
    method: 'GET',
    url: '/api/v1/sites/:id/backup/status',
    auth: 'user',
    summary: "The site's backup status: status, progress, stage, stage_detail (also as message), error, times, backup_id when completed",
    tags: ['backup'],
    schema: {
      params: idParams, querystring: noQuery,
      response: {
        ...ok(BackupStatusResponse, 'The backup status'),
        ...errorResponsesWithDetail(400, 401, 403, 404),
      },
    },
    errorDetail: true,
    prefetch: 'site',
    handler: async ({ params, principal }) => {
      const { site } = await siteFor(ctx, principal, 'site.read', params.id);
      const body = statusBody(site.id, ctx.progress.overlay(site));
      return { ...body, message: body.stage_detail };
    },
  });

  defineRoute<unknown, IdParams, Record<string, string>, StopBackupResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/sites/:id/backup/stop',
    auth: 'user',
    summary: 'Stop the running backup: a queued job is cancelled at once (200), a running one is asked to stop through its agent (202)',
    tags: ['backup'],
    schema: { params: idParams, body: emptyBody, querystring: noQuery, response: { ...ok(StopBackupResponse, 'Stopped at once (it was only queued)'), ...success(202, 'Stop asked for; the agent stops at its next report', StopBackupResponse), ...errorResponses({ 404: 'No such site' }, { 409: 'No backup queued or running' }) } },
    handler: async ({ params, principal }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'site.stop', params.id);
      const result = await ctx.repos.jobs.requestCancel(site.id);
      if (!result) throw conflict(`Site ${site.id} has no backup queued or running`);
      await ctx.repos.audit.record({ userId: userId(p), action: 'site.backup.stop', targetType: 'site', targetId: site.id, detail: { job_id: result.job.id, immediate: result.immediate } });
      ctx.events.publish(site.id);
      const state = await ctx.repos.sites.backupState(site.id);
      const body = { job_id: result.job.id, immediate: result.immediate, status: statusBody(site.id, state ?? site) };
      return replied(result.immediate ? 200 : 202, body);
    },
  });

  defineRoute<unknown, Static<typeof siteIdParams>, Record<string, string>, ResetBackupResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/daemon/backup/reset/:site_id',
    auth: 'user',
    summary: "Reset a stuck backup: the site goes back to idle, its job is cancelled, its upload aborted, and its agent cleans temp files",
    tags: ['backup'],
    schema: {
      params: siteIdParams, body: emptyBody, querystring: noQuery,
      response: {
        ...ok(ResetBackupResponse, 'The site is idle again; the clean-up job is queued for its agent'),
        ...errorResponsesWithDetail(400, 401, 403, 404),
      },
    },
    errorDetail: true,
    handler: async ({ params, principal, raw }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'daemon.reset', params.site_id);
      const { cancelled, reset } = await ctx.repos.jobs.resetSite(site.id);
      let aborted = 0;
      for (const job of cancelled) {
        const err = await abortJobUpload(ctx, job);
        // The reset itself stands; an upload that cannot be aborted is left to the bucket's lifecycle rules.
        if (err) raw.log.warn({ err, jobId: job.id }, 'could not abort the upload of a reset job');
        else if (job.uploadId) aborted++;
      }
      await ctx.repos.audit.record({
        userId: userId(p), action: 'daemon.backup.reset', targetType: 'site', targetId: site.id,
        detail: { cancelled_job_ids: cancelled.map((j) => j.id), reset_job_id: reset.id, aborted_uploads: aborted },
      });
      ctx.events.publish(site.id);
      const state = await ctx.repos.sites.backupState(site.id);
      return {
        status: statusBody(site.id, state ?? site), reset_job_id: reset.id, cancelled_job_ids: cancelled.map((j) => j.id), aborted_uploads: aborted,
        success: true as const,
        message: `Site ${site.id} is idle; its agent removes the backup's temp files when it runs job ${reset.id}`,
        cleanup: { dirs_removed: 0, space_freed_mb: 0, pending: true },
      };
    },
  });

  defineRoute<unknown, IdParams, Record<string, string>, QuotaCheckBody>(app, ctx, {
    method: 'GET',
    url: '/api/v1/sites/:id/quota/check',
    auth: 'user',
    summary: 'Whether the next backup fits the site and node quotas (can_proceed), with the estimate and usage behind it',
    tags: ['backup'],
    schema: { params: idParams, querystring: noQuery, response: { ...ok(QuotaCheckBody, 'The quota check'), ...errorResponses({ 404: 'No such site' }) } },
    handler: async ({ params, principal }) => quotaCheck(ctx, (await siteFor(ctx, principal, 'site.read', params.id)).site),
  });
}
