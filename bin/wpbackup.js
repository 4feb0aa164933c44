#!/usr/bin/env -S node --max-semi-space-size=2
// A small young generation: our data lives in external buffers, and a smaller heap keeps
// the process well under 200 MB RSS on a busy web server (measured: -17 MB, no slower).
// Launcher: wpbackup runs its TypeScript sources directly on Node 24 (type stripping). The
// fast way in is bin/wpbackup, which execs the pinned Node 24 on this file; npx, or an older
// system node, also work: the latter re-runs this file on the pinned Node 24 as a child,
// passes SIGINT/SIGTERM/SIGHUP on to it and exits with its status.
import { spawn } from 'node:child_process';
import module from 'node:module';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SEMI_SPACE = '--max-semi-space-size=2';
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const major = Number(process.versions.node.split('.')[0]);

if (major >= 24) {
  // Stripping types costs ~60 ms before the first line runs, and loading the sources far more.
  // Node caches the stripped and compiled code, keyed by each file's contents; the cache lives
  // in the checkout so only those who can change the code can change what runs. Where it is
  // not writable, wpbackup simply starts slower.
  module.enableCompileCache(join(root, 'node_modules', '.cache', 'wpbackup-compile'));
  const { cli } = await import(join(root, 'src', 'cli', 'main.ts'));
  await cli();
} else {
  let node;
  try {
    const require = module.createRequire(import.meta.url);
    node = join(dirname(require.resolve('node/package.json')), 'bin', 'node');
  } catch {
    process.stderr.write(`wpbackup: needs Node.js 24; this is ${process.version}. Run 'bash scripts/bootstrap.sh' (or 'npm ci') in ${root} to install the pinned Node 24.\n`);
    process.exit(2);
  }
  runChild(node, [SEMI_SPACE, fileURLToPath(import.meta.url), ...process.argv.slice(2)]);
}

/**
 * A launcher cannot exec, so it stands in for its child: it passes the signals that ask a
 * process to stop on to the child, and exits with the child's status (128 + the signal's
 * number when the child died of one, as a shell reports it). A terminal's Ctrl-C reaches
 * both (same process group): the child takes the copy as the same request.
 */
function runChild(node, args) {
  // fd 3 tells the child if this process is killed outright (see watchLauncher in main.ts).
  const child = spawn(node, args, { stdio: ['inherit', 'inherit', 'inherit', 'pipe'], env: { ...process.env, WPBACKUP_LAUNCHER_PIPE: '3' } });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('error', (err) => {
    process.stderr.write(`wpbackup: could not start ${node}: ${err.message}. Run 'bash scripts/bootstrap.sh' in ${root}.\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => process.exit(signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1)));
}
