import { CoalescedReads } from './coalesced-reads.ts';
import { reportProgress, reportProgressMany, type ReportReply, type ReportRow, type ReportWrite } from './job-report.ts';
import type { RepoContext } from './rows.ts';
import { checkProgress } from './sites.ts';

// Progress writes on PostgreSQL, gathered like the status reads (coalesced-reads.ts): a report
// due for the database goes at once while fewer than maxInFlight writes run; those that arrive
// meanwhile go together, in one statement, when a write ends. Agents' reports come in bursts
// (npm run bench:api: 500 jobs whose writes fall due together), and one at a time they queued
// 20-30 deep for the relaxed pool's connections, each its own round trip and statement for
// the database's CPU. A job reported twice while queued is written once, with the newer report,
// and both callers get that write's answer. SQLite writes one at a time, as before: its
// statements run on this thread and a batch would only hold it longer.

export interface ReportBatchesOptions {
  maxInFlight: number;
  maxBatch: number;
}

export class ReportBatches {
  readonly #ctx: RepoContext;
  /** The newest report of each job queued and not yet sent. */
  readonly #queued = new Map<string, ReportWrite>();
  readonly #batches: CoalescedReads<ReportRow> | undefined;

  constructor(ctx: RepoContext, o: ReportBatchesOptions) {
    this.#ctx = ctx;
    if (ctx.db.dialect === 'postgres') this.#batches = new CoalescedReads({ load: (ids) => this.#write(ids), idOf: (r) => r.jobId, ...o });
  }

  /** As JobsRepo.report: undefined when the job is not the node's to run any more. */
  async report(w: ReportWrite): Promise<ReportReply | undefined> {
    if (!this.#batches || refusedText(w)) return reportProgress(this.#ctx, w.jobId, w.nodeId, w.leaseMs, w.p, w.keyHash);
    checkProgress(w.p.progress); // a bad report fails alone, before it joins a batch
    this.#queued.set(w.jobId, w);
    const row = await this.#batches.get(w.jobId);
    return row && { cancelRequested: row.cancelRequested, leaseUntil: row.leaseUntil };
  }

  #write(ids: string[]): Promise<ReportRow[]> {
    const writes: ReportWrite[] = [];
    for (const id of ids) {
      const w = this.#queued.get(id);
      this.#queued.delete(id);
      if (w) writes.push(w);
    }
    return reportProgressMany(this.#ctx, writes);
  }
}

/**
 * Text PostgreSQL refuses (a NUL character: agents may send any bytes). Such a report is
 * written alone, and fails alone, as before batching, instead of failing the batch it joined.
 */
function refusedText(w: ReportWrite): boolean {
  return [w.p.stage, w.p.stageDetail].some((t) => t?.includes('\u0000'));
}
