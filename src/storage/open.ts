import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { badInput } from '../errors.ts';
import { LocalStorage } from './local.ts';
import type { LocalSigner } from './local.ts';
import type * as S3Module from './s3.ts';
import { s3StorageOptions } from './s3-config.ts';
import type { Storage } from './storage.ts';

// One place that turns a destination string into a Storage. The S3 backend (and with it the
// AWS SDK, a quarter of a second to load) is loaded only for an s3:// destination; require()
// keeps openStorage synchronous and returns the same module instance an import would.

const require = createRequire(import.meta.url);
const s3Module = (): typeof S3Module => require('./s3.ts') as typeof S3Module;

export interface OpenStorageOptions {
  /** Where S3 settings are read from; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** A JSON file with S3 settings (overrides WPBACKUP_S3_CONFIG). */
  s3ConfigFile?: string;
  /** Signs URLs for local objects (the server serves them); file:// URLs otherwise. */
  presignLocal?: LocalSigner;
}

const FORMS = 'Use a directory path (/var/backups or ./backups) or s3://bucket/prefix';

/** A plain path is a local directory, s3://bucket[/prefix] is S3; other URLs are refused. */
export function openStorage(dest: string, opts: OpenStorageOptions = {}): Storage {
  if (dest.trim() === '') throw badInput('The destination is empty', FORMS);
  // Anything that starts like a URL scheme is taken as one, so "ftp://x" or "s3:/x" never
  // quietly becomes a local directory. A relative directory with a colon can use ./ first.
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(dest)?.[1]?.toLowerCase();
  if (scheme === undefined) return new LocalStorage(resolve(dest), { presign: opts.presignLocal });
  if (scheme === 's3' && /^s3:\/\//i.test(dest)) {
    return new (s3Module().S3Storage)(s3StorageOptions(dest, { env: opts.env, configFile: opts.s3ConfigFile }));
  }
  throw badInput(`Destination "${dest}" is not supported`, FORMS);
}
