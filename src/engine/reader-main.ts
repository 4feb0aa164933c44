import { Socket } from 'node:net';
import { describe, kindOf } from '../errors.ts';
import { ExcludeMatcher } from './excludes.ts';
import { isCompressedMedia } from './media.ts';
import { dropPrivileges } from './privileges.ts';
import { READER_FD, type ReaderEvent, type ReaderJob } from './reader-process.ts';
import { writeTar } from './tar-stream.ts';

// The reader process (see reader-process.ts), started by the backup as the site's owner:
// the job on stdin, tar entries out on READER_FD's descriptors, events as JSON lines.

const PROGRESS_EVERY = 1 << 20;

function out(fd: number): Socket {
  return new Socket({ fd, readable: false, writable: true });
}

async function readJob(): Promise<ReaderJob> {
  let text = '';
  for await (const chunk of process.stdin.setEncoding('utf8')) text += chunk as string;
  return JSON.parse(text) as ReaderJob;
}

async function run(emit: (e: ReaderEvent) => void): Promise<void> {
  const job = await readJob();
  dropPrivileges(job.runAs);
  let pending = 0;
  const flush = (): void => {
    if (pending) emit({ t: 'bytes', n: pending });
    pending = 0;
  };
  const onBytes = (n: number): void => {
    pending += n;
    if (pending >= PROGRESS_EVERY) flush();
  };
  const storedOut = out(READER_FD.stored);
  const storedDone = (): void => (flush(), emit({ t: 'stored' }));
  const stored = job.storeMedia ? { out: storedOut, match: isCompressedMedia, onDone: storedDone } : undefined;
  if (!stored) storedOut.end(storedDone);
  const tree = [{ kind: 'tree' as const, name: 'wp-content', root: job.wpContent, matcher: new ExcludeMatcher(job.patterns) }];
  const treeStats = await writeTar(tree, out(READER_FD.main), { onBytes, stored, endOfArchive: false });
  flush();
  emit({ t: 'tree', stats: treeStats });
  const config = job.configFiles.map((c) => ({ kind: 'file' as const, ...c, site: job.sitePath }));
  const configStats = await writeTar(config, out(READER_FD.config), { onBytes, endOfArchive: false });
  flush();
  emit({ t: 'config', stats: configStats });
}

const events = out(READER_FD.events);
try {
  await run((e) => void events.write(JSON.stringify(e) + '\n'));
} catch (err) {
  events.write(JSON.stringify({ t: 'error', kind: kindOf(err), message: describe(err) } satisfies ReaderEvent) + '\n');
  process.exitCode = 1;
}
// Sockets left open by a failure would keep the process alive.
events.end(() => process.exit());
