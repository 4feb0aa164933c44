import type { CompletedPart } from './multipart.ts';

// The control server's half of an upload through presigned part URLs, whatever the storage:
// it creates the upload, signs one URL per part for the agent (which holds no credentials),
// completes or aborts it, and checks the stored object. S3 (s3-multipart-server.ts) and a
// local directory served by the server itself (local-multipart-server.ts) implement it.

export interface ServerMultipart {
  /** Where objects go, for messages. */
  readonly location: string;
  create(key: string): Promise<string>;
  /** partSize, when given, binds each URL to a body of exactly that many bytes. */
  presignParts(key: string, uploadId: string, partNumbers: number[], expiresInSeconds: number, partSize?: number): Promise<Record<string, string>>;
  complete(key: string, uploadId: string, parts: CompletedPart[], expect: { size: number; sha256: string }): Promise<void>;
  /** Missing uploads are not an error. */
  abort(key: string, uploadId: string): Promise<void>;
  head(key: string): Promise<{ size: number } | undefined>;
  delete(key: string): Promise<void>;
  /** Releases its connections; it cannot be used afterwards. */
  close(): void;
}
