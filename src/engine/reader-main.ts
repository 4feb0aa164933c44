import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { describe, kindOf } from '../errors.ts';
import { ExcludeMatcher } from './excludes.ts';
import { isCompressedMedia } from './media.ts';
import { Prefetcher } from './prefetch.ts';
import { dropPrivileges } from './privileges.ts';
import { READER_FD, type ReaderEvent, type ReaderJob } from './reader-process.ts';
import { StoredFrameSink } from './stored-frame.ts';
import { SyncSink, writeAll } from './sync-sink.ts';
import { emptyTarStats, writeTar } from './tar-stream.ts';
import { sizeAndStore, writeTree } from './tree-tar.ts';

// The reader process (see reader-process.ts): the job on stdin, tar entries out on
// READER_FD's descriptors, events as JSON lines. wp-content is read with blocking calls
// (tree-tar.ts); the descriptors are blocking pipes, so a full one simply waits.

const PROGRESS_EVERY = 1 << 20;

function emit(e: ReaderEvent): void {
  writeAll(READER_FD.events, Buffer.from(JSON.stringify(e) + '\n'));
}

async function readJob(): Promise<ReaderJob> {
  let text = '';
  for await (const chunk of process.stdin.setEncoding('utf8')) text += chunk as string;
  return JSON.parse(text) as ReaderJob;
}

function readTree(job: ReaderJob, onBytes: (n: number) => void, flush: () => void): void {
  const src = { name: 'wp-content', root: job.wpContent, matcher: new ExcludeMatcher(job.patterns) };
  const stats = emptyTarStats();
  const sink = job.storeMedia ? new StoredFrameSink(READER_FD.stored) : undefined;
  const stored = sink && { sink, match: isCompressedMedia };
  const ahead = new Prefetcher();
  const since = Date.now();
  // File times come from a coarse clock, up to a tick behind: a change once the pass is under
  // way must get a ctime after `since`, so the pass starts two ticks later.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  const totals = sizeAndStore(src, stats, onBytes, stored, ahead);
  if (sink) {
    sink.end();
    // Closed, so the upload's read of the stored frame ends and it goes on to zstd's.
    closeSync(READER_FD.stored);
  }
  flush();
  emit({ t: 'totals', ...totals });
  writeTree(src, new SyncSink(READER_FD.main), stats, onBytes, stored && { match: stored.match, since }, ahead);
  closeSync(READER_FD.main);
  void ahead.close();
  flush();
  emit({ t: 'tree', stats });
}

async function run(): Promise<void> {
  const job = await readJob();
  if (job.runAs) dropPrivileges(job.runAs);
  let pending = 0;
  const flush = (): void => {
    if (pending) emit({ t: 'bytes', n: pending });
    pending = 0;
  };
  const onBytes = (n: number): void => {
    pending += n;
    if (pending >= PROGRESS_EVERY) flush();
  };
  readTree(job, onBytes, flush);
  const config = job.configFiles.map((c) => ({ kind: 'file' as const, ...c, site: job.sitePath }));
  const configStats = await writeTar(config, new Socket({ fd: READER_FD.config, readable: false, writable: true }), { onBytes, endOfArchive: false });
  flush();
  emit({ t: 'config', stats: configStats });
}

try {
  await run();
} catch (err) {
  emit({ t: 'error', kind: kindOf(err), message: describe(err) });
  process.exitCode = 1;
}
// Descriptors left open by a failure would keep the process alive.
process.exit();
