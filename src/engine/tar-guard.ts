import { createHash, type Hash } from 'node:crypto';
import { posix } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { badInput } from '../errors.ts';
import { SqlScanner } from './sql-guard.ts';
import { BLOCK, END_OF_ARCHIVE, entryHeader, paddingLength, ustarInto, type EntryType, type TarEntry } from './tar-header.ts';

// Sits between zstd -d and GNU tar on restore and decides, member by member, what tar may
// see. A restore runs as root, and an archive may be crafted (a node key uploads any bytes),
// so tar never reads the archive's own headers: each member is parsed here, checked against
// the layout a wpbackup archive has, and written again as a fresh header with only a name,
// a type, a size, a mode (no setuid/setgid) and a time. Owners, pax extras (xattrs, sparse
// maps), hard links, devices and FIFOs never reach tar.
//
// Refused (the whole restore stops): absolute names, '..', members outside the layout, hard
// links, a member under a symlink the archive made, anything tar-specific wpbackup never writes.
// Left out with a warning: symlinks pointing outside wp-content, device nodes and FIFOs.
//
// database.sql is checked on its way through (sql-guard.ts) and its sha256 taken, so the
// restore need not read it once more before the import. What one input chunk gives goes out
// as one chunk (a site of 200,000 small files is 600,000 headers, data and paddings), but for
// long runs of a member's data: those go on as slices of the input, never copied.

const TOP_FILES = new Set(['database.sql', 'manifest.json', 'wp-config.php', '.htaccess']);
const MAX_META = 1 << 20;
const RECORD = 10240;
const MAX_WARNINGS = 50;
const MAGIC = Buffer.from('ustar\0', 'latin1');
const ZERO_BLOCK = Buffer.alloc(BLOCK);
/** Room for what one input chunk gives beyond its own size (headers of pax members, the end). */
const OUT_SLACK = 16384;
/** Data runs from this long on go on as slices of the input; shorter ones are copied. */
const PASS_ON = 32768;
const EMPTY = Buffer.alloc(0);

export interface TarGuardOptions {
  /**
   * Who owns what lands under wp-content (the site's owner, for a restore as root); tar is
   * then run with --same-owner --numeric-owner. The archive's own owners never count.
   */
  owner?: { uid: number; gid: number };
}

export interface TarGuardReport {
  warnings: string[];
  /** Symlinks let through (archive names), for the check after extraction. */
  symlinks: string[];
  /** Of database.sql's content, once it went through (and passed sql-guard.ts's checks). */
  databaseSha256?: string;
}

interface Member {
  name: string;
  type: string;
  size: number;
  mode: number;
  mtimeNs: bigint;
  linkname: string;
}

function refuse(what: string): Error {
  return badInput(`The archive ${what}: refusing to restore it; it was not made by wpbackup or was altered`, 'Restore only archives wpbackup made; nothing was imported or moved into the site');
}

function text(b: Buffer, at: number, len: number): string {
  if (b[at] === 0) return '';
  let end = at;
  let ascii = true;
  for (const stop = at + len; end < stop; end++) {
    const c = b[end] as number;
    if (c === 0) break;
    if (c > 0x7f) ascii = false;
  }
  // ASCII is UTF-8 already; the decoder is for the rest (and refuses what is not UTF-8).
  return ascii ? b.toString('latin1', at, end) : utf8(b.subarray(at, end));
}

const decoder = new TextDecoder('utf-8', { fatal: true });
function utf8(b: Uint8Array): string {
  try {
    return decoder.decode(b);
  } catch {
    throw refuse('holds a member name that is not UTF-8');
  }
}

/** Octal, or GNU base-256 when the first byte has its high bit set. */
function numeric(b: Buffer, at: number, len: number): number {
  return plainOctal(b, at, at + len) ?? anyNumeric(b, at, len);
}

/**
 * The usual field, digits between optional spaces and ended by a NUL, read without a string
 * (a header has five numbers, a site hundreds of thousands of headers); undefined for anything
 * else, which anyNumeric() reads or refuses.
 */
function plainOctal(b: Buffer, i: number, end: number): number | undefined {
  let n = 0;
  while (i < end && b[i] === 0x20) i++;
  for (; i < end; i++) {
    const c = b[i] as number;
    if (c < 0x30 || c > 0x37) break;
    n = n * 8 + (c - 0x30);
  }
  while (i < end && b[i] === 0x20) i++;
  return i === end || b[i] === 0 ? n : undefined;
}

