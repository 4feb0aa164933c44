import { join } from 'node:path';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { failure, WpbError, type ErrorKind } from '../errors.ts';
import { startChild } from './child.ts';
import { ownerEnv, type RunAs } from './privileges.ts';
import { emptyTarStats, type TarSource, type TarStats } from './tar-stream.ts';

// The parent's side of the reader process (reader-main.ts): a copy of wpbackup, run as the
// site's owner when we are root, that walks and reads the site and writes tar entries to
// pipes. Every backup reads through one: besides the privilege drop, its blocking reads
// cost a small file no thread-pool round trips, and it runs beside zstd and the upload. The parent
// (root) keeps everything else: the dump's entry, the manifest, the end of the archive,
// zstd and the upload; the child gets no secret, key or URL, only paths on stdin.
// The child is as untrusted as the site: its events are checked, their lines bounded.

export interface ReaderJob {
  sitePath: string;
  wpContent: string;
  patterns: string[];
  /**
   * Already-compressed media (isCompressedMedia) goes first, as a stored zstd frame
   * (stored-frame.ts) written to the descriptor startReader() is given for it.
   */
  storeMedia: boolean;
  configFiles: { name: string; path: string }[];
  /** Whom the child becomes before it touches the site; undefined: stays who we are. */
  runAs?: RunAs;
}

/** The child's descriptors: tar entries (main pass, the stored frame, config files) and its events (JSON lines). */
export const READER_FD = { main: 3, stored: 4, config: 5, events: 6 } as const;

export type ReaderEvent =
  | { t: 'bytes'; n: number }
  /** What the backup of wp-content will hold, known once the first pass is over. */
  | { t: 'totals'; files: number; bytes: number }
  | { t: 'tree'; stats: TarStats }
  | { t: 'config'; stats: TarStats }
  | { t: 'error'; kind: ErrorKind; message: string };

const ENTRY = join(import.meta.dirname, 'reader-main.ts');
// The compile cache bin/wpbackup.js enables: the reader starts in 50 ms instead of 300 and
// without the TypeScript stripper's 35 MB. It is read and written before the privilege drop.
const COMPILE_CACHE = join(import.meta.dirname, '..', '..', 'node_modules', '.cache', 'wpbackup-compile');
const MAX_LINE = 4 << 20;

export interface Reader {
  /** wp-content's entries, for both passes. */
  tree: TarSource;
  /** wp-config.php and .htaccess (as config-files.ts allows). */
  config: TarSource;
  /** Resolves when the child exited having done all of it; rejects with its failure. */
  done: Promise<void>;
}

interface Waiter<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

function waiter<T>(): Waiter<T> {
  const w = Promise.withResolvers<T>();
  w.promise.catch(() => {});
  return w;
}

export interface ReaderOptions {
  signal: AbortSignal;
  nice?: number;
  /** Where the stored frame goes, with job.storeMedia: a blocking descriptor the child inherits. */
  storedFd?: number;
  onBytes?: (n: number) => void;
  onTotals?: (t: { files: number; bytes: number }) => void;
}

export function startReader(job: ReaderJob, o: ReaderOptions): Reader {
  if (job.storeMedia && o.storedFd === undefined) throw new Error('startReader: storeMedia needs a storedFd');
  // Started as root and dropped to the owner by the child itself (reader-main.ts), before it
  // reads the site: the owner need not be able to read node or wpbackup's sources (/root).
  const child = startChild(process.execPath, ['--max-semi-space-size=2', ENTRY], {
    signal: o.signal,
    nice: o.nice,
    env: { ...ownerEnv(), NODE_COMPILE_CACHE: COMPILE_CACHE },
    cwd: '/',
    stdio: ['pipe', 'ignore', 'pipe', 'pipe', job.storeMedia ? (o.storedFd as number) : 'ignore', 'pipe', 'pipe'],
  });
  // Read through a PassThrough from the start: Node drops what a child wrote to a pipe nobody
  // listens to yet when the child exits (and the config files are read after the dump).
  const pipe = (fd: number): Readable => {
    const through = new PassThrough({ highWaterMark: 1 << 20 });
    pipeline(child.proc.stdio[fd] as Readable, through, () => {});
    return through;
  };
  // A child that died at once fails through its exit, not through this write.
  child.proc.stdin?.on('error', () => {});
  child.proc.stdin?.end(JSON.stringify(job));
  const tree = waiter<TarStats>();
  const config = waiter<TarStats>();
  let reported: WpbError | undefined;
  const onEvent = (e: ReaderEvent): void => {
    if (e.t === 'bytes') o.onBytes?.(e.n);
    else if (e.t === 'totals') o.onTotals?.({ files: e.files, bytes: e.bytes });
    else if (e.t === 'tree') tree.resolve(e.stats);
    else if (e.t === 'config') config.resolve(e.stats);
    else reported = new WpbError(e.kind, e.message);
  };
  const events = readEvents(pipe(READER_FD.events), onEvent, () => child.kill());
  const done = Promise.all([child.done, events]).then(
    () => {
      const early = failure('The reader process ended before it had read the whole site');
      for (const w of [tree, config]) w.reject(early);
    },
    (err: unknown) => {
      const why = reported && !o.signal.aborted ? reported : err;
      for (const w of [tree, config]) w.reject(why);
      throw why;
    },
  );
  done.catch(() => {});
  return {
    tree: { kind: 'entries', name: 'wp-content', main: pipe(READER_FD.main), done: tree.promise },
    config: { kind: 'entries', name: 'config files', main: pipe(READER_FD.config), done: config.promise },
    done,
  };
}

/** Reads the child's JSON lines; a line that is too long or malformed fails the run. */
async function readEvents(from: Readable, onEvent: (e: ReaderEvent) => void, kill: () => void): Promise<void> {
  let buf = '';
  try {
    for await (const chunk of from.setEncoding('utf8')) {
      buf += chunk as string;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        onEvent(checkEvent(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
      if (buf.length > MAX_LINE) throw new Error('an event line is too long');
    }
  } catch (err) {
    kill();
    throw failure(`The reader process sent what it should not: ${(err as Error).message}`, err);
  }
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isProblems = (v: unknown): boolean => Array.isArray(v) && v.every((p) => typeof p === 'object' && p !== null && typeof (p as { rel?: unknown }).rel === 'string' && typeof (p as { reason?: unknown }).reason === 'string');

function checkStats(v: unknown): TarStats {
  const s = v as Record<string, unknown>;
  const want = emptyTarStats();
  for (const k of Object.keys(want) as (keyof TarStats)[]) {
    const ok = Array.isArray(want[k]) ? isProblems(s?.[k]) : isCount(s?.[k]);
    if (!ok) throw new Error(`bad stats field ${k}`);
  }
  return { ...want, ...(Object.fromEntries(Object.keys(want).map((k) => [k, s[k]])) as unknown as TarStats) };
}

function checkEvent(line: string): ReaderEvent {
  const e = JSON.parse(line) as Record<string, unknown>;
  if (e.t === 'bytes' && isCount(e.n)) return { t: 'bytes', n: e.n };
  if (e.t === 'totals' && isCount(e.files) && isCount(e.bytes)) return { t: 'totals', files: e.files, bytes: e.bytes };
  if (e.t === 'tree' || e.t === 'config') return { t: e.t, stats: checkStats(e.stats) };
  if (e.t === 'error' && typeof e.message === 'string') return { t: 'error', kind: e.kind === 'bad_input' ? 'bad_input' : 'failed', message: e.message.slice(0, 2000) };
  throw new Error(`unknown event ${line.slice(0, 100)}`);
}
