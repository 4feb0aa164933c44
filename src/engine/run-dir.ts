import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PendingUpload } from '../storage/storage.ts';

// Each run owns a temp dir named for its pid under the data dir, with an owner record. A run
// that was killed leaves its dir behind; the next run finds dirs whose owner is gone,
// aborts the upload they recorded and removes them.

export interface OwnerRecord {
  pid: number;
  /** Process start time from /proc, so a reused pid is not mistaken for the owner. */
  start: string;
  createdAt: string;
  upload?: PendingUpload & { destination: string };
}

export interface RunDir {
  path: string;
  recordUpload(upload: PendingUpload & { destination: string }): Promise<void>;
  remove(): Promise<void>;
}

const OWNER = 'owner.json';

export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime), counted after the ')' that ends the command name.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export async function createRunDir(base: string): Promise<RunDir> {
  await mkdir(base, { recursive: true, mode: 0o700 });
  const path = join(base, `run-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(path, { mode: 0o700 });
  const owner: OwnerRecord = { pid: process.pid, start: processStart(process.pid) ?? '', createdAt: new Date().toISOString() };
  const write = (): Promise<void> => writeFile(join(path, OWNER), JSON.stringify(owner) + '\n', { mode: 0o600 });
  await write();
  return {
    path,
    recordUpload: async (upload) => {
      owner.upload = upload;
      await write();
    },
    remove: () => rm(path, { recursive: true, force: true }),
  };
}

function ownerAlive(rec: OwnerRecord): boolean {
  const start = processStart(rec.pid);
  return start !== undefined && start === rec.start;
}

export interface OrphanReport {
  removed: string[];
  abortedUploads: number;
  /** Dirs kept because their upload could not be aborted yet; retried next time. */
  kept: { dir: string; reason: string }[];
}

/** Cleans up after runs whose process is gone. `abort` ends a recorded incomplete upload. */
export async function cleanOrphans(base: string, abort: (upload: NonNullable<OwnerRecord['upload']>) => Promise<void>): Promise<OrphanReport> {
  const report: OrphanReport = { removed: [], abortedUploads: 0, kept: [] };
  let names: string[];
  try {
    names = (await readdir(base)).filter((n) => n.startsWith('run-'));
  } catch {
    return report;
  }
  for (const name of names) {
    const dir = join(base, name);
    let rec: OwnerRecord | undefined;
    try {
      rec = JSON.parse(await readFile(join(dir, OWNER), 'utf8')) as OwnerRecord;
    } catch {
      // No readable record: only trust the pid in the name.
      const pid = Number(name.split('-')[1]);
      if (processStart(pid) !== undefined) continue;
    }
    if (rec && ownerAlive(rec)) continue;
    if (rec?.upload) {
      try {
        await abort(rec.upload);
        report.abortedUploads++;
      } catch (err) {
        report.kept.push({ dir, reason: (err as Error).message });
        await removeAllBut(dir, OWNER);
        continue;
      }
    }
    await rm(dir, { recursive: true, force: true });
    report.removed.push(dir);
  }
  return report;
}

async function removeAllBut(dir: string, keep: string): Promise<void> {
  for (const n of await readdir(dir)) if (n !== keep) await rm(join(dir, n), { recursive: true, force: true });
}