function anyNumeric(b: Buffer, at: number, len: number): number {
  const f = b.subarray(at, at + len);
  if ((f[0] as number) & 0x80) {
    let n = (f[0] as number) & 0x7f;
    for (let k = 1; k < f.length; k++) n = n * 256 + (f[k] as number);
    return n;
  }
  const s = f.toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw refuse(`has a header field that is not a number (${JSON.stringify(s)})`);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = numeric(h, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let k = 0; k < BLOCK; k++) {
    const v = k >= 148 && k < 156 ? 0x20 : (h[k] as number);
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return stored === unsigned || stored === signed;
}

function paxRecords(body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < body.length) {
    const sp = body.indexOf(0x20, at);
    const len = sp === -1 ? NaN : Number(body.subarray(at, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0 || at + len > body.length) throw refuse('has a damaged pax header');
    const rec = utf8(body.subarray(sp + 1, at + len - 1));
    const eq = rec.indexOf('=');
    if (eq === -1) throw refuse('has a damaged pax header');
    out.set(rec.slice(0, eq), rec.slice(eq + 1));
    at += len;
  }
  return out;
}

/** The member's path inside the archive, or undefined for the archive root ('./'). */
export function memberPath(raw: string): string | undefined {
  if (raw.includes('\0')) throw refuse(`has a member name with a NUL byte (${JSON.stringify(raw)})`);
  if (raw.startsWith('/')) throw refuse(`holds a member with an absolute name (${raw})`);
  const plain = raw.endsWith('/') ? raw.slice(0, -1) : raw;
  if (isPlainPath(plain)) return plain;
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw refuse(`holds a member whose name climbs out with '..' (${raw})`);
  return parts.length ? parts.join('/') : undefined;
}

/** No empty, '.' or '..' part: the name is its own path. */
function isPlainPath(s: string): boolean {
  if (s === '' || s === '.' || s.startsWith('./') || s.endsWith('/') || s.endsWith('/.') || s.includes('//') || s.includes('/./')) return false;
  return !s.includes('..') || !/(^|\/)\.\.(\/|$)/.test(s);
}

/** Whether a link at `name` pointing at `target` stays inside wp-content, read as plain paths. */
export function linkStaysInside(name: string, target: string): boolean {
  if (target === '' || target.startsWith('/')) return false;
  const resolved = posix.normalize(posix.join(posix.dirname(name), target));
  return resolved === 'wp-content' || resolved.startsWith('wp-content/');
}

interface DumpCheck {
  hash: Hash;
  scanner: SqlScanner;
}

type State = 'header' | 'meta' | 'data' | 'pad' | 'end';

/** Where TarFilter's output goes. */
export interface TarSink {
  write(b: Buffer): void;
  /** The end marker went out: tar needs nothing more (the rest of the input is ignored). */
  end(): void;
  /** write() is done with its buffer when it returns (a blocking write), so it may be reused. */
  readonly sync?: boolean;
}

/** The guard itself, fed chunk by chunk, for a stream (TarGuard) or a thread's blocking loop. */
export class TarFilter {
  readonly report: TarGuardReport = { warnings: [], symlinks: [] };
  #state: State = 'header';
  #pending: Buffer = EMPTY;
  #remaining = 0;
  #padSkip = 0;
  #keep = false;
  #dataSize = 0;
  #metaType = '';
  #pax = new Map<string, string>();
  #longName: string | undefined;
  #longLink: string | undefined;
  #links = new Set<string>();
  #out = 0;
  #current = '';
  #moreWarnings = 0;
  /** What the current input chunk gives, sent as one: headers are written straight into it. */
  #outBuf: Buffer = EMPTY;
  #outUsed = 0;
  /** Input bytes of the current chunk not yet taken: what the output may need room for. */
  #inLeft = 0;
  #dump: DumpCheck | undefined;
  readonly #owner: { uid: number; gid: number } | undefined;
  /** Dirs under wp-content tar was given, so it never makes one itself (owned by root). */
  readonly #dirs = new Set<string>();

  readonly #sink: TarSink;

  constructor(sink: TarSink, opts: TarGuardOptions = {}) {
    this.#sink = sink;
    this.#owner = opts.owner;
  }

  /** Takes the next input bytes; throws the refusal. With a sync sink, `chunk` may be reused after. */
  feed(chunk: Buffer): void {
    if (this.#state === 'end') return;
    // A stream keeps what was pushed: each chunk's output gets a buffer of its own.
    if (!this.#sink.sync) this.#outBuf = EMPTY;
    this.#outUsed = 0;
    this.#feed(chunk);
    this.#send();
  }

  /** The input ended; throws if the archive was cut short. */
  end(): void {
    if (this.#state !== 'end') {
      if (this.#state !== 'header' || this.#pending.length > 0 || this.#metaType) {
        throw refuse(`ends in the middle of ${this.#current ? `member ${this.#current}` : 'a header'}: it is truncated`);
      }
      this.#finish();
    }
    if (this.#moreWarnings) this.report.warnings.push(`... and ${this.#moreWarnings} more members left out the same way`);
    this.#moreWarnings = 0;
  }

  #send(): void {
    if (this.#outUsed === 0) return;
    const b = this.#outBuf.subarray(0, this.#outUsed);
    if (!this.#sink.sync) this.#outBuf = this.#outBuf.subarray(this.#outUsed);
    this.#outUsed = 0;
    this.#sink.write(b);
  }

  /** Makes room for `n` more bytes of output, sending what is there when it lacks. */
  #room(n: number): void {
    if (this.#outBuf.length - this.#outUsed >= n) return;
    this.#send();
    if (this.#outBuf.length >= n) return;
    this.#outBuf = Buffer.allocUnsafe(Math.max(n, this.#inLeft + OUT_SLACK));
  }

  /** Sends a long run of data as it is, after what is waiting. */
  #pass(b: Buffer): void {
    this.#send();
    this.#sink.write(b);
    this.#out += b.length;
  }

  #emit(b: Buffer): void {
    if (b.length === 0) return;
    this.#room(b.length);
    this.#outUsed += b.copy(this.#outBuf, this.#outUsed);
    this.#out += b.length;
  }

  #emitZeros(n: number): void {
    if (n === 0) return;
    this.#room(n);
    this.#outBuf.fill(0, this.#outUsed, this.#outUsed + n);
    this.#outUsed += n;
    this.#out += n;
  }

  #emitHeader(e: TarEntry): void {
    this.#room(BLOCK);
    if (!ustarInto(e, this.#outBuf, this.#outUsed)) return this.#emit(entryHeader(e));
    this.#outUsed += BLOCK;
    this.#out += BLOCK;
  }

  #warn(w: string): void {
    if (this.report.warnings.length < MAX_WARNINGS) this.report.warnings.push(w);
    else this.#moreWarnings++;
  }

  #feed(chunk: Buffer): void {
    let buf = chunk;
    let i = 0;
    if (this.#pending.length && this.#state === 'header') {
      // A header cut in two: only its own bytes are joined, not the whole chunk.
      const need = BLOCK - this.#pending.length;
      if (chunk.length < need) {
        this.#pending = Buffer.concat([this.#pending, chunk]);
        return;
      }
      const head = Buffer.concat([this.#pending, chunk.subarray(0, need)]);
      this.#pending = EMPTY;
      this.#inLeft = chunk.length;
      this.#header(head);
      i = need;
    } else if (this.#pending.length) buf = Buffer.concat([this.#pending, chunk]);
    while (i < buf.length) {
      const left = buf.length - i;
      this.#inLeft = left;
      if (this.#state === 'data') {
        const n = Math.min(this.#remaining, left);
        if (this.#keep && n >= PASS_ON) this.#pass(buf.subarray(i, i + n));
        else if (this.#keep) this.#emit(buf.subarray(i, i + n));
        if (this.#dump) this.#inspect(buf.subarray(i, i + n));
        this.#remaining -= n;
        i += n;
        if (this.#remaining === 0) this.#endData();
      } else if (this.#state === 'pad') {
        const n = Math.min(this.#padSkip, left);
        this.#padSkip -= n;
        i += n;
        if (this.#padSkip === 0) this.#state = 'header';
      } else if (this.#state === 'header') {
        if (left < BLOCK) break;
        this.#header(buf.subarray(i, i + BLOCK));
        i += BLOCK;
      } else if (this.#state === 'meta') {
        const total = this.#remaining + paddingLength(this.#remaining);
        if (left < total) break;
        this.#meta(buf.subarray(i, i + this.#remaining));
        i += total;
      } else {
        i = buf.length;
      }
    }
    buf = buf.subarray(i);
    this.#pending = buf.length ? Buffer.from(buf) : EMPTY;
  }

  #endData(): void {
    if (this.#keep) this.#emitZeros(paddingLength(this.#dataSize));
    if (this.#dump) this.#endDump();
    this.#padSkip = paddingLength(this.#dataSize);
    this.#state = this.#padSkip ? 'pad' : 'header';
  }

  /** The scanner's refusal names the line and stops the restore before anything is imported. */
  #inspect(data: Buffer): void {
    const d = this.#dump as DumpCheck;
    d.hash.update(data);
    d.scanner.push(data);
  }

  #endDump(): void {
    const d = this.#dump as DumpCheck;
    this.#dump = undefined;
    d.scanner.end();
    this.report.databaseSha256 = d.hash.digest('hex');
  }

  #header(h: Buffer): void {
    if (h[0] === 0 && h.equals(ZERO_BLOCK)) {
      if (this.#metaType || this.#pax.size || this.#longName !== undefined) throw refuse('ends right after an extended header');
      this.#finish();
      return;
    }
    if (!checksumOk(h)) throw refuse(`has a damaged header${this.#current ? ` after member ${this.#current}` : ''}: it is not a tar archive or is corrupt`);
    const type = h[156] === 0 ? '0' : String.fromCharCode(h[156] as number);
    const size = numeric(h, 124, 12);
    if (type === 'g') throw refuse('has a global pax header, which wpbackup never writes');
    if (type === 'x' || type === 'L' || type === 'K') {
      if (size > MAX_META) throw refuse(`has an extended header of ${size} bytes`);
      this.#metaType = type;
      this.#remaining = size;
      this.#state = 'meta';
      return;
    }
    const ustar = MAGIC.compare(h, 257, 263) === 0;
    const prefix = ustar ? text(h, 345, 155) : '';
    const plainName = prefix ? `${prefix}/${text(h, 0, 100)}` : text(h, 0, 100);
    const paxSize = this.#pax.get('size');
    const m: Member = {
      name: this.#pax.get('path') ?? this.#longName ?? plainName,
      type,
      size: paxSize !== undefined ? Number(paxSize) : size,
      mode: numeric(h, 100, 8),
      mtimeNs: this.#mtime(h),
      linkname: this.#pax.get('linkpath') ?? this.#longLink ?? text(h, 157, 100),
    };
    if (!Number.isSafeInteger(m.size) || m.size < 0) throw refuse(`gives member ${m.name} a bad size`);
    this.#pax.clear();
    this.#longName = undefined;
    this.#longLink = undefined;
    this.#current = m.name;
    this.#member(m);
  }

  #mtime(h: Buffer): bigint {
    const pax = this.#pax.get('mtime');
    if (pax !== undefined && /^\d{1,12}(\.\d{1,9})?$/.test(pax)) {
      const [s, frac = ''] = pax.split('.');
      return BigInt(s as string) * 1_000_000_000n + BigInt(frac.padEnd(9, '0'));
    }
    return BigInt(numeric(h, 136, 12)) * 1_000_000_000n;
  }

  #meta(body: Buffer): void {
    const type = this.#metaType;
    this.#metaType = '';
    this.#state = 'header';
    if (type === 'L') this.#longName = text(body, 0, body.length);
    else if (type === 'K') this.#longLink = text(body, 0, body.length);
    else {
      for (const [k, v] of paxRecords(body)) {
        if (k.startsWith('GNU.sparse')) throw refuse('holds a sparse file, which wpbackup never writes');
        this.#pax.set(k, v);
      }
    }
  }

  #member(m: Member): void {
    const path = memberPath(m.name);
    const decision = path === undefined ? 'skip' : this.#decide(path, m);
    if (decision === 'skip' || path === undefined) return this.#data(false, m.size);
    const type: EntryType = decision;
    const mode = m.mode & 0o777;
    if (type === 'file' && m.mode & 0o6000) this.#warn(`${path} had the setuid/setgid bit; restored without it`);
    const owner = path === 'wp-content' || path.startsWith('wp-content/') ? this.#owner : undefined;
    if (owner) this.#parentDirs(path, m.mtimeNs, owner);
    const entry: TarEntry = { name: path, type, size: type === 'file' ? m.size : 0, mode, uid: owner?.uid ?? 0, gid: owner?.gid ?? 0, uname: '', gname: '', mtimeNs: m.mtimeNs };
    if (type === 'symlink') {
      entry.linkname = m.linkname;
      this.#links.add(path);
      this.report.symlinks.push(path);
    }
    if (owner && type === 'dir') this.#dirs.add(path);
    this.#emitHeader(entry);
    // A later database.sql replaces an earlier one on disk, so the last one counts.
    if (path === 'database.sql') this.#dump = { hash: createHash('sha256'), scanner: new SqlScanner() };
    if (type === 'file') this.#data(true, m.size);
    else this.#data(false, m.size);
  }

  /**
   * A header for each dir above `path` not given yet, so tar makes none itself: with an owner,
   * tar's own would belong to root. (Parents under a symlink were refused by #decide.)
   */
  #parentDirs(path: string, mtimeNs: bigint, owner: { uid: number; gid: number }): void {
    for (let at = path.indexOf('/'); at !== -1; at = path.indexOf('/', at + 1)) {
      const dir = path.slice(0, at);
      if (this.#dirs.has(dir)) continue;
      this.#dirs.add(dir);
      this.#emitHeader({ name: dir, type: 'dir', size: 0, mode: 0o755, uid: owner.uid, gid: owner.gid, uname: '', gname: '', mtimeNs });
    }
  }

  #data(keep: boolean, size: number): void {
    this.#keep = keep;
    this.#dataSize = size;
    this.#remaining = size;
    if (size === 0) this.#endData();
    else this.#state = 'data';
  }

  /** What tar gets for this member: its type, 'skip', or a refusal. */
  #decide(path: string, m: Member): EntryType | 'skip' {
    const parts = path.split('/');
    if (this.#links.size) this.#underLink(path);
    const top = parts[0] as string;
    if (m.type === '1') throw refuse(`holds a hard link (${path} -> ${m.linkname}); wpbackup archives hold none`);
    if (parts.length === 1 && TOP_FILES.has(top)) {
      if (m.type === '0' || m.type === '7') return 'file';
      if (m.type === '2' && (top === 'wp-config.php' || top === '.htaccess')) {
        this.#warn(`the archive's ${top} is a link to ${m.linkname}; it was not restored`);
        return 'skip';
      }
      throw refuse(`holds ${path} as something other than a plain file`);
    }
    if (top !== 'wp-content') throw refuse(`holds ${path}, which is not part of a wpbackup archive (database.sql, manifest.json, wp-config.php, .htaccess, wp-content/)`);
    if (parts.length === 1) {
      if (m.type === '5') return 'dir';
      throw refuse('holds wp-content as something other than a directory');
    }
    switch (m.type) {
      case '0':
      case '7':
        return 'file';
      case '5':
        return 'dir';
      case '2':
        if (m.linkname.includes('\0')) throw refuse(`holds a link with a NUL byte in its target (${path})`);
        if (linkStaysInside(path, m.linkname)) return 'symlink';
        this.#warn(`${path} is a link to ${m.linkname}, outside wp-content; it was not restored`);
        return 'skip';
      case '3':
      case '4':
      case '6':
        this.#warn(`${path} is a ${m.type === '6' ? 'FIFO' : 'device node'}; it was not restored`);
        return 'skip';
      default:
        throw refuse(`holds ${path} of tar type '${m.type}', which wpbackup never writes`);
    }
  }

  #underLink(path: string): void {
    for (let at = path.indexOf('/'); ; at = path.indexOf('/', at + 1)) {
      const up = at === -1 ? path : path.slice(0, at);
      if (this.#links.has(up)) throw refuse(`holds ${path}, which lies at or under the symlink ${up} it made before`);
      if (at === -1) return;
    }
  }

  #finish(): void {
    this.#state = 'end';
    this.#pending = EMPTY;
    this.#emit(END_OF_ARCHIVE);
    // Whole records, as tar itself writes them.
    this.#emitZeros((RECORD - (this.#out % RECORD)) % RECORD);
    this.#send();
    // End tar's input now: tar stops at the end marker and may exit before the (ignored) rest
    // of the stream has come through; its stdin must not be closed under a pending write.
    this.#sink.end();
  }
}

/** TarFilter as a stream: zstd's output in, what tar may see out. */
export class TarGuard extends Transform {
  readonly #filter: TarFilter;

  constructor(opts: TarGuardOptions = {}) {
    super();
    this.#filter = new TarFilter({ write: (b) => void this.push(b), end: () => void this.push(null) }, opts);
  }

  get report(): TarGuardReport {
    return this.#filter.report;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#filter.feed(chunk);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.#filter.end();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}
