// The scheduler's share of npm run bench:api: in its own process (a second server on the same
// database, so its work never stalls the load generator's event loop), it gives the fleet a
// "daily at 03:00 UTC" default with the 30-minute window, then runs scheduleOnce every second
// from 03:00 on (a clock skewed to a future 03:00, so the server's own scheduler finds nothing
// due), and on SIGTERM prints one JSON line: the cost of each pass and what it queued.
// Env: BENCH_DATA_DIR, DATABASE_URL (PostgreSQL), BENCH_TICK_SPEED (virtual seconds per second).
import { openContext } from '../src/server/context.ts';
import { scheduleOnce } from '../src/server/scheduler.ts';
import { specOf } from '../src/server/schedule-spec.ts';
import { setFleetSchedule } from '../src/server/services/schedules.ts';

const speed = Number(process.env.BENCH_TICK_SPEED ?? '1');
const threeAm = new Date(Date.now() + 2 * 3_600_000);
threeAm.setUTCHours(3, 0, 0, 0);
if (threeAm.getTime() < Date.now() + 3_600_000) threeAm.setUTCDate(threeAm.getUTCDate() + 1);
const realStart = Date.now();
let skew = threeAm.getTime() - 1000 - realStart;
const ctx = await openContext({ dataDir: process.env.BENCH_DATA_DIR ?? '', databaseUrl: process.env.DATABASE_URL, publicUrl: 'http://127.0.0.1', now: () => Date.now() + skew });

const started = performance.now();
await setFleetSchedule(ctx, { spec: specOf({ preset: 'daily', at: '03:00', timezone: 'UTC' }), windowMinutes: 30 });
const setupMs = performance.now() - started;
await scheduleOnce(ctx, ctx.now()); // rows and first next runs for every site, before the load
console.log('ready');

const costs: number[] = [];
let enqueued = 0;
let skipped = 0;
let stopping = false;
const loopStart = Date.now();
process.on('SIGTERM', () => (stopping = true));
while (!stopping) {
  skew = threeAm.getTime() - 1000 - loopStart + (Date.now() - loopStart) * (speed - 1);
  const t0 = performance.now();
  const r = await scheduleOnce(ctx, ctx.now());
  costs.push(performance.now() - t0);
  enqueued += r.enqueued.length;
  skipped += r.skipped.length;
  await new Promise((resolve) => setTimeout(resolve, 1000));
}
costs.sort((a, b) => a - b);
const at = (q: number): number => costs[Math.min(costs.length - 1, Math.floor(q * costs.length))] ?? 0;
const mean = costs.reduce((a, b) => a + b, 0) / Math.max(1, costs.length);
console.log(JSON.stringify({ ticks: costs.length, mean_ms: +mean.toFixed(1), p50_ms: +at(0.5).toFixed(1), p99_ms: +at(0.99).toFixed(1), max_ms: +at(1).toFixed(1), enqueued, skipped, fleet_change_ms: +setupMs.toFixed(0), speed }));
await ctx.close();
process.exit(0);
