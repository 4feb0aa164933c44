import { Transform, type TransformCallback } from 'node:stream';

// Drops DEFINER=`user`@`host` from the DDL lines of a dump (triggers, views, routines,
// events). Left in, a restore into another database under another user fails with
// "TRIGGER command denied", and so does the spec's `mysql db < database.sql`. Without it
// the importing user becomes the definer, which is what a restore wants. Data lines
// (INSERT ...) are passed through untouched, whatever they contain.

const DDL_LINE = /^(?:\/\*!\d{5} (?:CREATE|DEFINER|VIEW)|CREATE DEFINER|DELIMITER)/;
const DEFINER = /DEFINER=(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.)*'|[^\s@*]+)@(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.)*'|[^\s*]+)\s?/g;
/** mariadb-dump keeps DDL lines short; a longer partial line is data and streams through. */
const MAX_HELD = 64 * 1024;

export function stripDefiner(line: string): string {
  return DDL_LINE.test(line) ? line.replace(DEFINER, '') : line;
}

export class DefinerFilter extends Transform {
  /** The start of a line that may be DDL, held until its end arrives. */
  private held: Buffer | null = null;
  /** True while inside a long line already judged to be data. */
  private passing = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const buf = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = null;
    const out: Buffer[] = [];
    let start = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(10, start);
      if (this.passing) {
        const end = nl === -1 ? buf.length : nl + 1;
        out.push(buf.subarray(start, end));
        if (nl !== -1) this.passing = false;
        start = end;
        continue;
      }
      if (nl === -1) {
        const rest = buf.subarray(start);
        if (rest.length > MAX_HELD || !this.mayBeDdl(rest)) {
          out.push(rest);
          this.passing = true;
        } else this.held = Buffer.from(rest);
        break;
      }
      const line = buf.subarray(start, nl + 1);
      out.push(this.mayBeDdl(line) ? Buffer.from(stripDefiner(line.toString('utf8'))) : line);
      start = nl + 1;
    }
    if (out.length) cb(null, out.length === 1 ? out[0] : Buffer.concat(out));
    else cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.held) this.push(Buffer.from(stripDefiner(this.held.toString('utf8'))));
    cb();
  }

  private mayBeDdl(line: Buffer): boolean {
    const c = line[0];
    // '/' for /*!5xxxx, 'C' for CREATE DEFINER, 'D' for DELIMITER; everything else is data.
    if (c !== 0x2f && c !== 0x43 && c !== 0x44) return false;
    return line.length < 16 ? true : DDL_LINE.test(line.subarray(0, 24).toString('latin1'));
  }
}
