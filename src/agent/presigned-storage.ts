import type { Readable } from 'node:stream';
import { badInput, failure, throwIfStopped } from '../errors.ts';
import { uploadMultipart } from '../storage/multipart.ts';
import type { ObjectInfo, PendingUpload, PutOptions, PutResult, Storage } from '../storage/storage.ts';
import type { AgentClient } from './client.ts';
import { PresignedPartSink } from './presigned-sink.ts';

// The agent's storage for one job: it can only write the one object the server chose, through
// part URLs the server signs, and the server completes and checks it. Reading, listing and
// deleting are the server's business, so they are refused here.

export interface PresignedStorageOptions {
  partSize?: number;
  concurrency?: number;
  /** Part URLs fetched per request. */
  urlBatch?: number;
  retryDelayMs?: number;
}

function refuse(what: string): never {
  throw badInput(`An agent cannot ${what}: only the control server reads, lists and deletes stored backups`);
}

export class PresignedStorage implements Storage {
  readonly location: string;
  private readonly client: AgentClient;
  private readonly jobId: string;
  private readonly key: string;
  private readonly opts: PresignedStorageOptions;

  constructor(client: AgentClient, job: { jobId: string; key: string }, opts: PresignedStorageOptions = {}) {
    this.client = client;
    this.jobId = job.jobId;
    this.key = job.key;
    this.opts = opts;
    this.location = `${client.server} (storage chosen by the server)`;
  }

  async preflight(): Promise<void> {
    // The server checked its storage when it handed out the job.
  }

  async put(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    try {
      if (key !== this.key) throw failure(`The backup wanted to store "${key}" but the server chose "${this.key}"`);
      throwIfStopped(opts.signal);
      const { upload_id: uploadId } = await this.client.uploadStart(this.jobId, opts.signal);
      await opts.onUploadStarted?.({ backend: 's3', key, uploadId });
      const sink = new PresignedPartSink(this.client, this.jobId, { batch: this.opts.urlBatch });
      const result = await uploadMultipart(body, sink, {
        partSize: this.opts.partSize, concurrency: this.opts.concurrency, retryDelayMs: this.opts.retryDelayMs,
        sizeHint: opts.sizeHint, signal: opts.signal, onProgress: opts.onProgress,
      });
      const parts = (sink.completed ?? []).map((p) => ({ part_number: p.partNumber, etag: p.etag }));
      try {
        // Not cancelled by a stop: the object is being committed.
        await this.client.uploadComplete(this.jobId, { parts, size: result.size, sha256: result.sha256 });
      } catch (err) {
        await this.client.uploadAbort(this.jobId).catch(() => undefined);
        throw err;
      }
      return { key, size: result.size, sha256: result.sha256 };
    } catch (err) {
      body.destroy();
      throw err;
    }
  }

  async get(_key: string, _opts?: { signal?: AbortSignal }): Promise<Readable> {
    refuse('download backups');
  }

  async head(_key: string): Promise<ObjectInfo | undefined> {
    refuse('inspect stored backups');
  }

  async list(_prefix: string): Promise<ObjectInfo[]> {
    refuse('list stored backups');
  }

  async delete(_key: string): Promise<void> {
    refuse('delete stored backups');
  }

  async presignGet(_key: string, _expiresInSeconds: number): Promise<string> {
    refuse('make download links');
  }

  /** The server aborts uploads of jobs that ended without completing them. */
  async abortPending(_pending: PendingUpload): Promise<void> {}
}
