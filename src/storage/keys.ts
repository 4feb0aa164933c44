import { hasControlChars } from '../api/formats.ts';
import { badInput, type WpbError } from '../errors.ts';

// The key rules every backend shares, so a key means the same thing in a directory and in S3.

const MAX_KEY_BYTES = 1024;

/**
 * Throws bad_input unless key is a relative '/'-separated key without empty, '.' or '..'
 * segments or control characters. Shared by every backend so keys behave the same everywhere.
 */
export function validateKey(key: string): void {
  const bad = (why: string): WpbError => badInput(`Invalid storage key ${JSON.stringify(key)}: ${why}`, 'Use a relative key like "site/2024-01-01.tar.zst"');
  if (typeof key !== 'string' || key === '') throw bad('it is empty');
  if (key.startsWith('/')) throw bad('it must not be absolute');
  if (hasControlChars(key)) throw bad('it must not contain control characters');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw bad(`it is longer than ${MAX_KEY_BYTES} bytes`);
  for (const segment of key.split('/')) {
    if (segment === '') throw bad('it must not contain empty segments');
    if (segment === '.' || segment === '..') throw bad(`it must not contain "${segment}" segments`);
  }
}

/** A list prefix may end in '/' or mid-name; it is valid when a key extending it can be. */
export function validatePrefix(prefix: string): void {
  if (prefix !== '') validateKey(`${prefix}x`);
}

/** Keys sort by their UTF-8 bytes, the order S3 lists in. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function checkExpiry(seconds: number): void {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 604_800) {
    throw badInput(`URL expiry of ${seconds} seconds is out of range`, 'Use 1 second to 7 days (604800)');
  }
}
