import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kindOf } from '../../src/errors.ts';
import type { ProgressEvent } from '../../src/engine/progress.ts';
import { runRestore, type RestoreStep } from '../../src/engine/restore.ts';
import { layout, writeArchive } from '../helpers/hostile-archive.ts';
import { sql } from '../helpers/mysql.ts';
import { createRestoreTarget, type RestoreTarget } from '../helpers/restore-target.ts';
import { TEST_HOME } from '../helpers/services.ts';

// A restore stopped while the archive streams through its threads (archive-feed.ts reading and
// hashing, extract-worker.ts between zstd and tar): it ends as stopped, with no child, FIFO or
// staging dir left, nothing imported, and the next restore of the same archive succeeds.

/** Children of this process, by name (zstd, tar, mariadb). */
function children(): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** This process's descriptors that reach a FIFO the restore made. */
function restoreFifos(): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((l) => l.includes('wpbackup-fifo-'));
}

describe('stopping a restore mid-extraction', () => {
  let work: string;
  let archive: string;
  let t: RestoreTarget;
  const big = randomBytes(48 << 20);
  before(async () => {
    work = mkdtempSync(join(TEST_HOME, 'restore-stop-'));
    archive = join(work, 'big.tar.zst');
    writeArchive(archive, layout([{ name: 'wp-content/uploads/big.bin', type: '0', data: big }]));
    t = await createRestoreTarget('wp_');
  });
  after(async () => {
    await t.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  /**
   * Runs `fn` with a `tar` first on PATH that waits a second before it starts the real one, so
   * the pipe fills and holds mid-archive, whatever the machine's speed, until the stop.
   */
  async function withSlowTar<T>(fn: () => Promise<T>): Promise<T> {
    const bin = join(work, 'slow-bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'tar'), '#!/bin/sh\nsleep 1\nexec /usr/bin/tar "$@"\n');
    chmodSync(join(bin, 'tar'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path ?? ''}`;
    try {
      return await fn();
    } finally {
      process.env.PATH = path;
    }
  }

  it('stops with nothing left behind, and the next restore completes', async () => {
    const stop = new AbortController();
    const seen: number[] = [];
    const progress = {
      event: (e: ProgressEvent<RestoreStep>): void => {
        if (e.stage !== 'download' || e.bytes_done === 0) return;
        seen.push(e.bytes_done);
        // Reports come every 200 ms; tar holds the pipe for a second: stop at the first.
        if (e.bytes_done < e.bytes_total) stop.abort();
      },
    };
    const err = await withSlowTar(() => runRestore({ archive, sitePath: t.dir, signal: stop.signal, progress })).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err, `the restore went to the end (progress seen: ${seen.join(', ')})`);
    assert.equal(kindOf(err), 'stopped', String(err));
    assert.ok(seen.some((n) => n < big.length), 'stopped while the archive was streaming');
    assert.deepEqual(children(), [], 'no zstd, tar or client left running');
    assert.deepEqual(restoreFifos(), [], 'no FIFO left open');
    assert.deepEqual(readdirSync(join(t.dir, '..')).filter((f) => f.startsWith('.wpbackup-restore')), [], 'no staging dir left');
    assert.ok(!existsSync(join(t.dir, 'wp-content')), 'no wp-content moved in');
    assert.equal(Number(await sql(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${t.dbName}'`)), 0, 'nothing imported');

    const done = await runRestore({ archive, sitePath: t.dir });
    assert.equal(done.database, t.dbName);
    assert.deepEqual(readFileSync(join(t.dir, 'wp-content/uploads/big.bin')), big);
    assert.deepEqual(restoreFifos(), [], 'no FIFO left open after a restore either');
  });
});
