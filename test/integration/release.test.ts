import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from '../helpers/cli.ts';
import { TEST_HOME } from '../helpers/services.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';

// The release artifact (npm run release) works on its own: built, unpacked and installed
// elsewhere, it answers --help and makes a real backup (the reader process and its prefetch
// workers included) with this checkout hidden from it, no node on PATH and an empty
// environment, and prints no warning. Installing it again upgrades it in place.

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs a command in a private mount namespace where the checkout (and the node_modules it
 * links to) are empty tmpfs mounts, with an empty environment but a PATH of system dirs and
 * the cwd elsewhere: what a server that never saw the repository offers. The mounts are
 * private to that namespace: nothing else on the machine sees them.
 */
function isolated(cwd: string, cmd: string[]): Promise<Run> {
  const hide = [realpathSync(join(REPO, 'node_modules')), REPO];
  const script = `for d in "$@"; do case $d in --) break ;; esac; mount -t tmpfs none "$d" || exit 97; shift; done; shift
[ ! -e ${JSON.stringify(join(REPO, 'package.json'))} ] || exit 98
exec "$@"`;
  const started = performance.now();
  const child = spawn('unshare', ['--mount', 'sh', '-c', script, 'sh', ...hide, '--', ...cmd], { cwd, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Run = { code: null, stdout: '', stderr: '', ms: 0 };
  child.stdout.setEncoding('utf8').on('data', (s: string) => (run.stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (run.stderr += s));
  return new Promise((resolve) => {
    child.on('close', (code) => {
      run.code = code;
      run.ms = performance.now() - started;
      resolve(run);
    });
  });
}

describe('the release artifact', () => {
  let work: string;
  let site: FixtureSite;
  let unpacked: string;
  let buildMs: number;
  let tarball: string;
  const prefix = (): string => join(work, 'opt', 'wpbackup');
  const wpbackup = (): string => join(work, 'bin', 'wpbackup');

  before(async () => {
    work = mkdtempSync(join(TEST_HOME, 'release-'));
    const started = performance.now();
    const out = execFileSync('bash', [join(REPO, 'scripts', 'release.sh'), join(work, 'dist')], { encoding: 'utf8' });
    buildMs = performance.now() - started;
    tarball = join(work, 'dist', `wpbackup-${VERSION}-linux-${process.arch}.tar.zst`);
    assert.match(out, /release: .*\.tar\.zst \(\d+ MB, \d+ MB unpacked\)/);
    execFileSync('tar', ['-I', 'zstd', '-xf', tarball, '-C', work]);
    unpacked = join(work, `wpbackup-${VERSION}-linux-${process.arch}`);
    site = await createFixtureSite({ name: 'release' });
  });
  after(async () => {
    await site?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('installs, answers --help and backs up a site with the checkout out of reach, without a warning', async (t) => {
    t.diagnostic(`build: ${Math.round(buildMs)} ms; ${tarball}: ${Math.round(Number(execFileSync('stat', ['-c', '%s', tarball], { encoding: 'utf8' })) / 1e6)} MB`);
    const install = await isolated(work, ['sh', join(unpacked, 'install.sh'), '--prefix', prefix(), '--bin-dir', join(work, 'bin')]);
    assert.equal(install.code, 0, install.stderr);
    assert.match(install.stdout, new RegExp(`wpbackup ${VERSION.replace(/\./g, '\\.')} installed in ${prefix()}`));
    assert.equal(install.stderr, '', 'zstd and the MariaDB client are there: nothing to warn about');

    const help = await isolated(work, [wpbackup(), '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`^wpbackup ${VERSION.replace(/\./g, '\\.')}: `));
    assert.match(help.stdout, /install-service/);
    assert.equal(help.stderr, '', 'no EBADENGINE or other warning');
    t.diagnostic(`--help from the installed artifact: ${Math.round(help.ms)} ms (with unshare and mounts)`);

    const dest = join(work, 'backups');
    const backup = await isolated(work, [wpbackup(), 'backup', '--site', site.dir, '--to', dest, '--data-dir', join(work, 'data'), '--json']);
    assert.equal(backup.code, 0, backup.stderr);
    assert.equal(backup.stderr, '', 'no warning');
    const events = backup.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(events.filter((e) => e.type === 'progress').at(-1)?.status, 'completed', backup.stdout);
    assert.ok(events.some((e) => e.type === 'result'), backup.stdout);
    const [archive] = execFileSync('find', [dest, '-name', '*.tar.zst'], { encoding: 'utf8' }).trim().split('\n');
    const listing = execFileSync('tar', ['-I', 'zstd', '-tf', archive as string], { encoding: 'utf8' }).split('\n');
    for (const entry of ['database.sql', 'wp-config.php', 'manifest.json', site.files.unicode]) assert.ok(listing.includes(entry), `${entry} in the archive`);
  });

  it('installs again as an upgrade: the install is replaced, the data and the link stay', async () => {
    writeFileSync(join(prefix(), 'left-by-the-old-version'), 'x');
    const nodeJson = readFileSync(join(work, 'data', 'node.json'), 'utf8');
    const again = await isolated(work, ['sh', join(unpacked, 'install.sh'), '--prefix', prefix(), '--bin-dir', join(work, 'bin'), '--no-restart']);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(!readdirSync(prefix()).includes('left-by-the-old-version'), 'the old tree is gone');
    assert.deepEqual(readdirSync(join(work, 'opt')), ['wpbackup'], 'no .new or .old tree left');
    assert.equal(readFileSync(join(work, 'data', 'node.json'), 'utf8'), nodeJson);
    const version = await isolated(work, [wpbackup(), '--version']);
    assert.equal(version.stdout, `wpbackup ${VERSION}\n`);
  });

  it('writes units that run the installed copy', async () => {
    const dry = await isolated(work, [wpbackup(), 'install-service', 'agent', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^ExecStart=${join(prefix(), 'bin', 'wpbackup')} agent --data-dir /var/lib/wpbackup-agent$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^ReadWritePaths=-${join(prefix(), 'node_modules', '.cache', 'wpbackup-compile')}$`, 'm'));
  });
});
