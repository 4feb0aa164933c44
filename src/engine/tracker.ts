import type { BackupStatus, Progress, ProgressEvent, Stage } from './progress.ts';

// Turns byte counts into the spec's status fields: progress 0-100 by bytes, never going
// backwards, with events throttled so a fast pipeline does not flood a slow listener.

const MIN_INTERVAL_MS = 200;
/** Share of the bar left for finishing the upload and cleaning up. */
const TAIL = 2;

export class ProgressTracker<S extends string = Stage> {
  private readonly sink: Progress<S>;
  private state: ProgressEvent<S> = { status: 'running', progress: 0, stage: null, stage_detail: '', error: null, bytes_done: 0, bytes_total: 0 };
  private lastSent = 0;

  constructor(sink: Progress<S>) {
    this.sink = sink;
  }

  get current(): Readonly<ProgressEvent<S>> {
    return this.state;
  }

  stage(stage: S, detail: string): void {
    this.update({ stage, stage_detail: detail }, true);
  }

  detail(detail: string, force = false): void {
    this.update({ stage_detail: detail }, force);
  }

  bytes(done: number, total: number): void {
    const safeTotal = Math.max(total, done, 1);
    const pct = Math.floor(((100 - TAIL) * done) / safeTotal);
    this.update({ bytes_done: done, bytes_total: safeTotal, progress: Math.max(this.state.progress, Math.min(100 - TAIL, pct)) }, false);
  }

  /** Moves the bar forward to at least pct (used for the tail steps). */
  atLeast(pct: number): void {
    this.update({ progress: Math.max(this.state.progress, pct) }, true);
  }

  finish(status: Exclude<BackupStatus, 'idle' | 'running'>, detail: string, error: string | null): void {
    const progress = status === 'completed' ? 100 : this.state.progress;
    this.update({ status, progress, stage_detail: detail, error }, true);
  }

  private update(patch: Partial<ProgressEvent<S>>, force: boolean): void {
    this.state = { ...this.state, ...patch };
    const now = Date.now();
    if (!force && now - this.lastSent < MIN_INTERVAL_MS) return;
    this.lastSent = now;
    this.sink.event({ ...this.state });
  }
}
