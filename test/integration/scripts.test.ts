import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAIN, REPO } from '../helpers/cli.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

// The spec's scripts and the CLI's remote commands, against a running server, with an agent
// simulated through the repositories: start, watch the stages go by, see the end.

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): { done: Promise<Run>; pid: number } {
  const child = spawn(cmd, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Run = { code: null, stdout: '', stderr: '' };
  child.stdout.on('data', (b: Buffer) => (out.stdout += b));
  child.stderr.on('data', (b: Buffer) => (out.stderr += b));
  return { pid: child.pid as number, done: new Promise((resolve) => child.on('close', (code) => resolve({ ...out, code }))) };
}

/** Every command line on the machine right now. */
function allCmdlines(): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      out.push(readFileSync(`/proc/${p}/cmdline`, 'utf8'));
    } catch {
      // gone
    }
  }
  return out;
}

const STAGES = ['backup_db', 'backup_files', 'create_bundle', 'upload_remote'] as const;

describe('start_backup.sh, monitor_backup.sh, wpbackup backup start/watch', () => {
  let t: TestServer;
  let env: NodeJS.ProcessEnv;
  let nodeId: string;
  before(async () => {
    t = await startTestServer('sqlite');
    const token = await t.api('POST', '/api/v1/tokens', { body: { name: 'scripts' } });
    assert.equal(token.status, 201, JSON.stringify(token.body));
    env = { WPBACKUP_URL: t.url, WPBACKUP_TOKEN: token.body.token, MONITOR_INTERVAL: '0.2' };
    nodeId = (await t.server.ctx.repos.nodes.create({ hostname: 'web1.example.com', status: 'active' })).id;
  });
  after(() => t.close());

  const newSite = async (name: string): Promise<string> => (await t.server.ctx.repos.sites.create({ nodeId, name, wpPath: `/var/www/${name}` })).id;

  /** Plays the agent: claims the job, walks the stages, finishes. */
  async function playAgent(outcome: 'done' | 'failed'): Promise<void> {
    const repos = t.server.ctx.repos;
    let job;
    for (let i = 0; i < 100 && !job; i++) {
      job = await repos.jobs.claimNext(nodeId, 60_000);
      if (!job) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(job, 'a job was queued');
    for (const [i, stage] of STAGES.entries()) {
      await repos.jobs.report(job.id, nodeId, 60_000, { progress: 20 * (i + 1), stage, stageDetail: `in ${stage}` });
      await new Promise((r) => setTimeout(r, 400));
    }
    await repos.jobs.finish(job.id, nodeId, outcome === 'done' ? { state: 'done' } : { state: 'failed', error: 'mysqldump: disk full' });
  }

  it('start_backup.sh starts once, refuses a second start, and never shows the token in ps', async () => {
    const site = await newSite('scripts.example.com');
    const seen: string[] = [];
    const first = run(join(REPO, 'scripts/start_backup.sh'), [site], env);
    const watching = setInterval(() => seen.push(...allCmdlines()), 2);
    const r1 = await first.done;
    const r2 = await run(join(REPO, 'scripts/start_backup.sh'), [site], env).done;
    clearInterval(watching);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(JSON.parse(r1.stdout).site_id, site);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /409.*already/);
    assert.ok(seen.length > 0);
    assert.deepEqual(seen.filter((c) => c.includes(env.WPBACKUP_TOKEN as string)), []);
  });

  it('monitor_backup.sh prints each stage and exits 0 on completed, 1 on failed', async () => {
    for (const outcome of ['done', 'failed'] as const) {
      const site = await newSite(`monitor-${outcome}.example.com`);
      assert.equal((await run(join(REPO, 'scripts/start_backup.sh'), [site], env).done).code, 0);
      const monitor = run(join(REPO, 'scripts/monitor_backup.sh'), [site], env);
      await playAgent(outcome);
      const r = await monitor.done;
      for (const stage of STAGES) assert.match(r.stdout, new RegExp(`running ${stage}: in ${stage}`));
      if (outcome === 'done') {
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /completed/);
      } else {
        assert.equal(r.code, 1);
        assert.match(r.stdout, /failed .*error: mysqldump: disk full/);
      }
    }
  });

  it('wpbackup backup start --watch follows the backup by SSE to the end', async () => {
    const site = await newSite('cli-watch.example.com');
    const cli = run(process.execPath, [MAIN, 'backup', 'start', 'cli-watch.example.com', '--watch', '--json'], env);
    await playAgent('done');
    const r = await cli.done;
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(events[0]?.type, 'started');
    assert.equal(events[0]?.site_id, site);
    const stages = [...new Set(events.filter((e) => e.type === 'progress' && e.stage).map((e) => e.stage))];
    assert.ok(STAGES.every((s) => stages.includes(s)), `saw ${stages.join(', ')}`);
    assert.equal(events.at(-1)?.status, 'completed');
  });

  it('bad input: no site, not a uuid, no token, unknown site', async () => {
    const script = join(REPO, 'scripts/start_backup.sh');
    assert.equal((await run(script, [], env).done).code, 2);
    assert.equal((await run(script, ['../etc'], env).done).code, 2);
    const noToken = await run(script, ['00000000-0000-4000-8000-000000000000'], { WPBACKUP_URL: t.url }).done;
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /WPBACKUP_TOKEN/);
    const unknown = await run(script, ['00000000-0000-4000-8000-000000000000'], env).done;
    assert.equal(unknown.code, 2);
    const cli = await run(process.execPath, [MAIN, 'backup', 'watch', 'no-such-site'], env).done;
    assert.equal(cli.code, 2);
    assert.match(cli.stderr, /No site named no-such-site/);
  });
});
