// POSIX pax/ustar headers. Names that do not fit ustar (long, non-ASCII) and sizes past
// 8 GiB go into a pax extended header, which GNU tar, bsdtar and Python's tarfile all read.

export type EntryType = 'file' | 'dir' | 'symlink';

export interface TarEntry {
  name: string; // relative, '/'-separated; dirs without the trailing slash
  type: EntryType;
  size: number; // 0 unless file
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Nanoseconds since the epoch; kept exactly through a pax header. */
  mtimeNs: bigint;
  linkname?: string;
}

export const BLOCK = 512;
const NS = 1_000_000_000n;
const TYPEFLAG: Record<EntryType, string> = { file: '0', dir: '5', symlink: '2' };
const MAX_OCTAL_SIZE = 0o77777777777;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function isPlainAscii(s: string, max: number): boolean {
  return Buffer.byteLength(s) <= max && /^[\x20-\x7e]*$/.test(s);
}

function ustar(e: TarEntry, name: string, linkname: string, size: number, typeflag: string): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(Math.min(e.uid, 0o7777777), 8), 108, 'ascii');
  h.write(octal(Math.min(e.gid, 0o7777777), 8), 116, 'ascii');
  h.write(octal(Math.min(size, MAX_OCTAL_SIZE), 12), 124, 'ascii');
  h.write(octal(Math.max(0, Number(e.mtimeNs / NS)), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(typeflag, 156, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0' + '00', 257, 'ascii');
  h.write(e.uname.slice(0, 31), 265, 'utf8');
  h.write(e.gname.slice(0, 31), 297, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7), 148, 'ascii');
  return h;
}

function paxRecord(key: string, value: string): string {
  // The length prefix counts itself, so find the fixed point.
  const body = ` ${key}=${value}\n`;
  const bytes = Buffer.byteLength(body);
  let len = bytes + String(bytes).length;
  if (String(len).length > String(bytes).length) len = bytes + String(len).length;
  return `${len}${body}`;
}

export function padding(size: number): Buffer {
  const rem = size % BLOCK;
  return rem === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rem);
}

/** The header block(s) for an entry: a pax header first when ustar cannot hold it. */
export function entryHeader(e: TarEntry): Buffer {
  const name = e.type === 'dir' ? `${e.name}/` : e.name;
  const link = e.linkname ?? '';
  let pax = '';
  if (!isPlainAscii(name, 100)) pax += paxRecord('path', name);
  if (!isPlainAscii(link, 100)) pax += paxRecord('linkpath', link);
  if (e.size > MAX_OCTAL_SIZE) pax += paxRecord('size', String(e.size));
  if (e.mtimeNs % NS !== 0n && e.mtimeNs > 0n) pax += paxRecord('mtime', `${e.mtimeNs / NS}.${String(e.mtimeNs % NS).padStart(9, '0')}`);
  const main = ustar(e, name, link, e.size, TYPEFLAG[e.type]);
  if (!pax) return main;
  const paxBody = Buffer.from(pax, 'utf8');
  const paxHead = ustar({ ...e, type: 'file' }, 'PaxHeader', '', paxBody.length, 'x');
  return Buffer.concat([paxHead, paxBody, padding(paxBody.length), main]);
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);
