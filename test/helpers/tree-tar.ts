import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExcludeMatcher } from '../../src/engine/excludes.ts';
import { SyncSink } from '../../src/engine/sync-sink.ts';
import { emptyTarStats, type TarStats } from '../../src/engine/tar-stream.ts';
import { END_OF_ARCHIVE } from '../../src/engine/tar-header.ts';
import { sizeAndStore, writeTree, type TreeTotals } from '../../src/engine/tree-tar.ts';

/**
 * wp-content's two passes as the reader process makes them, run in this process (so test
 * hooks reach them): `main` is a whole tar archive, `stored` the first pass's entries.
 */
export function tarTreeHere(root: string, o: { patterns?: string[]; store?: (name: string) => boolean } = {}): { main: Buffer; stored: Buffer; stats: TarStats; totals: TreeTotals } {
  const dir = mkdtempSync(join(tmpdir(), 'wpb-tree-'));
  const [mainFd, storedFd] = [openSync(join(dir, 'main'), 'w'), openSync(join(dir, 'stored'), 'w')];
  try {
    const src = { name: 'wp-content', root, matcher: new ExcludeMatcher(o.patterns ?? []) };
    const stats = emptyTarStats();
    const since = Date.now();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    const totals = sizeAndStore(src, stats, () => {}, o.store && { sink: new SyncSink(storedFd), match: o.store });
    const sink = new SyncSink(mainFd);
    writeTree(src, sink, stats, () => {}, o.store && { match: o.store, since });
    sink.put(END_OF_ARCHIVE);
    sink.flush();
    return { main: readFileSync(join(dir, 'main')), stored: readFileSync(join(dir, 'stored')), stats, totals };
  } finally {
    closeSync(mainFd);
    closeSync(storedFd);
    rmSync(dir, { recursive: true, force: true });
  }
}
