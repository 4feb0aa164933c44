import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { badInput, failure } from './errors.ts';

// A secret the server generates once into its data dir (the secret key, the metrics token):
// mode 0600, refused when others may read it, and created so that two servers starting at
// once agree on one value.

/** The file's text, or undefined when there is no file yet. Mode is checked on the open fd. */
export function readSecretFile(file: string, what: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw failure(`Cannot read the ${what} ${file}`, err);
  }
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if (mode & 0o077) throw badInput(`The ${what} ${file} is readable by others (mode ${mode.toString(8).padStart(4, '0')})`, `Run: chmod 600 ${file}`);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes text to a temp file opened O_CREAT|O_EXCL (0600), then publishes it with link(),
 * which fails if the name exists: two servers starting at once never both write the file, and
 * neither can read a half-written one. The loser gets the winner's text.
 */
export function createSecretFile(file: string, what: string, text: string): string {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
    return text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw failure(`Cannot create the ${what} ${file}`, err);
    const theirs = readSecretFile(file, what);
    if (theirs === undefined) throw failure(`The ${what} ${file} vanished while it was being created`, err);
    return theirs;
  } finally {
    unlinkSync(tmp);
  }
}
