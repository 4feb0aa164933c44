import { Transform, type TransformCallback } from 'node:stream';
import { badInput } from '../errors.ts';

// --limit-upload: caps the upload's bandwidth so a backup does not saturate a production
// server's uplink. A token bucket refilled continuously, with one second of burst.

export class Throttle extends Transform {
  private readonly rate: number;
  private tokens: number;
  private last = performance.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(bytesPerSecond: number) {
    super({ highWaterMark: 1 << 20 });
    this.rate = bytesPerSecond;
    this.tokens = bytesPerSecond;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.send(chunk, cb);
  }

  private send(chunk: Buffer, cb: TransformCallback): void {
    const now = performance.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    const n = Math.min(chunk.length, Math.max(0, Math.floor(this.tokens)));
    if (n > 0) {
      this.tokens -= n;
      this.push(chunk.subarray(0, n));
    }
    if (n === chunk.length) return cb();
    const rest = chunk.subarray(n);
    const wait = Math.max(5, ((Math.min(rest.length, this.rate) - this.tokens) / this.rate) * 1000);
    this.timer = setTimeout(() => this.send(rest, cb), wait);
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    clearTimeout(this.timer);
    cb(err);
  }
}

const UNITS: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, KI: 1024, MI: 1024 ** 2, GI: 1024 ** 3 };

/** Parses '500K', '10M', '1.5G', '8MiB' (per second) into bytes per second. */
export function parseRate(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]i?)?b?(?:\/s)?$/i.exec(s.trim());
  const unit = UNITS[(m?.[2] ?? '').toUpperCase()];
  const n = m && unit ? Number(m[1]) * unit : NaN;
  if (!Number.isFinite(n) || n < 1024) throw badInput(`--limit-upload ${s} is not a rate of at least 1K per second`, "Use a number with K, M or G, e.g. '10M' for 10 MB/s");
  return Math.floor(n);
}
