import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ensureDataDir } from '../../datadir.ts';
import { createSecretFile, readSecretFile } from '../../secret-file.ts';
import { badInput, failure } from '../../errors.ts';

// Storage credentials are stored encrypted (AES-256-GCM) under one 32-byte key: given by
// WPBACKUP_SECRET_KEY (base64), or generated at first start into <data dir>/secret.key, 0600.
// Several servers sharing one PostgreSQL must share the key, so they set the variable.

export const SECRET_KEY_FILE = 'secret.key';
export const SECRET_KEY_ENV = 'WPBACKUP_SECRET_KEY';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT = 'v1';

export interface SecretKeyOptions {
  dataDir: string;
  env?: NodeJS.ProcessEnv;
}

export function loadSecretKey(opts: SecretKeyOptions): Buffer {
  const fromEnv = (opts.env ?? process.env)[SECRET_KEY_ENV];
  if (fromEnv) return decodeKey(fromEnv, SECRET_KEY_ENV);
  const file = join(ensureDataDir(opts.dataDir), SECRET_KEY_FILE);
  return readKeyFile(file) ?? createKeyFile(file);
}

export function openSecretBox(opts: SecretKeyOptions): SecretBox {
  return new SecretBox(loadSecretKey(opts));
}

/** A fresh key in the form WPBACKUP_SECRET_KEY takes. */
export function newSecretKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

function decodeKey(text: string, source: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEY_BYTES) throw badInput(`${source} is not a base64 ${KEY_BYTES}-byte key`, 'Make one with: openssl rand -base64 32');
  return key;
}

function readKeyFile(file: string): Buffer | undefined {
  const text = readSecretFile(file, 'secret key');
  return text === undefined ? undefined : decodeKey(text, file);
}

function createKeyFile(file: string): Buffer {
  return decodeKey(createSecretFile(file, 'secret key', randomBytes(KEY_BYTES).toString('base64') + '\n'), file);
}

/**
 * Encrypts short secrets to a text blob "v1.<key id>.<base64 iv|tag|ciphertext>". The context
 * (e.g. "storage_providers:<id>") is bound as associated data, so a blob copied to another
 * row does not decrypt.
 */
export class SecretBox {
  readonly keyId: string;
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw failure(`A secret key must be ${KEY_BYTES} bytes`);
    this.#key = Buffer.from(key);
    this.keyId = createHash('sha256').update('wpbackup key id\0').update(key).digest('hex').slice(0, 8);
  }

  encrypt(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv).setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${FORMAT}.${this.keyId}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
  }

  decrypt(blob: string, context: string): string {
    const [format, keyId, data] = blob.split('.');
    if (format !== FORMAT || !keyId || data === undefined) throw failure('An encrypted secret is not in a known format');
    if (keyId !== this.keyId) {
      throw failure(`A secret was encrypted with another key (${keyId}, this server has ${this.keyId})`, undefined, `Give every server the same ${SECRET_KEY_ENV}`);
    }
    const raw = Buffer.from(data, 'base64');
    try {
      if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('too short');
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(context)).setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw failure('A secret failed its integrity check: it was altered or belongs to another record', err);
    }
  }

  /**
   * A 32-byte key for another purpose, named by info, derived (HKDF-SHA256) from this box's key:
   * every server sharing the secret key derives the same one, and it reveals nothing of the box's.
   */
  deriveKey(info: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#key, Buffer.alloc(0), info, KEY_BYTES));
  }
}
