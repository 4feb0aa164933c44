// npm run bench:api: fills a database with 10,000 sites on 500 nodes, then measures with an
// open-loop generator at 2,000 requests/s (open-loop.ts: Poisson arrivals, each latency from the
// moment its request fell due): users reading GET /api/v1/sites/{id}/backup/status,
// and 500 simulated agents posting progress reports (4 a second each, so each job's report
// reaches the database about once per 2 s and is held in memory in between: progress-cache.ts).
// Once on SQLite, once on PostgreSQL.
// Floors (issue 3, raised by issue 9): p99 under 50 ms at 2,000 requests/s on both databases.
// The servers run as in production, background passes included (reaper, scheduler, alerts,
// deletion retries, each on its own timer; issue 10): the fleet gets a "daily" default at the
// current minute with the 30-minute spreading window, so the scheduler queues runs throughout
// the load. SQLite: one server process (SQLite is one server's database). PostgreSQL: a second
// server process on the same database runs its passes too, as a second server would. The
// passes' cost comes from each server's wpbackup_pass_duration_seconds (pass-metrics.ts).
// --scheduler off: no fleet schedule and no second server. --db sqlite|postgres, --rate, --seconds, --nodes and
// --sites change the shape; BENCH_PROFILE_DIR=dir writes the servers' CPU profiles
// (node --cpu-prof) there; --arrivals even spaces the requests exactly.
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
import { passCosts, scrapePasses, type PassCost, type PassHistogram } from './pass-metrics.ts';
import { LoadClient, quantile, type LoadRequest } from './open-loop.ts';
import { parseRuntime, serverRuntime, watchGenerator, type GeneratorRuntime, type ServerRuntime } from './runtime-metrics.ts';

const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '500' }, sites: { type: 'string', default: '10000' }, rate: { type: 'string', default: '2000' }, seconds: { type: 'string', default: '15' }, scheduler: { type: 'string', default: 'on' }, db: { type: 'string', default: 'both' }, arrivals: { type: 'string', default: 'poisson' } } });
/** --db sqlite|postgres: one database only (profiling). */
const DIALECTS: Dialect[] = values.db === 'both' ? ['sqlite', 'postgres'] : [values.db as Dialect];
const NODES = Number(values.nodes);
const SITES = Number(values.sites);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
/** --scheduler off: no fleet schedule (the passes find nothing due) and no second server. */
const SCHEDULER = values.scheduler !== 'off';
const ARRIVALS = values.arrivals === 'even' ? 'even' : 'poisson';

interface Fleet {
  siteIds: string[];
  agents: { jobId: string; key: string }[];
}

/** The server as users run it: its own process, so the load generator does not share its event loop. */
interface Bench {
  url: string;
  /** The server process, for its CPU time (Linux /proc). */
  pid: number | undefined;
  /** Its token-less /metrics address: event-loop delay and GC over each load (runtime-metrics.ts). */
  metricsUrl: string;
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

interface ServerProcess {
  url: string;
  /** The token-less /metrics address (--metrics-listen). */
  metricsUrl: string;
  proc: ChildProcess;
}

/** `wpbackup server` as users run it, passes and all. */
async function startServerProcess(dataDir: string, databaseUrl: string | undefined): Promise<ServerProcess> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const env = { ...process.env, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) };
  const prof = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
  const args = ['--max-semi-space-size=2', ...prof, MAIN, 'server', '--port', String(port), '--data-dir', dataDir, '--metrics-listen', `127.0.0.1:${metricsPort}`];
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) return { url, metricsUrl: `http://127.0.0.1:${metricsPort}`, proc };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill();
  throw new Error('the server did not start');
}

/** Ends the server and waits for it (SIGTERM: a CPU profile is written on the way out). */
async function stopServer(s: ServerProcess): Promise<void> {
  if (s.proc.exitCode !== null) return;
  const ended = new Promise((resolve) => s.proc.once('exit', resolve));
  s.proc.kill('SIGTERM');
  const timer = setTimeout(() => s.proc.kill('SIGKILL'), process.env.BENCH_PROFILE_DIR ? 120_000 : 15_000);
  await ended;
  clearTimeout(timer);
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
 * The fleet default "daily at <this minute> UTC", through the API as an admin sets it: with the
 * 30-minute window each site's run falls at its own offset after this minute, so about
 * sites / 1,800 runs come due every second of the load. Returns how long the request took.
 */
async function scheduleFleet(t: Bench): Promise<number> {
  const now = new Date();
  const at = `${String(now.getUTCHours()).padStart(2, '0')}:${String(now.getUTCMinutes()).padStart(2, '0')}`;
  const started = performance.now();
  const res = await fetch(`${t.url}/api/v1/schedules/default`, {
    method: 'PUT', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ preset: 'daily', at, timezone: 'UTC', window_minutes: 30 }),
  });
  if (!res.ok) throw new Error(`setting the fleet schedule failed: ${res.status} ${await res.text()}`);
  return performance.now() - started;
}

