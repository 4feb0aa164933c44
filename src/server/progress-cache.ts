import type { BackupState, Progress } from './db/sites.ts';

// Live progress, in memory. Agents report about once a second per job (a heartbeat with the
// latest state), the hottest write of the server; writing every report to the database buys
// nothing a reader can tell apart. So this process keeps each running job's latest report
// here, status reads and event streams overlay it on the site row, and the database gets the
// report (which also renews the job's lease) only when it matters:
//   - the first report this process sees of a job (a claimed job becomes running),
//   - a stage change (the stage is what failures and other servers' readers name),
//   - when the lease in the database has aged by the job's own interval, between half of
//     writeEveryMs and all of it (a fraction fixed by the job's id): so at most one write per
//     job per writeEveryMs / 2, over all servers together, and the lease is renewed well inside
//     leaseMs. Why not writeEveryMs for every job: jobs whose first reports came together (a
//     server restart, the jobs of one schedule) would write together every writeEveryMs for
//     as long as they run; 500 jobs' writes falling due in the same few hundred milliseconds
//     kept the reports that carried them waiting (npm run bench:api), while spread intervals
//     take the jobs apart within a few writes,
//   - and the job's end: the last report is written beside the outcome (services/job-progress.ts).
// Another server on the same PostgreSQL reads the database: progress at most writeEveryMs
// (plus one heartbeat) old, stages exact.
//
// Memory is bounded: an entry goes when its job ends here, when it has not been reported for
// a lease (its job ended elsewhere or expired), and beyond maxEntries jobs new ones are not
// cached at all (each of their reports is written, as before this cache).

export const DEFAULT_PROGRESS_WRITE_MS = 2_000;
export const DEFAULT_PROGRESS_MAX_ENTRIES = 20_000;

interface Entry {
  siteId: string;
  progress: Progress;
  /** When the latest report arrived (the context's clock). */
  reportedAt: number;
  /** The stage the database holds, and whether the database lacks the latest report. */
  writtenStage: string | null;
  dirty: boolean;
}

/** What a report needs of its job's row (JobRow has these). */
export interface ReportedJob {
  id: string;
  siteId: string;
  state: string;
  leaseUntil: number | null;
}

export interface ProgressCacheOptions {
  leaseMs: number;
  now: () => number;
  /** Longest the database's progress of a running job lags its agent's reports; 2 s by default. */
  writeEveryMs?: number;
  maxEntries?: number;
}

export class ProgressCache {
  readonly #entries = new Map<string, Entry>();
  readonly #leaseMs: number;
  readonly #now: () => number;
  readonly #maxEntries: number;
  #sweptAt = 0;
  /** The effective interval: never more than a quarter of the lease, so renewals stay well inside it. */
  readonly writeEveryMs: number;

  constructor(o: ProgressCacheOptions) {
    this.#leaseMs = o.leaseMs;
    this.#now = o.now;
    this.#maxEntries = o.maxEntries ?? DEFAULT_PROGRESS_MAX_ENTRIES;
    this.writeEveryMs = Math.min(o.writeEveryMs ?? DEFAULT_PROGRESS_WRITE_MS, Math.floor(o.leaseMs / 4));
  }

  /**
   * Keeps the report as the job's live progress; true when it must also be written to the
   * database now (then call written() after the write, or drop() if the job is gone).
   */
  report(job: ReportedJob, p: Progress): boolean {
    const now = this.#now();
    const entry = this.#entries.get(job.id);
    const leaseAged = job.leaseUntil === null || job.leaseUntil - now <= this.#leaseMs - this.intervalOf(job.id);
    if (!entry) {
      if (!this.#room(now)) return true;
      this.#entries.set(job.id, { siteId: job.siteId, progress: p, reportedAt: now, writtenStage: null, dirty: true });
      return true;
    }
    const due = leaseAged || job.state === 'claimed' || entry.writtenStage !== p.stage;
    entry.progress = p;
    entry.reportedAt = now;
    entry.dirty = true;
    return due;
  }

  /** How long after a write the job's lease is renewed again: in (writeEveryMs / 2, writeEveryMs], fixed per job. */
  intervalOf(jobId: string): number {
    return Math.ceil(this.writeEveryMs * (1 - fraction(jobId) / 2));
  }

  /** The database now holds the job's latest report. */
  written(jobId: string, p: Progress): void {
    const entry = this.#entries.get(jobId);
    if (!entry || entry.progress !== p) return; // a newer report came meanwhile: still dirty
    entry.writtenStage = p.stage;
    entry.dirty = false;
  }

  /** The job's report the database lacks, if any. */
  unwritten(jobId: string): { siteId: string; progress: Progress } | undefined {
    const entry = this.#entries.get(jobId);
    return entry?.dirty ? { siteId: entry.siteId, progress: entry.progress } : undefined;
  }

  /** Forgets the job (it ended, or is no longer its agent's). */
  drop(jobId: string): void {
    this.#entries.delete(jobId);
  }

  /**
   * The site's backup state with this process's live progress of its current job, when this
   * process has it and it is news: a report the database lacks, or one recent enough that no
   * other server can have written a newer one (within the job's interval). Never one older than a
   * lease: its job is dead, or its agent reports to another server now.
   */
  overlay<S extends BackupState>(state: S): S {
    if (state.currentJobId === null || state.status === 'idle') return state;
    const entry = this.#entries.get(state.currentJobId);
    const age = entry ? this.#now() - entry.reportedAt : Infinity;
    if (!entry || age > this.#leaseMs || (!entry.dirty && age > this.intervalOf(state.currentJobId))) return state;
    const p = entry.progress;
    // A completed run is 100 % whatever its last heartbeat said.
    const progress = state.status === 'completed' ? state.progress : p.progress;
    return { ...state, progress, stage: p.stage, stageDetail: p.stageDetail };
  }

  /** How many jobs are held (tests, metrics). */
  get size(): number {
    return this.#entries.size;
  }

  /** Whether a new job fits, after dropping jobs not reported for a lease (at most once a lease). */
  #room(now: number): boolean {
    if (this.#entries.size < this.#maxEntries && now - this.#sweptAt < this.#leaseMs) return true;
    this.#sweptAt = now;
    for (const [id, e] of this.#entries) if (now - e.reportedAt > this.#leaseMs) this.#entries.delete(id);
    return this.#entries.size < this.#maxEntries;
  }
}

/**
 * A fraction in [0, 1) that is the same for the same id: FNV-1a of its UTF-16 code units, then
 * MurmurHash3's finalizer (FNV's high bits alone barely differ between ids that differ at the end).
 */
function fraction(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
}
