// What an S3 client is made from, shared by the settings readers (s3-config.ts), the storage
// (s3.ts) and the server's multipart half (s3-multipart-server.ts). Types only: the modules
// that fill and read these settings need not import each other.

/** The name of the variable or file field behind each setting, for error hints. */
export interface SettingNames {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  bucket: string;
}

export interface S3StorageOptions {
  endpoint?: string;
  region: string;
  bucket: string;
  /** Prepended to every key; '' or ending in '/'. */
  prefix?: string;
  forcePathStyle: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Minimum part size (S3 needs at least 5 MiB for all parts but the last). */
  partSize?: number;
  concurrency?: number;
  /** Where each setting came from, so errors name the variable to fix. */
  names?: Partial<SettingNames>;
}
