// Progress is an interface with a null and a counting implementation (after kopia's
// upload_progress.go). The engine reports; the CLI, the agent and tests listen.

// The stage and status names are the API's (src/api/formats.ts); the engine reports in them.
import type { BackupStatus, Stage } from '../api/formats.ts';

export { STAGES } from '../api/formats.ts';
export type { BackupStatus, Stage } from '../api/formats.ts';

/** The state a listener sees; field names are the spec's status fields. */
export interface ProgressEvent<S extends string = Stage> {
  status: BackupStatus;
  /** 0-100, by bytes, never going backwards within a run. */
  progress: number;
  stage: S | null;
  stage_detail: string;
  error: string | null;
  /** Bytes done and the current estimate of the total, behind `progress`. */
  bytes_done: number;
  bytes_total: number;
}

export interface Progress<S extends string = Stage> {
  event(e: ProgressEvent<S>): void;
}

export class NullProgress<S extends string = Stage> implements Progress<S> {
  event(_e: ProgressEvent<S>): void {}
}

/** Keeps every event and counts them per stage; used by tests and as a building block. */
export class CountingProgress<S extends string = Stage> implements Progress<S> {
  readonly events: ProgressEvent<S>[] = [];
  readonly perStage = new Map<S, number>();

  event(e: ProgressEvent<S>): void {
    this.events.push(e);
    if (e.stage) this.perStage.set(e.stage, (this.perStage.get(e.stage) ?? 0) + 1);
  }

  get last(): ProgressEvent<S> | undefined {
    return this.events.at(-1);
  }

  /** Stages in the order they were first seen. */
  stagesSeen(): S[] {
    return [...this.perStage.keys()];
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}
