import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_CAPABILITIES } from '../../src/service/units.ts';
import { MAIN, REPO, resultOf, runCli } from '../helpers/cli.ts';
import { ownerIds } from '../helpers/owner.ts';
import { TEST_HOME } from '../helpers/services.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

// `wpbackup install-service server|agent` writes units systemd accepts (systemd-analyze
// verify, warnings included), keeps data and secrets on an upgrade, and the agent's
// capability set is enough for a real backup as root of a site someone else owns.

/** A system user made for these tests only, like test/helpers/owner.ts's. */
const SVC_USER = 'wpb-test-svc';

function cli(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', input, env: { PATH: process.env.PATH } });
}

/** systemd-analyze verify on a unit under its own name; any warning counts as a failure. */
function verify(unitText: string, dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, unitText);
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', `systemd-analyze warned:\n${r.stderr}`);
}

const setting = (unit: string, key: string): string[] => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1] as string);

describe('install-service', () => {
  let work: string;
  before(() => {
    work = mkdtempSync(join(TEST_HOME, 'svc-'));
    spawnSync('userdel', [SVC_USER], { stdio: 'ignore' });
  });
  after(() => {
    rmSync(work, { recursive: true, force: true });
    spawnSync('userdel', [SVC_USER], { stdio: 'ignore' });
  });

  it('--dry-run prints hardened units systemd-analyze accepts, and writes nothing', () => {
    const server = cli(['install-service', 'server', '--dry-run', '--prefix', join(work, 'dry'), '--writable', '/srv/wpbackup-backups', '--', '--host', '0.0.0.0', '--port', '8443']);
    assert.equal(server.status, 0, server.stderr);
    const agent = cli(['install-service', 'agent', '--dry-run', '--prefix', join(work, 'dry'), '--', '--scan-root', '/home', '--limit-upload', '20M']);
    assert.equal(agent.status, 0, agent.stderr);
    assert.ok(!existsSync(join(work, 'dry')), 'nothing written');
    verify(server.stdout, join(work, 'verify'), 'wpbackup-server.service');
    verify(agent.stdout, join(work, 'verify'), 'wpbackup-agent.service');

    for (const unit of [server.stdout, agent.stdout]) {
      for (const [key, value] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['PrivateTmp', 'yes'], ['Restart', 'on-failure'], ['UMask', '0077']]) {
        assert.deepEqual(setting(unit, key as string), [value], `${key}=${value}`);
      }
      assert.deepEqual(setting(unit, 'EnvironmentFile').length, 1);
      assert.doesNotMatch(unit, /^Environment=/m, 'no secrets in a world-readable unit');
    }
    assert.deepEqual(setting(server.stdout, 'User'), ['wpbackup']);
    assert.deepEqual(setting(server.stdout, 'ProtectHome'), ['yes']);
    assert.deepEqual(setting(server.stdout, 'CapabilityBoundingSet'), ['']);
    assert.deepEqual(setting(server.stdout, 'ReadWritePaths'), ['/var/lib/wpbackup', '/srv/wpbackup-backups']);
    assert.deepEqual(setting(server.stdout, 'ExecStart'), [`${join(REPO, 'bin', 'wpbackup')} server --data-dir /var/lib/wpbackup --no-local-agent --host 0.0.0.0 --port 8443`]);
    // The agent reads sites under /home too, as root with a few capabilities.
    assert.deepEqual(setting(agent.stdout, 'User'), ['root']);
    assert.deepEqual(setting(agent.stdout, 'ProtectHome'), ['read-only']);
    assert.deepEqual(setting(agent.stdout, 'CapabilityBoundingSet'), [AGENT_CAPABILITIES.join(' ')]);
    assert.deepEqual(setting(agent.stdout, 'ReadWritePaths'), ['/var/lib/wpbackup-agent', `-${join(REPO, 'node_modules', '.cache', 'wpbackup-compile')}`]);
  });

  it('refuses secrets and unknown arguments for the unit, naming the fix', () => {
    const code = cli(['install-service', 'agent', '--dry-run', '--', '--join-code', 'wpb_j_x']);
    assert.equal(code.status, 2);
    assert.match(code.stderr, /--join-code cannot go into the unit: a secret/);
    const typo = cli(['install-service', 'server', '--dry-run', '--', '--prot', '80']);
    assert.equal(typo.status, 2);
    assert.match(typo.stderr, /Arguments for 'wpbackup server': Unknown option '--prot'/);
    const kind = cli(['install-service', 'web']);
    assert.equal(kind.status, 2);
    assert.match(kind.stderr, /install-service needs 'server' or 'agent', not 'web'/);
    const onArgv = cli(['install-service', 'agent', '--prefix', join(work, 'argv'), '--server', 'http://127.0.0.1:1', '--join-code', 'wpb_j_secret']);
    assert.equal(onArgv.status, 2);
    assert.match(onArgv.stderr, /--join-code takes only "-"/);
  });

  it('installs the server with its user, data dir and a 0600 env file; an upgrade keeps them; uninstall leaves data unless --purge', () => {
    const prefix = join(work, 'root');
    const args = ['install-service', 'server', '--prefix', prefix, '--user', SVC_USER, '--data-dir', '/var/lib/wpb-test-svc'];
    const first = cli(args);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /created system user wpb-test-svc/);
    assert.match(first.stdout, /systemctl enable --now wpbackup-server/);
    const uid = Number(execFileSync('id', ['-u', SVC_USER], { encoding: 'utf8' }));
    assert.equal(execFileSync('getent', ['passwd', SVC_USER], { encoding: 'utf8' }).trim().split(':').at(-1), '/usr/sbin/nologin');
    const dataDir = join(prefix, 'var/lib/wpb-test-svc');
    const envFile = join(prefix, 'etc/wpbackup/server.env');
    const unitPath = join(prefix, 'etc/systemd/system/wpbackup-server.service');
    assert.equal(statSync(dataDir).uid, uid);
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    assert.equal(statSync(envFile).mode & 0o777, 0o600);
    assert.equal(statSync(unitPath).mode & 0o777, 0o644);
    verify(readFileSync(unitPath, 'utf8'), join(work, 'verify-installed'), 'wpbackup-server.service');

    // What the server keeps, and a secret, then an upgrade (with an env file someone loosened).
    writeFileSync(join(dataDir, 'wpbackup.db'), 'the database');
    writeFileSync(envFile, 'WPBACKUP_SECRET_KEY=c2VjcmV0\n');
    chmodSync(envFile, 0o644);
    const again = cli([...args, '--', '--port', '9000']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /^Updated /);
    assert.match(again.stdout, /systemctl restart wpbackup-server/);
    assert.match(again.stdout, /its mode was 0644, now 0600/);
    assert.equal(readFileSync(join(dataDir, 'wpbackup.db'), 'utf8'), 'the database');
    assert.equal(readFileSync(envFile, 'utf8'), 'WPBACKUP_SECRET_KEY=c2VjcmV0\n');
    assert.equal(statSync(envFile).mode & 0o777, 0o600);
    assert.match(readFileSync(unitPath, 'utf8'), /--port 9000$/m);
    // Run again with nothing but the kind (install.sh's upgrade, an operator's): the unit keeps its settings.
    assert.equal(cli(['install-service', 'server', '--prefix', prefix]).status, 0);
    const upgraded = readFileSync(unitPath, 'utf8');
    assert.deepEqual(setting(upgraded, 'ExecStart'), [`${join(REPO, 'bin', 'wpbackup')} server --data-dir /var/lib/wpb-test-svc --no-local-agent --port 9000`]);
    assert.deepEqual(setting(upgraded, 'User'), [SVC_USER]);

    const kept = cli(['uninstall-service', 'server', '--prefix', prefix]);
    assert.equal(kept.status, 0, kept.stderr);
    assert.ok(!existsSync(unitPath));
    assert.match(kept.stdout, /Removed:\n {2}unit .*wpbackup-server\.service/);
    assert.match(kept.stdout, /Left:\n.*data dir .*wpb-test-svc \(--purge removes it\)/s);
    assert.match(kept.stdout, /system user wpb-test-svc \(remove it with: userdel wpb-test-svc\)/);
    assert.ok(existsSync(join(dataDir, 'wpbackup.db')));

    assert.equal(cli(args).status, 0);
    const purged = cli(['uninstall-service', 'server', '--prefix', prefix, '--purge']);
    assert.equal(purged.status, 0, purged.stderr);
    assert.ok(!existsSync(dataDir) && !existsSync(envFile) && !existsSync(unitPath));
  });

  it('installs the agent as root, hands a data dir root did not own back to root, and keeps an awkward data dir path on an upgrade', () => {
    const prefix = join(work, 'agent-root');
    const awkward = '/var/lib/wpb agent "100%"';
    const dataDir = join(prefix, awkward);
    mkdirSync(dataDir, { recursive: true });
    const owner = ownerIds();
    execFileSync('chown', [`${owner.uid}:${owner.gid}`, dataDir]);
    const r = cli(['install-service', 'agent', '--prefix', prefix, '--data-dir', awkward, '--writable', '/srv/a b']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /now owned by uid 0/);
    assert.match(r.stdout, /not joined yet: run 'WPBACKUP_JOIN_CODE=<code> wpbackup install-service agent --server URL'/);
    assert.equal(statSync(dataDir).uid, 0);
    assert.deepEqual(readdirSync(join(prefix, 'etc/wpbackup')), ['agent.env']);
    const unitPath = join(prefix, 'etc/systemd/system/wpbackup-agent.service');
    const first = readFileSync(unitPath, 'utf8');
    verify(first, join(work, 'verify-agent'), 'wpbackup-agent.service');
    assert.equal(cli(['install-service', 'agent', '--prefix', prefix]).status, 0);
    assert.equal(readFileSync(unitPath, 'utf8'), first, 'the upgrade kept the data dir and the writable path');
    const dry = cli(['install-service', 'agent', '--prefix', prefix, '--dry-run']);
    assert.equal(dry.stdout, first);
  });
});

