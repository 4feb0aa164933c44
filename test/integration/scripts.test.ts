import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateToken, hashToken } from '../../src/server/auth/tokens.ts';
import { MAIN, REPO } from '../helpers/cli.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

// The spec's scripts and the CLI's remote commands, against a running server, with an agent
// simulated through the repositories: start, watch the stages go by, see the end.

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Running {
  done: Promise<Run>;
  pid: number;
  /** Resolves once stdout matches re; rejects if the command ends first. */
  printed(re: RegExp): Promise<void>;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Running {
  const child = spawn(cmd, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Run = { code: null, stdout: '', stderr: '' };
  child.stdout.on('data', (b: Buffer) => (out.stdout += b));
  child.stderr.on('data', (b: Buffer) => (out.stderr += b));
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ ...out, code })));
  const printed = (re: RegExp): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!re.test(out.stdout)) return;
        child.stdout.off('data', check);
        resolve();
      };
      child.stdout.on('data', check);
      check();
      void done.then((r) => reject(new Error(`${cmd} ended (${r.code}) before printing ${re}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)));
    });
  return { pid: child.pid as number, done, printed };
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

describe('start_backup.sh, monitor_backup.sh, wpbackup backup start/watch', { timeout: 60_000 }, () => {
  let t: TestServer;
  let env: NodeJS.ProcessEnv;
  let nodeId: string;
  let nodeKey: string;
  before(async () => {
    t = await startTestServer('sqlite');
    const token = await t.api('POST', '/api/v1/tokens', { body: { name: 'scripts' } });
    assert.equal(token.status, 201, JSON.stringify(token.body));
    env = { WPBACKUP_URL: t.url, WPBACKUP_TOKEN: token.body.token, MONITOR_INTERVAL: '0.2' };
    nodeKey = generateToken('node');
    nodeId = (await t.server.ctx.repos.nodes.create({ hostname: 'web1.example.com', status: 'active', nodeKeyHash: hashToken(nodeKey) })).id;
  });
  after(() => t.close());

  const newSite = async (name: string): Promise<string> => (await t.server.ctx.repos.sites.create({ nodeId, name, wpPath: `/var/www/${name}` })).id;

  /**
   * Plays the agent over the real agent routes: poll, one progress report per stage, each once
   * the watcher has shown the one before (seen). The ending goes through the repository (a real
   * agent ends a backup after uploading one).
   */
  async function playAgent(outcome: 'done' | 'failed', seen: (stage: string) => Promise<void>): Promise<void> {
    const poll = await t.api('POST', '/api/v1/agent/poll', { token: nodeKey, body: {} });
    assert.equal(poll.status, 200, JSON.stringify(poll.body));
    const job = poll.body.job as { job_id: string; site: { id: string } } | null;
    assert.ok(job, 'a job was queued');
    for (const [i, stage] of STAGES.entries()) {
      const report = { status: 'running', progress: 20 * (i + 1), stage, stage_detail: `in ${stage}`, error: null };
      assert.equal((await t.api('POST', `/api/v1/agent/jobs/${job.job_id}/progress`, { token: nodeKey, body: report })).status, 200);
      await seen(stage);
    }
    await t.server.ctx.repos.jobs.finish(job.job_id, nodeId, outcome === 'done' ? { state: 'done' } : { state: 'failed', error: 'mysqldump: disk full' });
    t.server.ctx.events.publish(job.site.id);
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
    // Leave no queued job behind for the next test's simulated agent to pick up.
    assert.equal((await t.api('POST', `/api/v1/sites/${site}/backup/stop`)).status, 200);
  });

  it('monitor_backup.sh prints each stage and exits 0 on completed, 1 on failed', async () => {
    for (const outcome of ['done', 'failed'] as const) {
      const site = await newSite(`monitor-${outcome}.example.com`);
      assert.equal((await run(join(REPO, 'scripts/start_backup.sh'), [site], env).done).code, 0);
      const monitor = run(join(REPO, 'scripts/monitor_backup.sh'), [site], env);
      await playAgent(outcome, (stage) => monitor.printed(new RegExp(`running ${stage}: in ${stage}`)));
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
    await playAgent('done', (stage) => cli.printed(new RegExp(`"stage":"${stage}"`)));
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
