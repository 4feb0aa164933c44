import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

/** A pass-through that hashes (sha256) and counts what flows by, reporting the running count. */
export class HashTap extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;

  constructor(onBytes?: (total: number) => void) {
    super({
      transform: (chunk: Buffer, _enc, done) => {
        this.hash.update(chunk);
        this.bytes += chunk.length;
        onBytes?.(this.bytes);
        done(null, chunk);
      },
    });
  }

  /** The hex digest; call once, after the stream ended. */
  sha256(): string {
    return this.hash.digest('hex');
  }
}
