import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { FinishReply, FinishRequest, JoinRequest, JoinResponse, PollResponse, ProgressReply, ProgressReport, ScanReply, ScanReport, type AgentJob } from '../../api/types.ts';
import { archiveFileName, archiveKey } from '../../engine/archive-name.ts';
import { providerForJob, recordJobTarget } from '../agent-uploads.ts';
import { ApiError, invalid } from '../api-error.ts';
import { generateToken, hashToken, tokenKind } from '../auth/tokens.ts';
import type { ServerContext } from '../context.ts';
import type { JobRow } from '../db/jobs.ts';
import { rejoinNode } from '../node-keys.ts';
import { onClose, type Closable } from '../on-close.ts';
import { defineRoute } from '../route.ts';
import { errorResponses, ok } from './error-responses.ts';
import { jobParams, leasedJob, nodeIdOf, nodesJob } from './agent-common.ts';
import { pathMessage } from './schema.ts';
import { registerAgentUploadRoutes } from './agent-upload.ts';
import { finishJob } from '../services/job-finish.ts';
import { reportJobProgress } from '../services/job-progress.ts';
import { holdSlot } from '../stream-caps.ts';
import { pingJobStarted } from '../alerts/conditions.ts';

// The agent protocol: join with a one-time code, long-poll for jobs, report progress (the
// reply carries stop requests and renews the lease), upload through presigned part URLs
// (agent-upload.ts), and finish. A node only ever sees and touches its own jobs.

const NOT_A_JOIN_CODE = 'That is not a join code (they start with wpb_j_); copy it again from the admin page or `wpbackup nodes join-code`';

const joinSchema = { body: JoinRequest } as const;

const progressSchema = { params: jobParams, body: ProgressReport } as const;

const finishSchema = { params: jobParams, body: FinishRequest } as const;

/** At most 1000 sites; no password field (additionalProperties: false refuses one). */
const scanSchema = { body: ScanReport } as const;

type Id = Static<typeof jobParams>;
type Q = Record<string, string>;

export function registerAgentRoutes(app: FastifyInstance, ctx: ServerContext): void {
  // Waiting polls answer { job: null } at once instead of holding the close up.
  app.addHook('preClose', (done) => {
    ctx.jobNotifier.close();
    done();
  });

  defineRoute<JoinRequest, Q, Q, JoinResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/agent/join',
    auth: 'public',
    summary: 'Join the fleet with a one-time join code; returns the node key once',
    tags: ['agent'],
    messages: { '/code:pattern': NOT_A_JOIN_CODE },
    schema: { ...joinSchema, response: { ...ok(JoinResponse, 'The node and its key (shown once)'), ...errorResponses({ 403: 'The join code is unknown, used or expired' }) } },
    handler: async ({ body }) => {
      if (tokenKind(body.code) !== 'join') throw invalid(NOT_A_JOIN_CODE);
      const rejoined = await rejoinNode(ctx, body.code); // a code bound to a node: that node, a new key
      if (rejoined) return rejoined;
      const nodeKey = generateToken('node');
      const node = await ctx.repos.transaction(async (repos) => {
        const created = await repos.nodes.create({ hostname: body.hostname.trim(), status: 'active', nodeKeyHash: hashToken(nodeKey) });
        const used = await repos.joinCodes.consume(hashToken(body.code), created.id);
        if (!used) throw new ApiError(403, 'invalid_join_code', 'This join code is unknown, already used or expired; ask an admin for a new one');
        await repos.audit.record({ userId: used.createdBy, action: 'node.join', targetType: 'node', targetId: created.id });
        return created;
      });
      return { node_id: node.id, node_key: nodeKey };
    },
  });

  defineRoute<unknown, Q, Q, PollResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/agent/poll',
    auth: 'node',
    summary: `Wait up to the server's poll time for this node's next job`,
    tags: ['agent'],
    schema: { response: { ...ok(PollResponse, 'A job for this node, or none when the wait ran out'), ...errorResponses({ 429: 'Too many polls open for this node' }) } },
    handler: async ({ principal, reply }) => {
      const nodeId = nodeIdOf(principal);
      holdSlot(ctx.caps.polls, nodeId, reply, { thing: 'polls', holder: 'a node key', option: '--max-polls-per-node' });
      const polled = await waitForJob(ctx, nodeId, reply.raw);
      // The agent runs up to this many jobs at once, polling while it has a free slot.
      return { ...polled, job_limit: (await ctx.repos.nodes.get(nodeId))?.jobLimit ?? 1 };
    },
  });

  defineRoute<ProgressReport, Id, Q, ProgressReply>(app, ctx, {
    method: 'POST',
    url: '/api/v1/agent/jobs/:id/progress',
    auth: 'node',
    summary: 'Report progress; renews the lease, and the reply says whether to stop',
    tags: ['agent'],
    prefetch: 'job',
    schema: { ...progressSchema, response: { ...ok(ProgressReply, 'Whether to stop, and the new lease'), ...errorResponses({ 404: 'No such job' }) } },
    handler: async ({ body, params, principal }) => {
      const { job, nodeId } = await nodesJob(ctx, principal, params.id);
      // In memory and on the event streams at once; in the database at a bounded rate (progress-cache.ts).
      const keyHash = principal?.kind === 'node' ? principal.keyHash : undefined;
      return reportJobProgress(ctx, job, nodeId, { progress: body.progress, stage: body.stage, stageDetail: body.stage_detail }, keyHash);
    },
  });

  defineRoute<FinishRequest, Id, Q, FinishReply>(app, ctx, {
    method: 'POST',
    url: '/api/v1/agent/jobs/:id/finish',
    auth: 'node',
    summary: 'End a job: completed (after /upload/complete for backups), failed or stopped',
    tags: ['agent'],
    schema: { ...finishSchema, response: { ...ok(FinishReply, 'The job\'s state now'), ...errorResponses({ 404: 'No such job' }, { 409: 'The job is not this agent\'s to run, or a backup has no completed upload' }) } },
    handler: async ({ body, params, principal }) => {
      const { job, nodeId } = await leasedJob(ctx, principal, params.id);
      const ended = await finishJob(ctx, job, nodeId, body);
      if (job.type === 'backup') ctx.metrics.stagesReported(body.stage_seconds);
      return { state: ended.state };
    },
  });

  defineRoute<ScanReport, Q, Q, ScanReply>(app, ctx, {
    method: 'POST',
    url: '/api/v1/agent/scan',
    auth: 'node',
    summary: 'Report the WordPress sites found on this node (replaces its last scan)',
    tags: ['agent'],
    messages: { '/path:pattern': pathMessage('path') },
    schema: { ...scanSchema, response: ok(ScanReply, 'The scan, stored') },
    handler: async ({ body, principal }) => {
      const nodeId = nodeIdOf(principal);
      for (const s of body.sites) {
        if (s.path.split('/').some((seg) => seg === '..' || seg === '.')) throw invalid(`Path "${s.path}" must not contain "." or ".." segments`);
      }
      const stored = await ctx.repos.discoveredSites.replaceForNode(
        nodeId,
        body.sites.map((s) => ({ path: s.path, name: s.name, dbName: s.db_name, tablePrefix: s.table_prefix, wpVersion: s.wp_version, error: s.error })),
      );
      return { stored };
    },
  });

  registerAgentUploadRoutes(app, ctx);
}

