// npm run bench:api: fills a database with 10,000 sites on 500 nodes, then measures with
// autocannon at a fixed 2,000 requests/s: users reading GET /api/v1/sites/{id}/backup/status,
// and 500 simulated agents posting progress reports (4 a second each, so each job's report
// reaches the database about once per 2 s and is held in memory in between: progress-cache.ts).
// Once on SQLite, once on PostgreSQL.
// Floors (issue 3, raised by issue 9): p99 under 50 ms at 2,000 requests/s on both databases.
// --rate, --seconds, --nodes and --sites change the shape; BENCH_PROFILE_DIR=dir writes the
// server's CPU profiles (node --cpu-prof) there.
import autocannon from 'autocannon';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { generateToken, hashToken } from '../src/server/auth/tokens.ts';
import type { Dialect } from '../src/server/db/db.ts';
import { createRepos } from '../src/server/db/repos.ts';
import type { ServerContext } from '../src/server/context.ts';
import { openContext } from '../src/server/context.ts';
import { postgresTarget, sqliteTarget } from '../test/server/db/targets.ts';

const DIALECTS: Dialect[] = ['sqlite', 'postgres'];
const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '500' }, sites: { type: 'string', default: '10000' }, rate: { type: 'string', default: '2000' }, seconds: { type: 'string', default: '15' }, scheduler: { type: 'string', default: 'on' }, 'tick-speed': { type: 'string', default: '1' } } });
const NODES = Number(values.nodes);
const SITES = Number(values.sites);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
/** --scheduler off: no scheduler passes during the load (scheduler-ticker.ts). */
const SCHEDULER = values.scheduler !== 'off';

interface Fleet {
  siteIds: string[];
  agents: { jobId: string; key: string }[];
}

/** The server as users run it: its own process, so the load generator does not share its event loop. */
interface Bench {
  url: string;
  /** The server process, for its CPU time (Linux /proc). */
  pid: number | undefined;
  token: string;
  ctx: ServerContext;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function startServerProcess(dataDir: string, databaseUrl: string | undefined): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const env = { ...process.env, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) };
  const prof = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
  const proc = spawn(process.execPath, ['--max-semi-space-size=2', ...prof, MAIN, 'server', '--port', String(port), '--data-dir', dataDir], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) return { url, proc };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill();
  throw new Error('the server did not start');
}

/** Nodes with keys, sites spread over them, and one claimed job per node (its agent reports progress). */
async function fill(t: Bench): Promise<Fleet> {
  const fleet: Fleet = { siteIds: [], agents: [] };
  const perNode = Math.ceil(SITES / NODES);
  for (let n = 0; n < NODES; n++) {
    const key = generateToken('node');
    await t.ctx.db.transaction(async (tx) => {
      const repos = createRepos(tx, { secrets: t.ctx.secrets });
      const node = await repos.nodes.create({ hostname: `web${n}.example.com`, status: 'active', nodeKeyHash: hashToken(key) });
      for (let s = 0; s < perNode && fleet.siteIds.length < SITES; s++) {
        const site = await repos.sites.create({ nodeId: node.id, name: `site${n}-${s}.example.com`, wpPath: `/var/www/site${n}-${s}` });
        fleet.siteIds.push(site.id);
        if (s === 0) fleet.agents.push({ jobId: (await repos.jobs.enqueueBackup(site.id)).id, key });
      }
    });
  }
  const repos = t.ctx.repos;
  const nodes = await repos.nodes.list();
  for (const node of nodes) await repos.jobs.claimNext(node.id, 3_600_000);
  return fleet;
}

/**
 * Scheduler passes on the whole fleet while the load runs, from a second server process
 * (bench/scheduler-ticker.ts); stop() ends it and returns its cost per pass.
 */
