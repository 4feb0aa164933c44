import { execFileSync } from 'node:child_process';

// A system user to own test sites, made once per machine: a backup as root reads such a
// site as this user.

export const OWNER = 'wpb-test-owner';

export function ownerIds(): { uid: number; gid: number } {
  try {
    execFileSync('id', ['-u', OWNER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', OWNER]);
  }
  const id = (flag: string): number => Number(execFileSync('id', [flag, OWNER], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

export const OWNER_GROUP = 'wpb-test-share';

/** A group the owner belongs to besides its own (as a site owner in www-data would be); its gid. */
export function ownerSupplementaryGroup(): number {
  ownerIds();
  try {
    execFileSync('getent', ['group', OWNER_GROUP], { stdio: 'ignore' });
  } catch {
    execFileSync('groupadd', ['--system', OWNER_GROUP]);
  }
  execFileSync('usermod', ['-a', '-G', OWNER_GROUP, OWNER]);
  return Number(execFileSync('getent', ['group', OWNER_GROUP], { encoding: 'utf8' }).split(':')[2]);
}
