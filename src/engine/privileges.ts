import { chown, open } from 'node:fs/promises';
import { failure } from '../errors.ts';
import type { ClientRun } from './mysql.ts';

// Defense in depth for a root agent: a job's reading of the site (wp-content, the config
// files) and its database client programs run as the site directory's owner, so whatever
// slips past the link checks can still only read what that user could read anyway. Run as
// anyone else, or for a site root owns, everything runs in-process as before.

export interface RunAs {
  uid: number;
  gid: number;
}

/** Whom a job on a site owned by `owner` runs its readers as; undefined: in this process, as it is. */
export function readerFor(owner: RunAs): RunAs | undefined {
  return process.getuid?.() !== 0 || owner.uid === 0 ? undefined : owner;
}

/**
 * Becomes `as` for good (real, effective and saved ids, and the owner's groups): root's
 * setuid() sets all three, so nothing later can take root back. Checked, since a half-dropped
 * reader is worse than none.
 */
export function dropPrivileges(as: RunAs): void {
  ownerGroups(as);
  process.setgid?.(as.gid);
  process.setuid?.(as.uid);
  if (process.getuid?.() !== as.uid || process.geteuid?.() !== as.uid || process.getgid?.() !== as.gid || process.getegid?.() !== as.gid) {
    throw failure(`The reader process could not become uid ${as.uid} / gid ${as.gid}`);
  }
}

/**
 * The owner's supplementary groups too (as login would give them): sites often share files
 * through a group such as www-data, and the reader should read what the owner can, no more and
 * no less. An owner uid with no passwd entry gets its primary group alone.
 */
function ownerGroups(as: RunAs): void {
  // Node has it on POSIX; @types/node leaves it out.
  const initgroups = (process as { initgroups?: (user: number, extraGroup: number) => void }).initgroups;
  try {
    initgroups?.(as.uid, as.gid);
  } catch {
    process.setgroups?.([as.gid]);
  }
}

/** The whole environment of a process run as a site's owner: no secret, key or credential. */
export function ownerEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' };
}

/**
 * The client programs' way to the defaults file: as the owner, an inherited descriptor of
 * the file, now theirs (it holds their own site's password) but still only reachable through
 * root's 0700 run dir. `close` once no client will start any more.
 */
export async function clientRunFor(defaultsFile: string, as: RunAs | undefined): Promise<{ run: ClientRun; close: () => Promise<void> }> {
  if (!as) return { run: { defaultsFile }, close: async () => {} };
  await chown(defaultsFile, as.uid, as.gid);
  const fh = await open(defaultsFile, 'r');
  return { run: { defaultsFile, as: { ...as, env: ownerEnv(), defaultsFd: fh.fd } }, close: () => fh.close() };
}
