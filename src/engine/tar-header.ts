import type { BigIntStats } from 'node:fs';
import { groupName, userName } from './owners.ts';

// POSIX pax/ustar headers. Names that do not fit ustar (long, non-ASCII) and sizes past
// 8 GiB go into a pax extended header, which GNU tar, bsdtar and Python's tarfile all read.
// Times are kept to the second, as GNU tar's own format keeps them: a pax header for the
// nanoseconds would add 1 KiB to every entry, uncompressed in the stored frame. An entry
// that has a pax header anyway (a long name) gets its nanoseconds there.

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
  if (s.length > max) return false;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/**
 * `n` in octal, zero-padded to `width - 1` digits and a NUL, as octal() spells it, written byte
 * by byte: a header is written for every file of a site, so no string per field.
 */
function putOctal(h: Buffer, at: number, n: number, width: number): void {
  const digits = width - 1;
  if (n >= 8 ** digits) {
    h.write(octal(n, width), at, 'ascii');
    return;
  }
  h[at + digits] = 0;
  for (let k = digits - 1; k >= 0; k--) {
    h[at + k] = 0x30 + (n % 8);
    n = Math.floor(n / 8);
  }
}

/** Writes an ASCII string (checked by the caller) at `at`, up to `max` bytes. */
function putAscii(h: Buffer, at: number, s: string, max: number): void {
  const n = Math.min(s.length, max);
  for (let k = 0; k < n; k++) h[at + k] = s.charCodeAt(k);
}

const MAGIC = Buffer.from('ustar\x0000', 'latin1');

function ustar(e: TarEntry, name: string, linkname: string, size: number, typeflag: string, h: Buffer = Buffer.alloc(BLOCK), at = 0): Buffer {
  h.fill(0, at, at + BLOCK);
  if (isAscii(name)) putAscii(h, at, name, 100);
  else h.write(name, at, 100, 'utf8');
  putOctal(h, at + 100, e.mode & 0o7777, 8);
  putOctal(h, at + 108, Math.min(e.uid, 0o7777777), 8);
  putOctal(h, at + 116, Math.min(e.gid, 0o7777777), 8);
  putOctal(h, at + 124, Math.min(size, MAX_OCTAL_SIZE), 12);
  putOctal(h, at + 136, Math.max(0, Number(e.mtimeNs / NS)), 12);
  h.fill(0x20, at + 148, at + 156);
  h[at + 156] = typeflag.charCodeAt(0);
  if (linkname) h.write(linkname, at + 157, 100, 'utf8');
  MAGIC.copy(h, at + 257);
  if (e.uname) h.write(e.uname.slice(0, 31), at + 265, 'utf8');
  if (e.gname) h.write(e.gname.slice(0, 31), at + 297, 'utf8');
  let sum = 0;
  for (let i = at; i < at + BLOCK; i++) sum += h[i] as number;
  putOctal(h, at + 148, sum, 7);
  return h;
}

function isAscii(s: string): boolean {
  for (let k = 0; k < s.length; k++) if (s.charCodeAt(k) > 0x7f) return false;
  return true;
}

function paxRecord(key: string, value: string): string {
  // The length prefix counts itself, so find the fixed point.
  const body = ` ${key}=${value}\n`;
  const bytes = Buffer.byteLength(body);
  let len = bytes + String(bytes).length;
  if (String(len).length > String(bytes).length) len = bytes + String(len).length;
  return `${len}${body}`;
}

/** Zero bytes after `size` bytes of content, up to the next block. */
export function paddingLength(size: number): number {
  const rem = size % BLOCK;
  return rem === 0 ? 0 : BLOCK - rem;
}

const ZEROS = Buffer.alloc(BLOCK);

/** The padding itself: a view of one shared block of zeros, never to be written into. */
export function padding(size: number): Buffer {
  return ZEROS.subarray(0, paddingLength(size));
}

function paxRecords(e: TarEntry, name: string, link: string): string {
  let pax = '';
  if (!isPlainAscii(name, 100)) pax += paxRecord('path', name);
  if (!isPlainAscii(link, 100)) pax += paxRecord('linkpath', link);
  if (e.size > MAX_OCTAL_SIZE) pax += paxRecord('size', String(e.size));
  // Free once there is a pax header anyway; and GNU tar --compare of a pax member wants it.
  if (pax && e.mtimeNs % NS !== 0n && e.mtimeNs > 0n) pax += paxRecord('mtime', `${e.mtimeNs / NS}.${String(e.mtimeNs % NS).padStart(9, '0')}`);
  return pax;
}

/** The header block(s) for an entry: a pax header first when ustar cannot hold it. */
export function entryHeader(e: TarEntry): Buffer {
  const name = e.type === 'dir' ? `${e.name}/` : e.name;
  const link = e.linkname ?? '';
  const pax = paxRecords(e, name, link);
  const main = ustar(e, name, link, e.size, TYPEFLAG[e.type]);
  if (!pax) return main;
  const paxBody = Buffer.from(pax, 'utf8');
  const paxHead = ustar({ ...e, type: 'file' }, 'PaxHeader', '', paxBody.length, 'x');
  return Buffer.concat([paxHead, paxBody, padding(paxBody.length), main]);
}

/**
 * Writes the entry's one ustar block into `to` at `at` and returns true, or returns false
 * (writing nothing) when the entry needs a pax header: entryHeader() then. Spares the
 * allocations of entryHeader for the usual entry.
 */
export function ustarInto(e: TarEntry, to: Buffer, at: number): boolean {
  const name = e.type === 'dir' ? `${e.name}/` : e.name;
  const link = e.linkname ?? '';
  if (paxRecords(e, name, link)) return false;
  ustar(e, name, link, e.size, TYPEFLAG[e.type], to, at);
  return true;
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);

/** The entry for what stats describe, stored under `name`. */
export function entryFor(item: { type: EntryType; stats: BigIntStats; linkname?: string }, name: string, size: number): TarEntry {
  const st = item.stats;
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  return { name, type: item.type, size, mode: Number(st.mode), uid, gid, uname: userName(uid), gname: groupName(gid), mtimeNs: st.mtimeNs, linkname: item.linkname };
}
