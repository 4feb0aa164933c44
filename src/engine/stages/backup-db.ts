import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { badInput, WpbError } from '../../errors.ts';
import { HashTap } from '../../hash-tap.ts';
import { startChild } from '../child.ts';
import { DefinerFilter } from '../definer-filter.ts';
import { classifyDbError, clientSpawn, findProgram, queryAs, sqlString, type ClientRun, type DbTarget } from '../mysql.ts';

// Stage backup_db: a consistent dump (one transaction, rows streamed), compressed by zstd as
// it comes, into the run's temp dir: the only thing wpbackup ever writes to disk on the web
// server, at a fraction of the dump's size. The bundle appends its frames to the archive as
// they are (frame-tail.ts), so the dump is compressed while wp-content is still being read.

export interface DumpResult {
  /** The compressed dump (zstd frames). */
  path: string;
  /** Of the dump itself, as it will be extracted. */
  bytes: number;
  sha256: string;
  tool: string;
}

/** What a restorable WordPress dump needs; the database name is added after '--'. */
export const DUMP_FLAGS = [
  '--single-transaction',
  '--quick',
  '--routines',
  '--triggers',
  '--events',
  '--no-tablespaces',
  '--hex-blob',
  '--default-character-set=utf8mb4',
  '--add-drop-table',
  '--max-allowed-packet=1G',
];

/** Data plus index bytes: a first estimate of the dump size for the progress bar. */
export async function estimateDbBytes(run: ClientRun, db: DbTarget, signal?: AbortSignal): Promise<number> {
  const rows = await queryAs(run, db, `SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.TABLES WHERE table_schema = ${sqlString(db.name)};`, signal);
  return Number(rows[0]?.[0] ?? 0);
}

function diskFull(err: unknown, dir: string): WpbError | undefined {
  if ((err as NodeJS.ErrnoException)?.code !== 'ENOSPC') return undefined;
  return badInput(`The temp dir ${dir} ran out of space while writing the database dump`, 'Free space there, or point --temp-dir (WPBACKUP_TEMP_DIR) at a disk with room for the dump', err);
}

export interface DumpOptions {
  signal?: AbortSignal;
  nice?: number;
  /** zstd's level for the compressed dump. */
  zstdLevel: number;
  onBytes?: (total: number) => void;
}

/** Dumps into dir/database.sql.zst, the dump program run as `run` says (its output compressed and written here). */
export async function dumpDatabase(dir: string, run: ClientRun, db: DbTarget, opts: DumpOptions): Promise<DumpResult> {
  const dump = await findProgram('dump');
  const path = join(dir, 'database.sql.zst');
  const { defaultsArg, spawn } = clientSpawn(run, ['ignore', 'pipe', 'pipe']);
  // '--' ends the options, so a database named like '-e' cannot be read as one.
  const child = startChild(dump, [defaultsArg, ...DUMP_FLAGS, '--', db.name], { signal: opts.signal, nice: opts.nice, ...spawn });
  // No worker threads: the dump comes at tens of MB/s, wp-content's zstd needs the other cores,
  // and a worker's jobs would take 40 MB (-T1; 9 MB with -B1M) where this takes 7. Measured
  // again with the local destination's direct writes: -T1/-T2 -B1M ended no sooner.
  const zstd = startChild('zstd', ['-q', '-c', '--single-thread', `-${opts.zstdLevel}`], { signal: opts.signal, nice: opts.nice });
  const count = new HashTap(opts.onBytes);
  const out = child.proc.stdout;
  const [zIn, zOut] = [zstd.proc.stdin, zstd.proc.stdout];
  if (!out || !zIn || !zOut) throw new Error('mysqldump or zstd has no pipes');
  try {
    await Promise.all([pipeline(out, new DefinerFilter(), count, zIn), pipeline(zOut, createWriteStream(path, { mode: 0o600 })), child.done, zstd.done]);
  } catch (err) {
    child.kill();
    zstd.kill();
    if (opts.signal?.aborted) throw err;
    throw diskFull(err, dir) ?? (err instanceof WpbError && err.kind !== 'failed' ? err : classifyDbError(child.stderrTail(), db, err));
  }
  return { path, bytes: count.bytes, sha256: count.sha256(), tool: dump.split('/').pop() ?? 'mysqldump' };
}