interface PassReport {
  dialect: Dialect;
  /** 'api': the server under load; 'second': the other server on the same PostgreSQL. */
  server: 'api' | 'second';
  costs: PassCost[];
}

interface ScheduleReport {
  dialect: Dialect;
  /** PUT /api/v1/schedules/default on the whole fleet (next runs of every site), ms. */
  fleetChangeMs: number;
  /** Scheduled backups queued while the load ran. */
  enqueued: number;
}

const passes: PassReport[] = [];
const schedules: ScheduleReport[] = [];

interface Row {
  dialect: Dialect;
  endpoint: string;
  /** Responses per second over the run (requests fall due at RATE; this shows they were all answered). */
  rps: number;
  /** Latencies from the moment each request fell due, ms. */
  p50: number;
  p99: number;
  max: number;
  /** Responses over 50 ms, of all. */
  over50: number;
  responses: number;
  non2xx: number;
  /** Requests without a response. */
  errors: number;
  /** Connections the generator opened, warm-up included (one request in flight on each). */
  connections: number;
  /** The server process's CPU time per measured request, in µs (null off Linux): unlike latency, barely moved by other load on the machine. */
  cpuUsPerReq: number | null;
  /** The server's event-loop delay and GC pauses over the load: where a tail comes from. */
  server: ServerRuntime;
  /** The load generator (this process) over the load. */
  generator: GeneratorRuntime;
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

async function load(t: Bench, endpoint: string, next: () => LoadRequest): Promise<Omit<Row, 'dialect'>> {
  const client = new LoadClient(t.url);
  try {
    return await measure(t, client, endpoint, next);
  } finally {
    client.close();
  }
}

async function measure(t: Bench, client: LoadClient, endpoint: string, next: () => LoadRequest): Promise<Omit<Row, 'dialect'>> {
  // Unmeasured warm-up at the same rate: JIT, statement caches, connection pools and the
  // generator's keep-alive connections settle first.
  const warm = await client.run({ rate: RATE, seconds: 3, next, arrivals: ARRIVALS });
  const runtimeBefore = parseRuntime(await (await fetch(`${t.metricsUrl}/metrics`)).text());
  const cpuBefore = cpuMs(t.pid);
  const generatorDone = watchGenerator();
  const r = await client.run({ rate: RATE, seconds: SECONDS, next, arrivals: ARRIVALS });
  const generator = generatorDone();
  const cpuAfter = cpuMs(t.pid);
  const server = serverRuntime(runtimeBefore, parseRuntime(await (await fetch(`${t.metricsUrl}/metrics`)).text()));
  const cpuUsPerReq = cpuBefore === undefined || cpuAfter === undefined ? null : Math.round((1000 * (cpuAfter - cpuBefore)) / Math.max(1, r.sent));
  const ms = (x: number): number => +x.toFixed(1);
  const non2xx = [...r.statuses].filter(([code]) => code < 200 || code > 299).reduce((n, [, count]) => n + count, 0);
  return {
    endpoint, rps: Math.round((1000 * r.latencies.length) / r.elapsedMs), p50: ms(quantile(r.latencies, 0.5)), p99: ms(quantile(r.latencies, 0.99)),
    max: ms(quantile(r.latencies, 1)), over50: r.latencies.filter((x) => x > 50).length, responses: r.latencies.length, non2xx, errors: r.errors,
    connections: warm.connections + r.connections, cpuUsPerReq, server, generator,
  };
}

const rows: Row[] = [];
for (const dialect of DIALECTS) {
  const target = dialect === 'sqlite' ? await sqliteTarget() : await postgresTarget();
  const ctx = await openContext({ dataDir: target.options.dataDir, databaseUrl: target.options.databaseUrl, publicUrl: 'http://127.0.0.1' });
  const servers: ServerProcess[] = [];
  try {
    const started = performance.now();
    const admin = await ctx.repos.users.create({ email: 'bench@example.com', passwordHash: 'unused', role: 'super_admin' });
    const token = generateToken('api');
    await ctx.repos.tokens.create({ userId: admin.id, tokenHash: hashToken(token), kind: 'api', name: 'bench', expiresAt: null });
    const server = await startServerProcess(target.options.dataDir, target.options.databaseUrl);
    servers.push(server);
    // A second server shares only PostgreSQL; SQLite is one server's.
    if (SCHEDULER && dialect === 'postgres') servers.push(await startServerProcess(target.options.dataDir, target.options.databaseUrl));
    const t: Bench = { url: server.url, pid: server.proc.pid, metricsUrl: server.metricsUrl, token, ctx };
    const fleet = await fill(t);
    console.log(`[bench:api] ${dialect}: ${fleet.siteIds.length} sites on ${NODES} nodes, ${fleet.agents.length} agents with a job, ${servers.length} server process(es), ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const fleetChangeMs = SCHEDULER ? await scheduleFleet(t) : 0;
    const queued = async (): Promise<number> => Number((await ctx.db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued'`))?.n ?? 0);
    const queuedBefore = await queued();
    const before: PassHistogram[] = await Promise.all(servers.map((s) => scrapePasses(s.metricsUrl)));
    const status = await load(t, 'GET /api/v1/sites/{id}/backup/status', () => ({ method: 'GET', path: `/api/v1/sites/${pick(fleet.siteIds)}/backup/status`, headers: { authorization: `Bearer ${t.token}` } }));
    rows.push({ dialect, ...status });
    let pct = 0;
    const progress = await load(t, 'POST /api/v1/agent/jobs/{id}/progress', () => {
      const a = pick(fleet.agents);
      pct = (pct + 1) % 100;
      const body = JSON.stringify({ status: 'running', progress: pct, stage: 'create_bundle', stage_detail: `Reading wp-content (${pct} MB of 100 MB)`, error: null });
      return { method: 'POST', path: `/api/v1/agent/jobs/${a.jobId}/progress`, headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json' }, body };
    });
    rows.push({ dialect, ...progress });
    const after = await Promise.all(servers.map((s) => scrapePasses(s.metricsUrl)));
    servers.forEach((_, i) => passes.push({ dialect, server: i === 0 ? 'api' : 'second', costs: passCosts(before[i] ?? {}, after[i] ?? {}) }));
    if (SCHEDULER) schedules.push({ dialect, fleetChangeMs: Math.round(fleetChangeMs), enqueued: (await queued()) - queuedBefore });
  } finally {
    for (const s of servers) await stopServer(s);
    await ctx.close();
    await target.cleanup();
  }
}

