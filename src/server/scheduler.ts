import type { ServerContext } from './context.ts';
import { startPeriodic, turnTaker, yieldToRequests } from './periodic.ts';
import { isConflict } from './db/errors.ts';
import type { DueRun } from './db/schedules.ts';
import { nextRunOf } from './services/schedules.ts';

// Scheduled backups. Every few seconds each server runs scheduleOnce: sites get a schedule
// row and a first next run, then every run due by now is claimed and queued. The claim moves
// the site's next_run_at from the due time to the next slot after now (compare-and-set), in
// the same transaction as the enqueue, so with several servers on one PostgreSQL each due
// run is queued exactly once, and a run missed while every server was down runs once, at the
// first pass after the start, not once per missed slot. A site whose backup is still queued
// or running is skipped (its slot counts as run); so is a site whose node is not active.

export interface SchedulerOptions {
  /** How often to look; 15 s by default. */
  intervalMs?: number;
  /** Where failures are reported; console.error by default. */
  log?: (message: string, err?: unknown) => void;
}

export interface TickResult {
  /** Sites whose run this pass queued. */
  enqueued: string[];
  /** Sites skipped: a backup already queued or running, or their node not active. */
  skipped: { siteId: string; reason: 'busy' | 'node_inactive' }[];
  /** Due runs another server claimed first. */
  lost: number;
  /** Sites given their first next run. */
  filled: number;
}

const BATCH = 500;
/** A pass stops after this many batches; the next pass goes on. */
const MAX_BATCHES = 20;

/** One pass at `now`. Safe to run on every server at once. */
export async function scheduleOnce(ctx: ServerContext, now: number, log: SchedulerOptions['log'] = (m, err) => ctx.log.error({ err }, `scheduler: ${m}`)): Promise<TickResult> {
  const result: TickResult = { enqueued: [], skipped: [], lost: 0, filled: 0 };
  const fleet = await ctx.repos.schedules.fleet();
  // ensureRows, pending and due each look at the whole fleet (on SQLite, on this thread):
  // requests get a turn after each, and after every few milliseconds of rows.
  await ctx.repos.schedules.ensureRows();
  await yieldToRequests();
  const turn = turnTaker();
  const pending = await ctx.repos.schedules.pending(fleet.spec !== null, 10 * BATCH);
  await yieldToRequests();
  for (const row of pending) {
    const at = nextRunOf(row.siteId, row, fleet, now);
    if (at !== null && (await ctx.repos.schedules.fillNext(row.siteId, row.mode, at))) result.filled++;
    await turn();
  }
  for (let b = 0; b < MAX_BATCHES; b++) {
    const due = await ctx.repos.schedules.due(now, BATCH);
    await yieldToRequests();
    for (const run of due) {
      await turn();
      try {
        await runDue(ctx, run, fleet, now, result);
      } catch (err) {
        log(`Could not queue the scheduled backup of site ${run.siteId}`, err);
      }
    }
    if (due.length < BATCH) break;
  }
  return result;
}

/** Claims one due run and queues its backup, together. */
async function runDue(ctx: ServerContext, run: DueRun, fleet: Awaited<ReturnType<ServerContext['repos']['schedules']['fleet']>>, now: number, result: TickResult): Promise<void> {
  const next = nextRunOf(run.siteId, run, fleet, now);
  const storageId = run.nodeStatus === 'active' ? (await ctx.storage.forSite(run.siteId)).provider.id : undefined;
  const outcome = await ctx.repos.transaction(async (r) => {
    if (!(await r.schedules.claimSlot(run.siteId, run.nextRunAt, next, now))) return 'lost' as const;
    if (run.nodeStatus !== 'active') return 'node_inactive' as const;
    try {
      await r.jobs.enqueueBackup(run.siteId, { storageId });
      return 'enqueued' as const;
    } catch (err) {
      if (isConflict(err, 'active_job')) return 'busy' as const;
      throw err;
    }
  });
  if (outcome === 'lost') result.lost++;
  else if (outcome === 'enqueued') {
    result.enqueued.push(run.siteId);
    // After the commit: this process's waiting polls (others hear pg_notify) and live views.
    ctx.jobNotifier.notify(run.nodeId);
    ctx.events.publish(run.siteId);
  } else result.skipped.push({ siteId: run.siteId, reason: outcome });
}

export interface Scheduler {
  /** One pass now (waits for a pass already running first). */
  runOnce(): Promise<TickResult>;
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

/** A first pass at once (runs missed while down), then every intervalMs; unref'd. Stop it before closing the database. */
export function startScheduler(ctx: ServerContext, opts: SchedulerOptions = {}): Scheduler {
  const log = opts.log ?? ((message: string, err?: unknown) => ctx.log.error({ err }, `scheduler: ${message}`));
  return startPeriodic(() => scheduleOnce(ctx, ctx.now(), log), { intervalMs: opts.intervalMs ?? 15_000, immediately: true, onError: (err) => log('Scheduler pass failed', err), onPass: (ms) => ctx.metrics.passRan('scheduler', ms) });
}
