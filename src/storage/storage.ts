import type { Readable } from 'node:stream';

// The narrow interface every storage backend implements, and the one conformance suite
// (test/storage/conformance.ts) checks. Keys are '/'-separated, relative, never start with '/'
// and never contain '..' segments.

export interface ObjectInfo {
  key: string;
  size: number;
  modified: Date;
}

export interface PutResult {
  key: string;
  size: number;
  /** Hex sha256 of the bytes stored, computed while streaming. */
  sha256: string;
}

export interface PutOptions {
  signal?: AbortSignal;
  /** Expected size, when known roughly: lets multipart pick a part size that fits. */
  sizeHint?: number;
  /** Called with the running count of bytes durably accepted by the backend. */
  onProgress?: (bytesStored: number) => void;
  /**
   * Called once the backend knows how to find the incomplete upload (the multipart
   * upload id for S3), so a crashed run's successor can clean it up.
   */
  onUploadStarted?: (pending: PendingUpload) => void | Promise<void>;
}

/** An upload that did not finish; enough to clean it up later. */
export interface PendingUpload {
  backend: 'local' | 's3';
  key: string;
  /** S3 multipart upload id, or the local temp file name. */
  uploadId: string;
}

export interface Storage {
  /** A human-readable location such as s3://bucket/prefix or /var/backups. */
  readonly location: string;
  /** Streams body into key. Only returns after the stored object's size was checked. */
  put(key: string, body: Readable, opts?: PutOptions): Promise<PutResult>;
  get(key: string, opts?: { signal?: AbortSignal }): Promise<Readable>;
  /** Object info, or undefined when there is no such object. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** All objects whose key starts with prefix, sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Removes key; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** A URL anyone can GET the object with until it expires. */
  presignGet(key: string, expiresInSeconds: number): Promise<string>;
  /** Cleans up what a crashed put left behind. Missing uploads are not an error. */
  abortPending(pending: PendingUpload): Promise<void>;
  /**
   * A fast check that the destination is usable (directory writable; bucket reachable with
   * these credentials), so a backup fails in seconds with a bad_input error before any work.
   */
  preflight(): Promise<void>;
  /** Releases what it holds open between calls (an S3 client's connections); absent when nothing is. */
  close?(): void;
}
