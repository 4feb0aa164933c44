import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LAUNCHERS, MAIN, REPO } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';

// How wpbackup starts: README's way (bin/wpbackup) execs the pinned Node 24 from wherever it is
// linked; the Node launcher on an older system node stands in for its child and reports the
// child's status; and each command loads only the code it needs.

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

describe('launchers', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'wpb-launch-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("README's way works through a link elsewhere and needs no node on PATH", () => {
    const link = join(dir, 'wpbackup');
    symlinkSync(join(REPO, 'bin', 'wpbackup'), link);
    // A PATH with readlink alone: no node, npm or npx to fall back on.
    const path = join(dir, 'path');
    mkdirSync(path);
    symlinkSync(execFileSync('sh', ['-c', 'command -v readlink'], { encoding: 'utf8' }).trim(), join(path, 'readlink'));
    const r = spawnSync(link, ['--version'], { env: { PATH: path }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `wpbackup ${VERSION}\n`);
  });

  it("README's way names the fix when the pinned node is missing", () => {
    const bin = join(dir, 'checkout', 'bin');
    mkdirSync(bin, { recursive: true });
    copyFileSync(join(REPO, 'bin', 'wpbackup'), join(bin, 'wpbackup'));
    const r = spawnSync('sh', [join(bin, 'wpbackup'), '--version'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /the pinned Node 24 is missing in .*checkout: run 'bash scripts\/bootstrap.sh' there/);
  });

  it("the launcher on the system node exits with its child's status", () => {
    const [node, launcher] = LAUNCHERS.systemNode() as [string, string];
    const ok = spawnSync(node, [launcher, '--version'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, `wpbackup ${VERSION}\n`);
    const bad = spawnSync(node, [launcher, 'frobnicate'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /Unknown command 'frobnicate'/);
  });

  it('the launcher on the system node exits with 128 + the signal when its child is killed', async () => {
    const [node, launcher] = LAUNCHERS.systemNode() as [string, string];
    // users create waits for the password on stdin, which stays open.
    const p = spawn(node, [launcher, 'users', 'create', '--email', 'a@example.com', '--role', 'super_admin', '--data-dir', join(dir, 'data')], { stdio: ['pipe', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    const child = await waitFor('the launcher to start its child', async () => childOf(p.pid as number));
    process.kill(child, 'SIGKILL');
    assert.equal(await exited, 128 + 9);
    p.stdin.end();
  });
});

describe('what each command loads', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'wpb-loads-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The modules `wpbackup args` loaded, as paths relative to the repo (or node_modules/...). */
  function loads(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; modules: string[] } {
    const log = join(dir, 'modules.log');
    const r = spawnSync(process.execPath, ['--import', join(REPO, 'test', 'helpers', 'module-log.ts'), MAIN, ...args], { env: { PATH: process.env.PATH, ...env, WPBACKUP_TEST_MODULE_LOG: log }, encoding: 'utf8' });
    const modules = readFileSync(log, 'utf8').split('\n').filter((u) => u.startsWith('file:')).map((u) => decodeURIComponent(new URL(u).pathname).replace(`${REPO}/`, '').replace(/^.*\/node_modules\//, 'node_modules/'));
    return { status: r.status, modules };
  }

  const heavy = (m: string): boolean => /^(node_modules\/|src\/(server|agent|storage)\/|src\/engine\/(backup|restore)\.ts)/.test(m);

  it('--help and a command\'s --help load no engine, storage, server or agent code and no dependency', () => {
    for (const args of [['--help'], ['backup', '--help'], ['restore', '--help'], ['server', '--help']]) {
      const r = loads(args);
      assert.equal(r.status, 0, args.join(' '));
      assert.ok(r.modules.includes('src/cli/main.ts'));
      assert.deepEqual(r.modules.filter(heavy), [], args.join(' '));
    }
  });

  it('a backup to a local directory loads the engine but not the AWS SDK or server code; s3:// loads the SDK', () => {
    const base = ['backup', '--site', join(dir, 'no-such-site'), '--data-dir', join(dir, 'data')];
    const local = loads([...base, '--to', join(dir, 'dest')]);
    assert.equal(local.status, 2, 'the missing site is bad input');
    assert.ok(local.modules.includes('src/engine/backup.ts'));
    assert.ok(local.modules.includes('src/storage/local.ts'));
    assert.deepEqual(local.modules.filter((m) => /^node_modules\/|^src\/(server|agent)\/|^src\/storage\/s3\.ts/.test(m)), []);
    const s3 = loads([...base, '--to', 's3://bucket'], { AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
    assert.equal(s3.status, 2);
    assert.ok(s3.modules.includes('src/storage/s3.ts'));
    assert.ok(s3.modules.some((m) => m.startsWith('node_modules/@aws-sdk/client-s3/')));
    assert.deepEqual(s3.modules.filter((m) => /^src\/(server|agent)\//.test(m)), []);
  });
});

/** The pid of a process's first child, from /proc. */
async function childOf(pid: number): Promise<number | undefined> {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text ? Number(text.split(' ')[0]) : undefined;
}
