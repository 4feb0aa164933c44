import { lstat, readlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashTap } from '../hash-tap.ts';
import { startChild } from './child.ts';
import { PipeGroup } from './pipe-group.ts';
import { CHILD_DIR } from './restore-staging.ts';
import { TarGuard } from './tar-guard.ts';

// archive stream -> sha256 -> zstd -d -> TarGuard -> GNU tar -x into a staging dir, all in one
// pipe. TarGuard decides what tar sees (see tar-guard.ts), owners included: none, or the site's
// owner it writes itself into the headers of wp-content's members, which tar then sets as it
// extracts (no chown pass over the tree afterwards). After extraction, each
// symlink is followed through the tree as extracted, since a chain of links that each look
// fine alone can still lead out of wp-content.

export interface ExtractResult {
  /** sha256 of the archive's bytes as they came (compressed). */
  sha256: string;
  bytes: number;
  warnings: string[];
  /** Of database.sql as extracted, checked by sql-guard.ts on its way (see tar-guard.ts). */
  databaseSha256?: string;
}

const TAR_ARGS = ['--extract', '--file=-', '--preserve-permissions', '--delay-directory-restore'];
/** Owners as numbers, never looked up by the (empty) names TarGuard writes. */
const OWNER_ARGS = { none: ['--no-same-owner'], guard: ['--same-owner', '--numeric-owner'] };
const MAX_HOPS = 40;

/** Where to extract: a path for this process (`ref`) and the same dir as a descriptor for tar. */
export interface ExtractDir {
  ref: string;
  fd: number;
}

export interface ExtractOptions {
  signal?: AbortSignal;
  onBytes?: (n: number) => void;
  /** Who gets wp-content's files (the site's owner, when root restores); else whoever runs tar. */
  owner?: { uid: number; gid: number };
}

export async function extractArchive(source: Readable, into: ExtractDir, opts: ExtractOptions): Promise<ExtractResult> {
  const group = new PipeGroup(opts.signal);
  const tap = new HashTap(opts.onBytes);
  const guard = new TarGuard({ owner: opts.owner });
  const dir = into.ref;
  try {
    const zstd = startChild('zstd', ['-d', '-q', '-c'], { signal: group.signal });
    const tar = startChild('tar', [...TAR_ARGS, ...OWNER_ARGS[opts.owner ? 'guard' : 'none'], `--directory=${CHILD_DIR}`], { signal: group.signal, stdio: ['pipe', 'ignore', 'pipe', into.fd] });
    const parts = [
      pipeline(source, tap, zstd.proc.stdin!, { signal: group.signal }),
      pipeline(zstd.proc.stdout!, guard, tar.proc.stdin!, { signal: group.signal }),
      zstd.done,
      tar.done,
    ];
    await Promise.allSettled(parts.map((p) => group.watch(p)));
    group.throwIfFailed();
  } finally {
    group.close();
  }
  const warnings = [...guard.report.warnings];
  for (const link of guard.report.symlinks) {
    const why = await linkEscapes(dir, link);
    if (!why) continue;
    await unlink(join(dir, link)).catch(() => {});
    warnings.push(`${link} leads ${why} through other links; it was not restored`);
  }
  return { sha256: tap.sha256(), bytes: tap.bytes, warnings, databaseSha256: guard.report.databaseSha256 };
}

/**
 * Follows the link `name` (an archive path under wp-content) through the extracted tree,
 * never leaving `dir/wp-content`; says where it leads when it would leave it.
 */
export async function linkEscapes(dir: string, name: string): Promise<string | undefined> {
  const root = join(dir, 'wp-content');
  const at = await lstat(join(dir, name)).catch(() => undefined);
  if (!at?.isSymbolicLink()) return undefined; // a later member replaced it
  const stack = name.split('/').slice(1, -1);
  const own = await readlink(join(dir, name));
  if (own.startsWith('/')) return `to ${own}`;
  let todo = own.split('/');
  let hops = 0;
  while (todo.length) {
    const c = todo.shift() as string;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (stack.length === 0) return 'out of wp-content';
      stack.pop();
      continue;
    }
    stack.push(c);
    const p = join(root, ...stack);
    const st = await lstat(p).catch(() => undefined);
    if (!st?.isSymbolicLink()) continue;
    if (++hops > MAX_HOPS) return 'in a loop';
    const target = await readlink(p);
    if (target.startsWith('/')) return `to ${target}`;
    stack.pop();
    todo = [...target.split('/'), ...todo];
  }
  return undefined;
}