describe('install-service agent --server', () => {
  let t: TestServer;
  let work: string;
  before(async () => {
    t = await startTestServer('sqlite');
    work = mkdtempSync(join(TEST_HOME, 'svc-join-'));
  });
  after(async () => {
    await t.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('joins once with the code from the environment; the code lands in no file and an upgrade needs none', async () => {
    const { code } = JSON.parse(execFileSync(process.execPath, [MAIN, 'nodes', 'join-code', '--data-dir', t.target.options.dataDir, '--json'], { encoding: 'utf8', env: { PATH: process.env.PATH } })) as { code: string };
    const prefix = join(work, 'root');
    // Run asynchronously: the server answering the join lives in this process.
    const r = await runCli(['install-service', 'agent', '--prefix', prefix, '--server', t.url, '--hostname', 'web-svc.example.com'], { env: { WPBACKUP_JOIN_CODE: code } });
    assert.equal(r.code, 0, r.stderr);
    const nodeId = /joined .* as node (\S+);/.exec(r.stdout)?.[1];
    assert.ok(nodeId, r.stdout);
    const identity = join(prefix, 'var/lib/wpbackup-agent/agent.json');
    assert.equal(statSync(identity).mode & 0o777, 0o600);
    const files = execFileSync('find', [prefix, '-type', 'f'], { encoding: 'utf8' }).trim().split('\n');
    for (const f of files.filter((f) => f !== identity)) assert.ok(!readFileSync(f, 'utf8').includes(code), `no join code in ${f}`);
    // Again without a code (an upgrade): the identity is kept, not re-joined.
    const again = cli(['install-service', 'agent', '--prefix', prefix]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`node ${nodeId} of ${t.url.replace(/[.]/g, '\\.')} \\(identity kept in `));
    const spent = await runCli(['install-service', 'agent', '--prefix', join(work, 'other'), '--server', t.url], { env: { WPBACKUP_JOIN_CODE: code } });
    assert.equal(spent.code, 2, spent.stderr);
    assert.match(spent.stderr, /POST \/api\/v1\/agent\/join: HTTP 403/, 'a spent code');
    assert.ok(!existsSync(join(work, 'other/etc/systemd/system/wpbackup-agent.service')), 'no unit for an agent that could not join');
  });
});

describe("the agent unit's capabilities", () => {
  let site: FixtureSite;
  let work: string;
  before(async () => {
    site = await createFixtureSite({ name: 'caps' });
    const ids = ownerIds();
    execFileSync('chown', ['-R', `${ids.uid}:${ids.gid}`, site.dir]);
    chmodSync(join(site.dir, 'wp-config.php'), 0o600);
    work = mkdtempSync(join(TEST_HOME, 'caps-'));
  });
  after(async () => {
    execFileSync('chown', ['-R', '0:0', site.dir]);
    await site.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('are enough for a backup as root of a site another user owns (CapabilityBoundingSet and NoNewPrivileges, applied with setpriv)', async () => {
    const caps = AGENT_CAPABILITIES.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
    const run = await runCli(['backup', '--site', site.dir, '--to', join(work, 'out'), '--data-dir', join(work, 'data'), '--json'], { prefix: ['setpriv', `--bounding-set=-all,${caps}`, '--inh-caps=-all', '--no-new-privs', '--'] });
    // 3: done with the fixture's mode-000 file left out, the only file its owner cannot read.
    assert.equal(run.code, 3, run.stderr);
    const wp = (resultOf(run).manifest as { wp_content: { unreadable: { path: string }[] } }).wp_content;
    assert.deepEqual(wp.unreadable.map((u) => u.path), [site.files.unreadable]);
    // The same run with root's usual powers minus one the unit keeps fails: the set is not decoration.
    const noSetuid = AGENT_CAPABILITIES.filter((c) => c !== 'CAP_SETUID').map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
    const without = await runCli(['backup', '--site', site.dir, '--to', join(work, 'out2'), '--data-dir', join(work, 'data2'), '--json'], { prefix: ['setpriv', `--bounding-set=-all,${noSetuid}`, '--inh-caps=-all', '--no-new-privs', '--'] });
    assert.equal(without.code, 1, without.stderr);
    assert.match(without.stderr, /spawn EPERM/, "without CAP_SETUID the database client cannot start as the site's owner");
  });
});