/**
 * The long poll: claim, and while there is nothing, wait for the notifier (a job queued for
 * this node, here or on another server), the slow re-check timer, the deadline, the agent
 * hanging up or the server closing, whichever comes first. Subscribed before each claim, so
 * a job queued between the claim and the wait still wakes it. An idle poll costs one claim
 * per pollRecheckMs, not one every 250 ms.
 */
async function waitForJob(ctx: ServerContext, nodeId: string, res: Closable): Promise<PollResponse> {
  // Changed by the callbacks below while the loop awaits.
  const state = { gone: false, woken: false, wake: () => {} };
  const onWake = (): void => {
    state.woken = true;
    state.wake();
  };
  const hungUp = (): void => {
    state.gone = true;
    state.wake();
  };
  // The agent may have hung up before this handler began (while it was authenticated): then
  // no 'close' is coming, and without this the poll would claim a job for nobody.
  const stopListening = onClose(res, hungUp);
  if (res.destroyed) state.gone = true;
  const unsubscribe = ctx.jobNotifier.subscribe(nodeId, onWake);
  const deadline = Date.now() + ctx.config.pollWaitMs;
  try {
    for (;;) {
      if (state.gone || ctx.jobNotifier.closed) return { job: null };
      state.woken = false;
      const claimed = await ctx.repos.jobs.claimNext(nodeId, ctx.config.leaseMs);
      if (claimed) {
        const job = await toAgentJob(ctx, claimed, nodeId);
        // An agent that hung up meanwhile would never hear of the job: queue it again.
        if (job && state.gone) {
          await ctx.repos.jobs.release(claimed.id, nodeId);
          return { job: null };
        }
        if (job) {
          pingJobStarted(ctx, claimed);
          ctx.jobLog.started(claimed, nodeId);
          return { job };
        }
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0 || state.gone) return { job: null };
      if (!state.woken) await pause(Math.min(left, ctx.config.pollRecheckMs), (w) => (state.wake = w));
      if (Date.now() >= deadline && !state.woken) return { job: null };
    }
  } finally {
    unsubscribe();
    stopListening();
  }
}

/** Waits ms, or until the function handed to setWake is called. */
function pause(ms: number, setWake: (w: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      setWake(() => {});
      resolve();
    }
    setWake(done);
  });
}

/** A job this server failed: watchers, retention, alerts and metrics hear of it (job-ended.ts). */
function endedHere(ctx: ServerContext, job: JobRow | undefined): void {
  if (!job) return;
  ctx.events.publish(job.siteId);
  ctx.jobEnded.emit(job);
}

/** The job as the agent sees it; for a backup, with the object key chosen now. undefined: failed instead. */
async function toAgentJob(ctx: ServerContext, job: JobRow, nodeId: string): Promise<AgentJob | undefined> {
  const site = await ctx.repos.sites.get(job.siteId);
  if (!site) {
    endedHere(ctx, await ctx.repos.jobs.finish(job.id, nodeId, { state: 'failed', error: 'The site was removed' }));
    return undefined;
  }
  let key = '';
  if (job.type === 'backup') {
    try {
      const provider = await providerForJob(ctx, job);
      key = archiveKey(job.nodeId, site.id, archiveFileName(site.name, new Date()));
      await recordJobTarget(ctx, job, provider.id, key);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      endedHere(ctx, await ctx.repos.jobs.finish(job.id, nodeId, { state: 'failed', error: `The server could not prepare the backup: ${message}` }));
      return undefined;
    }
  }
  return {
    job_id: job.id,
    type: job.type,
    site: { id: site.id, name: site.name, wp_path: site.wpPath, excludes: site.excludes },
    node_id: job.nodeId,
    key,
    lease_seconds: ctx.config.leaseMs / 1000,
  };
}
