import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lchownSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { badInput, failure } from '../errors.ts';
import { DEFAULTS, envTemplate, unitName, unitText, type ServiceKind, type UnitSpec } from './units.ts';

// What `wpbackup install-service` and `uninstall-service` do to the machine. Every path the
// unit names is a real one; `prefix` (tests, packaging) only moves where files are written,
// like DESTDIR. Upgrades keep the data dir and the env file; only the unit is rewritten.

export interface InstallOptions {
  spec: UnitSpec;
  prefix: string;
  unitDir: string;
}

export interface InstallReport {
  unitPath: string;
  /** 'written' on a first install, 'updated' when a unit was there already. */
  unit: 'written' | 'updated';
  notes: string[];
}

/** A real path as written under the prefix. */
export function under(prefix: string, path: string): string {
  return prefix ? join(prefix, path) : path;
}

function userIds(user: string): { uid: number; gid: number } | undefined {
  try {
    const id = (flag: string): number => Number(execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

/** The server's system user, made with useradd when missing (no login shell, home the data dir). */
function ensureUser(user: string, home: string, notes: string[]): { uid: number; gid: number } {
  const found = userIds(user);
  if (found) return found;
  try {
    execFileSync('useradd', ['--system', '--user-group', '--home-dir', home, '--no-create-home', '--shell', '/usr/sbin/nologin', '--comment', 'wpbackup server', user], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw failure(`Could not create the system user ${user} with useradd: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}`, err, 'Run install-service as root, or create the user yourself and pass --user');
  }
  notes.push(`created system user ${user}`);
  const made = userIds(user);
  if (!made) throw failure(`useradd reported success but ${user} does not exist`);
  return made;
}

/** Hands a tree to its owner without following links (a data dir once run by root, say). */
function chownTree(path: string, ids: { uid: number; gid: number }): void {
  lchownSync(path, ids.uid, ids.gid);
  if (!lstatSync(path).isDirectory()) return;
  for (const e of readdirSync(path, { withFileTypes: true })) chownTree(join(path, e.name), ids);
}

function ensureDataDir(path: string, ids: { uid: number; gid: number }, notes: string[]): void {
  if (!existsSync(path)) {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    chownTree(path, ids);
    notes.push(`created data dir ${path}`);
    return;
  }
  const st = statSync(path);
  if (!st.isDirectory()) throw badInput(`${path} is not a directory`, 'Give --data-dir a directory');
  if (st.uid !== ids.uid || st.gid !== ids.gid) {
    chownTree(path, ids);
    notes.push(`kept data dir ${path}, now owned by uid ${ids.uid} (it was ${st.uid})`);
  } else {
    notes.push(`kept data dir ${path}`);
  }
}

/** Created from the template once; an existing file is kept, its mode tightened to 0600. */
function ensureEnvFile(kind: ServiceKind, path: string, notes: string[]): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (!existsSync(path)) {
    writeFileSync(path, envTemplate(kind), { mode: 0o600, flag: 'wx' });
    notes.push(`created ${path} (mode 0600) for settings and secrets`);
    return;
  }
  const mode = statSync(path).mode & 0o777;
  if (mode !== 0o600) {
    chmodSync(path, 0o600);
    notes.push(`kept ${path}; its mode was 0${mode.toString(8)}, now 0600`);
  } else {
    notes.push(`kept ${path}`);
  }
}

export function installService(o: InstallOptions): InstallReport {
  const { spec } = o;
  const notes: string[] = [];
  const ids = spec.kind === 'server' ? ensureUser(spec.user ?? DEFAULTS.server.user, spec.dataDir, notes) : { uid: 0, gid: 0 };
  ensureDataDir(under(o.prefix, spec.dataDir), ids, notes);
  ensureEnvFile(spec.kind, under(o.prefix, spec.envFile), notes);
  const unitDir = under(o.prefix, o.unitDir);
  const unitPath = join(unitDir, unitName(spec.kind));
  const existed = existsSync(unitPath);
  mkdirSync(unitDir, { recursive: true, mode: 0o755 });
  // Through a rename: systemd never reads half a unit.
  const tmp = `${unitPath}.${process.pid}.tmp`;
  writeFileSync(tmp, unitText(spec), { mode: 0o644 });
  chmodSync(tmp, 0o644);
  renameSync(tmp, unitPath);
  return { unitPath, unit: existed ? 'updated' : 'written', notes };
}

/** A unit's command line split into words, undoing unitWord()'s quoting. */
export function unitWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) {
    words.push((m[1] !== undefined ? m[1].replace(/\\(["\\])/g, '$1') : (m[2] as string)).replace(/%%/g, '%'));
  }
  return words;
}

/** The settings an installed unit holds, so an upgrade keeps them (data dir first of all). */
export interface InstalledUnit {
  dataDir?: string;
  envFile?: string;
  user?: string;
  /** Extra ReadWritePaths (not the data dir, not the optional compile cache). */
  writable: string[];
  /** The arguments after `server|agent --data-dir DIR`. */
  args: string[];
}

export function readUnit(text: string): InstalledUnit {
  const lines = (key: string): string[] => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1] as string);
  const words = unitWords(lines('ExecStart')[0] ?? '');
  const at = words.indexOf('--data-dir');
  const dataDir = at >= 0 ? words[at + 1] : undefined;
  const writable = lines('ReadWritePaths').filter((l) => !l.startsWith('-')).map((l) => unitWords(l)[0] as string).filter((p) => p !== dataDir);
  return { dataDir, envFile: unitWords(lines('EnvironmentFile')[0] ?? '')[0], user: lines('User')[0], writable, args: at >= 0 ? words.slice(at + 2) : [] };
}

/** The unit installed now, if any. */
export function installedUnit(o: { kind: ServiceKind; prefix: string; unitDir: string }): InstalledUnit | undefined {
  const path = join(under(o.prefix, o.unitDir), unitName(o.kind));
  return existsSync(path) ? readUnit(readFileSync(path, 'utf8')) : undefined;
}

const SYSTEM_DIRS = new Set(['/', '/etc', '/home', '/opt', '/root', '/srv', '/tmp', '/usr', '/usr/local', '/var', '/var/lib', '/var/www']);

/** --purge removes a tree a unit names: never one that holds more than wpbackup's own files. */
function refuseSystemDir(path: string): void {
  if (!path.startsWith('/') || SYSTEM_DIRS.has(path.replace(/\/+$/, '') || '/')) throw badInput(`Refusing to purge ${path}`, 'Remove it yourself if you really mean it');
}

export interface UninstallReport {
  removed: string[];
  left: string[];
}

export function uninstallService(o: { kind: ServiceKind; prefix: string; unitDir: string; purge: boolean; dataDir?: string }): UninstallReport {
  const unitPath = join(under(o.prefix, o.unitDir), unitName(o.kind));
  const installed: Partial<InstalledUnit> = installedUnit(o) ?? {};
  const dataDir = o.dataDir ?? installed.dataDir ?? DEFAULTS[o.kind].dataDir;
  const envFile = installed.envFile ?? join(DEFAULTS.envDir, `${o.kind}.env`);
  const removed: string[] = [];
  const left: string[] = [];
  if (existsSync(unitPath)) {
    rmSync(unitPath);
    removed.push(`unit ${unitPath}`);
  } else {
    left.push(`no unit was installed at ${unitPath}`);
  }
  for (const [what, path] of [['data dir', dataDir], ['env file', envFile]] as const) {
    const real = under(o.prefix, path);
    if (!existsSync(real)) continue;
    if (o.purge) {
      refuseSystemDir(path);
      rmSync(real, { recursive: true, force: true });
      removed.push(`${what} ${real}`);
    } else {
      left.push(`${what} ${real} (--purge removes it)`);
    }
  }
  const user = installed.user && installed.user !== 'root' ? installed.user : undefined;
  if (user && userIds(user)) left.push(`system user ${user} (remove it with: userdel ${user})`);
  return { removed, left };
}
