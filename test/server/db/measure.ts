// Not a test: how long the two hot statements take with a fleet's worth of rows.
//   node test/server/db/measure.ts [sites=10000] [nodes=500] [calls=5000]
// Fills a fresh SQLite file and a fresh PostgreSQL database with sites that each have a
// running job, then times jobs.report (progress with the lease renewal: an agent's report,
// the progress endpoint's one write) and sites.backupState (the status endpoint's read), one
// at a time and with 32 in flight.

import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Db, Param } from '../../../src/server/db/db.ts';
import { createRepos } from '../../../src/server/db/repos.ts';
import type { Repos } from '../../../src/server/db/repos.ts';
import { SecretBox } from '../../../src/server/db/secrets.ts';
import { postgresTarget, sqliteTarget } from './targets.ts';
import type { Target } from './targets.ts';

const [SITES, NODES, CALLS] = [10_000, 500, 5000].map((d, i) => Number(process.argv[2 + i] ?? d)) as [number, number, number];
const IN_FLIGHT = 32;

async function insertMany(db: Db, table: string, columns: string[], rows: Param[][]): Promise<void> {
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500);
    const values = chunk.map(() => `(${columns.map(() => '?').join(', ')})`).join(', ');
    await db.exec(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values}`, chunk.flat());
  }
}

async function fill(db: Db): Promise<string[]> {
  const now = Date.now();
  const nodes = Array.from({ length: NODES }, () => randomUUID());
  await insertMany(db, 'nodes', ['id', 'hostname', 'status', 'created_at'], nodes.map((id, i) => [id, `web${i}`, 'active', now]));
  const sites = Array.from({ length: SITES }, (_, i) => [randomUUID(), nodes[i % NODES] as string] as const);
  const siteCols = ['id', 'node_id', 'name', 'wp_path', 'status', 'current_job_id', 'created_at', 'updated_at'];
  await insertMany(db, 'sites', siteCols, sites.map(([id, node], i) => [id, node, `site${i}.example`, `/var/www/site${i}`, 'running', `${id}-job`, now, now]));
  const jobCols = ['id', 'type', 'site_id', 'node_id', 'state', 'claimed_by', 'lease_until', 'created_at', 'updated_at'];
  await insertMany(db, 'jobs', jobCols, sites.map(([id, node]) => [`${id}-job`, 'backup', id, node, 'running', node, now + 60_000, now, now]));
  return sites.map(([id]) => id);
}

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): string => (s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0).toFixed(3);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return `mean ${mean.toFixed(3)} ms, p50 ${at(0.5)}, p99 ${at(0.99)}, max ${at(1)}`;
}

async function timed(calls: number, op: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await op(i);
    out.push(performance.now() - t);
  }
  return out;
}

async function throughput(calls: number, op: (i: number) => Promise<unknown>): Promise<string> {
  let next = 0;
  const t = performance.now();
  const worker = async (): Promise<void> => {
    while (next < calls) await op(next++);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return `${Math.round(calls / ((performance.now() - t) / 1000))}/s with ${IN_FLIGHT} in flight`;
}

async function measure(name: string, target: Target): Promise<void> {
  const db = await target.open();
  try {
    const t = performance.now();
    const ids = await fill(db);
    const nodeOf = new Map((await db.query<{ id: string; node_id: string }>('SELECT id, node_id FROM sites')).map((r) => [r.id, r.node_id]));
    console.log(`${name}: filled ${SITES} sites / ${NODES} nodes / ${SITES} running jobs in ${Math.round(performance.now() - t)} ms`);
    const repos: Repos = createRepos(db, { secrets: new SecretBox(randomBytes(32)) });
    const pick = (i: number): string => ids[(i * 7919) % ids.length] as string;
    const read = (i: number) => repos.sites.backupState(pick(i));
    const reportWithLease = (i: number) => repos.jobs.report(`${pick(i)}-job`, nodeOf.get(pick(i)) as string, 60_000, { progress: i % 101, stage: 'upload_remote', stageDetail: null });
    const ok = (await Promise.all(ids.slice(0, 10).map((id) => repos.jobs.report(`${id}-job`, nodeOf.get(id) as string, 60_000, { progress: 1, stage: 'backup_db', stageDetail: null })))).every(Boolean);
    if (!ok) throw new Error('jobs.report did not land');
    await timed(500, reportWithLease); // warm caches and connections
    console.log(`  jobs.report     ${stats(await timed(CALLS, reportWithLease))}; ${await throughput(CALLS, reportWithLease)}`);
    console.log(`  backupState     ${stats(await timed(CALLS, read))}; ${await throughput(CALLS, read)}`);
  } finally {
    await db.close();
    await target.cleanup();
  }
}

await measure('SQLite', await sqliteTarget());
await measure('PostgreSQL', await postgresTarget());