const loadAverage = loadavg().map((l) => l.toFixed(1)).join(' ');
console.log(`\n${SITES} sites on ${NODES} nodes; ${RATE} requests/s due (${ARRIVALS} arrivals, open loop: open-loop.ts) for ${SECONDS} s after 3 s of warm-up; latencies from the moment each request fell due; 2 cores, load average ${loadAverage} at the end\n`);
console.log(['database', 'endpoint'.padEnd(40), 'req/s', 'p50 ms', 'p99 ms', 'max ms', '> 50 ms', 'non-2xx', 'errors', 'conns', 'server CPU µs/req', 'p99 < 50 ms'].join('  '));
for (const r of rows) {
  const cpu = String(r.cpuUsPerReq ?? '-').padStart(17);
  const cells = [r.rps.toFixed(0).padStart(5), String(r.p50).padStart(6), String(r.p99).padStart(6), String(r.max).padStart(6), String(r.over50).padStart(7), String(r.non2xx).padStart(7), String(r.errors).padStart(6), String(r.connections).padStart(5)];
  console.log([r.dialect.padEnd(8), r.endpoint.padEnd(40), ...cells, cpu, r.p99 < 50 && r.non2xx === 0 && r.errors === 0 ? 'yes' : 'NO'].join('  '));
}
console.log('\nWhere a tail comes from, over each measured load: the server\'s event-loop delay (p99 / max, ms beyond its 10 ms timer), its GC pauses (count, total ms, of which major), the load generator\'s CPU (% of a core) and event-loop delay (p99 / max ms), and the time some task on the machine waited for a core (PSI)');
for (const r of rows) {
  const s = r.server;
  const g = r.generator;
  console.log(`${r.dialect.padEnd(8)}  ${r.endpoint.padEnd(40)}  server loop ${s.loopP99Ms} / ${s.loopMaxMs} ms; GC ${s.gcPauses} pauses, ${s.gcMs} ms (major ${s.gcMajorMs} ms); generator ${g.cpuPct} % CPU, loop ${g.loopP99Ms} / ${g.loopMaxMs} ms; machine CPU wait ${g.cpuWaitPct ?? '-'} %`);
}
for (const s of schedules) console.log(`${s.dialect}: fleet schedule set on ${SITES} sites in ${s.fleetChangeMs} ms (PUT /api/v1/schedules/default); ${s.enqueued} scheduled backups queued during the load`);
for (const p of passes) {
  const costs = p.costs.filter((c) => c.passes > 0).map((c) => `${c.pass} ${c.passes}x mean ${c.mean_ms} ms, max <= ${c.max_ms_at_most ?? '?'} ms`);
  console.log(`${p.dialect} ${p.server === 'api' ? 'server under load' : 'second server'}: background passes during the load: ${costs.join('; ') || 'none'}`);
}
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'api-latest.json'), JSON.stringify({ command: 'npm run bench:api', date: new Date().toISOString(), loadAverage, nodes: NODES, sites: SITES, rate: RATE, arrivals: ARRIVALS, seconds: SECONDS, scheduler: SCHEDULER, rows, schedules, passes }, null, 2) + '\n');
process.exit(0);