async function startTicker(dataDir: string, databaseUrl: string | undefined): Promise<{ stop(): Promise<string> }> {
  const env = { ...process.env, BENCH_DATA_DIR: dataDir, BENCH_TICK_SPEED: String(values['tick-speed']), ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) };
  const proc = spawn(process.execPath, [join(import.meta.dirname, 'scheduler-ticker.ts')], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  const ended = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  while (!out.includes('ready\n')) {
    if (proc.exitCode !== null) throw new Error('the scheduler ticker did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { stop: async () => { proc.kill('SIGTERM'); await ended; return out.split('\n').find((l) => l.startsWith('{')) ?? '{}'; } };
}
const ticks: { dialect: Dialect; summary: string }[] = [];

interface Row {
  dialect: Dialect;
  endpoint: string;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  errors: number;
  /** The server process's CPU time per measured request, in µs (null off Linux): unlike latency, barely moved by other load on the machine. */
  cpuUsPerReq: number | null;
}

/** user + system CPU time of a process in ms, from /proc/<pid>/stat (clock ticks of 10 ms); undefined off Linux. */
function cpuMs(pid: number | undefined): number | undefined {
  const file = `/proc/${pid}/stat`;
  if (pid === undefined || !existsSync(file)) return undefined;
  const fields = readFileSync(file, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function pick<T>(xs: T[]): T {
  return xs[Math.floor(Math.random() * xs.length)] as T;
}

async function load(t: Bench, endpoint: string, setup: (req: autocannon.Request) => autocannon.Request): Promise<Omit<Row, 'dialect'>> {
  // Unmeasured warm-up at the same rate: JIT, statement caches and connection pools settle first.
  await autocannon({ url: t.url, connections: 50, overallRate: RATE, duration: 3, requests: [{ setupRequest: setup }] });
  const cpuBefore = cpuMs(t.pid);
  const result = await autocannon({ url: t.url, connections: 50, overallRate: RATE, duration: SECONDS, requests: [{ setupRequest: setup }] });
  const cpuAfter = cpuMs(t.pid);
  const cpuUsPerReq = cpuBefore === undefined || cpuAfter === undefined ? null : Math.round((1000 * (cpuAfter - cpuBefore)) / Math.max(1, result.requests.total));
  return { endpoint, rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max, non2xx: result.non2xx, errors: result.errors, cpuUsPerReq };
}

const rows: Row[] = [];
for (const dialect of DIALECTS) {
  const target = dialect === 'sqlite' ? await sqliteTarget() : await postgresTarget();
  const ctx = await openContext({ dataDir: target.options.dataDir, databaseUrl: target.options.databaseUrl, publicUrl: 'http://127.0.0.1' });
  let proc: ChildProcess | undefined;
  let ticker: Awaited<ReturnType<typeof startTicker>> | undefined;
  try {
    const started = performance.now();
    const admin = await ctx.repos.users.create({ email: 'bench@example.com', passwordHash: 'unused', role: 'super_admin' });
    const token = generateToken('api');
    await ctx.repos.tokens.create({ userId: admin.id, tokenHash: hashToken(token), kind: 'api', name: 'bench', expiresAt: null });
    const server = await startServerProcess(target.options.dataDir, target.options.databaseUrl);
    proc = server.proc;
    const t: Bench = { url: server.url, pid: server.proc.pid, token, ctx };
    const fleet = await fill(t);
    console.log(`[bench:api] ${dialect}: ${fleet.siteIds.length} sites on ${NODES} nodes, ${fleet.agents.length} agents with a job, ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    ticker = SCHEDULER ? await startTicker(target.options.dataDir, target.options.databaseUrl) : undefined;
    const status = await load(t, 'GET /api/v1/sites/{id}/backup/status', (req) => ({ ...req, method: 'GET', path: `/api/v1/sites/${pick(fleet.siteIds)}/backup/status`, headers: { authorization: `Bearer ${t.token}` } }));
    rows.push({ dialect, ...status });
    let pct = 0;
    const progress = await load(t, 'POST /api/v1/agent/jobs/{id}/progress', (req) => {
      const a = pick(fleet.agents);
      pct = (pct + 1) % 100;
      const body = JSON.stringify({ status: 'running', progress: pct, stage: 'create_bundle', stage_detail: `Reading wp-content (${pct} MB of 100 MB)`, error: null });
      return { ...req, method: 'POST', path: `/api/v1/agent/jobs/${a.jobId}/progress`, headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json' }, body };
    });
    rows.push({ dialect, ...progress });
    if (ticker) ticks.push({ dialect, summary: await ticker.stop() });
    ticker = undefined;
  } finally {
    await ticker?.stop();
    proc?.kill();
    await ctx.close();
    await target.cleanup();
  }
}

const loadAverage = loadavg().map((l) => l.toFixed(1)).join(' ');
console.log(`\n${SITES} sites on ${NODES} nodes; autocannon at a fixed ${RATE} requests/s for ${SECONDS} s after 3 s of warm-up, 50 connections; 2 cores, load average ${loadAverage} at the end\n`);
console.log(['database', 'endpoint'.padEnd(40), 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'non-2xx', 'errors', 'server CPU µs/req', 'p99 < 50 ms'].join('  '));
for (const r of rows) {
  const cpu = String(r.cpuUsPerReq ?? '-').padStart(17);
  console.log([r.dialect.padEnd(8), r.endpoint.padEnd(40), r.rps.toFixed(0).padStart(5), String(r.p50).padStart(6), String(r.p99).padStart(6), String(r.max).padStart(6), String(r.non2xx).padStart(7), String(r.errors).padStart(6), cpu, r.p99 < 50 && r.non2xx === 0 && r.errors === 0 ? 'yes' : 'NO'].join('  '));
}
for (const t of ticks) console.log(`scheduler pass on ${SITES} sites during the load (${t.dialect}): ${t.summary}`);
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'api-latest.json'), JSON.stringify({ command: 'npm run bench:api', date: new Date().toISOString(), loadAverage, nodes: NODES, sites: SITES, rate: RATE, seconds: SECONDS, rows, scheduler: ticks.map((t) => ({ dialect: t.dialect, ...(JSON.parse(t.summary) as object) })) }, null, 2) + '\n');
process.exit(0);
