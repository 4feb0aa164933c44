import { createLogger, type Logger, type LogLevel } from '../../src/log.ts';

// A logger whose lines the test reads: pino writes each line with one synchronous write() to
// its destination, so a plain object with write() collects them as they are made, in order.

export interface CapturedLog {
  logger: Logger;
  /** Each line as written (JSON). */
  lines: string[];
  /** The lines parsed. */
  entries(): Record<string, unknown>[];
  /** Every line, joined. */
  text(): string;
}

export function captureLog(level: LogLevel = 'debug'): CapturedLog {
  const lines: string[] = [];
  const sink = { write: (s: string): boolean => (lines.push(...s.split('\n').filter(Boolean)), true) };
  return {
    logger: createLogger({ level, stream: sink as unknown as NodeJS.WritableStream }),
    lines,
    entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    text: () => lines.join('\n'),
  };
}
