import type { ProgressEvent, Progress } from '../engine/progress.ts';

// How progress looks: a redrawn bar on a terminal, plain lines in a log or pipe, JSON
// lines for machines.

type Out = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

export function bar(pct: number, width: number): string {
  const filled = Math.round((pct / 100) * width);
  return '█'.repeat(filled) + '░'.repeat(width - filled);
}

/** A bar redrawn in place on a TTY. */
export class TtyProgress<S extends string> implements Progress<S> {
  private readonly out: Out;
  private lastStage: S | null = null;
  constructor(out: Out) {
    this.out = out;
  }
  event(e: ProgressEvent<S>): void {
    const cols = this.out.columns ?? 100;
    if (this.lastStage && e.stage !== this.lastStage) this.out.write('\n');
    this.lastStage = e.stage;
    const head = `${bar(e.progress, 24)} ${String(e.progress).padStart(3)}% ${e.stage ?? ''}`;
    const line = `${head}  ${e.stage_detail}`.slice(0, cols - 1);
    this.out.write(`\r\x1b[2K${line}`);
    if (e.status !== 'running') this.out.write('\n');
  }
}

/** One line per stage change, per 10% step, and at the end: fit for logs. */
export class LineProgress<S extends string> implements Progress<S> {
  private readonly out: Out;
  private printed: ProgressEvent<S> | undefined;
  private seen: ProgressEvent<S> | undefined;
  constructor(out: Out) {
    this.out = out;
  }
  event(e: ProgressEvent<S>): void {
    const p = this.printed;
    const stageChanged = e.stage !== p?.stage;
    // A stage's last word ("Database dumped (126.4 MB)") is printed before the next stage's first.
    if (stageChanged && this.seen && this.seen !== p && this.seen.stage_detail !== p?.stage_detail) this.print(this.seen);
    this.seen = e;
    if (stageChanged || Math.floor(e.progress / 10) !== Math.floor((p?.progress ?? -10) / 10) || e.status !== p?.status) this.print(e);
  }
  private print(e: ProgressEvent<S>): void {
    this.printed = e;
    const err = e.error ? ` error: ${e.error}` : '';
    this.out.write(`[${String(e.progress).padStart(3)}%] ${e.status} ${e.stage ?? '-'}: ${e.stage_detail}${err}\n`);
  }
}

export class JsonProgress<S extends string> implements Progress<S> {
  private readonly out: Out;
  constructor(out: Out) {
    this.out = out;
  }
  event(e: ProgressEvent<S>): void {
    this.out.write(JSON.stringify({ type: 'progress', ...e }) + '\n');
  }
}

export function progressFor<S extends string>(json: boolean, out: Out, err: Out): Progress<S> {
  if (json) return new JsonProgress<S>(out);
  return err.isTTY ? new TtyProgress<S>(err) : new LineProgress<S>(err);
}

