// Where npm run bench:api's latency tail comes from: the server's event-loop delay and GC
// pauses over a measured load, from its own process metrics (prom-client's default metrics,
// which `wpbackup server` registers, read on the --metrics-listen address), and the load
// generator's own CPU time and event-loop delay (a busy generator delays the responses it
// times). prom-client resets its event-loop histogram at each scrape, so a scrape right
// before the measured load and one right after cover exactly the load.

import { existsSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** prom-client's event-loop timer fires every 10 ms: each sample includes those 10 ms. */
const PROM_RESOLUTION_MS = 10;

export interface RuntimeSample {
  loopP99Ms: number;
  loopMaxMs: number;
  /** kind (minor, major, incremental, weakcb) -> pauses and their total seconds, since the start. */
  gc: Map<string, { count: number; sum: number }>;
}

export interface ServerRuntime {
  /** The server's event-loop delay over the load (beyond the timer's own 10 ms), ms. */
  loopP99Ms: number;
  loopMaxMs: number;
  /** GC pauses in the server over the load: how many, their total and the minor/major split. */
  gcPauses: number;
  gcMs: number;
  gcMajorMs: number;
}

const GAUGE = /^nodejs_eventloop_lag_(p99|max)_seconds (\S+)$/;
const GC = /^nodejs_gc_duration_seconds_(sum|count)\{kind="(\w+)"\} (\S+)$/;

export function parseRuntime(text: string): RuntimeSample {
  const out: RuntimeSample = { loopP99Ms: NaN, loopMaxMs: NaN, gc: new Map() };
  for (const line of text.split('\n')) {
    const g = GAUGE.exec(line);
    if (g) {
      const ms = Math.max(0, Number(g[2]) * 1000 - PROM_RESOLUTION_MS);
      if (g[1] === 'p99') out.loopP99Ms = ms;
      else out.loopMaxMs = ms;
      continue;
    }
    const m = GC.exec(line);
    if (!m) continue;
    const kind = m[2] ?? '';
    const k = out.gc.get(kind) ?? { count: 0, sum: 0 };
    if (m[1] === 'sum') k.sum = Number(m[3]);
    else k.count = Number(m[3]);
    out.gc.set(kind, k);
  }
  return out;
}

/** The server over one load: `after`'s loop figures (reset by `before`'s scrape), GC as a difference. */
export function serverRuntime(before: RuntimeSample, after: RuntimeSample): ServerRuntime {
  let gcPauses = 0;
  let gcSec = 0;
  let majorSec = 0;
  for (const [kind, a] of after.gc) {
    const b = before.gc.get(kind) ?? { count: 0, sum: 0 };
    gcPauses += a.count - b.count;
    gcSec += a.sum - b.sum;
    if (kind === 'major') majorSec += a.sum - b.sum;
  }
  const r = (x: number): number => +x.toFixed(1);
  return { loopP99Ms: r(after.loopP99Ms), loopMaxMs: r(after.loopMaxMs), gcPauses, gcMs: r(gcSec * 1000), gcMajorMs: r(majorSec * 1000) };
}

export interface GeneratorRuntime {
  /** The load generator's CPU over the load, % of one core. */
  cpuPct: number;
  /**
   * The machine's CPU pressure over the load (Linux PSI, /proc/pressure/cpu "some"): % of the
   * time some runnable task waited for a core. Other work on the machine shows here; null
   * where the kernel does not report it.
   */
  cpuWaitPct: number | null;
  /** Its own event-loop delay, ms: time a response waited to be timed. */
  loopP99Ms: number;
  loopMaxMs: number;
}

/** Starts watching this process (the load generator); call the result when the load ends. */
export function watchGenerator(): () => GeneratorRuntime {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const cpu = process.cpuUsage();
  const waitedUs = cpuWaitedUs();
  const started = performance.now();
  return () => {
    h.disable();
    const used = process.cpuUsage(cpu);
    const ms = performance.now() - started;
    const waited = cpuWaitedUs();
    const r = (ns: number): number => +Math.max(0, ns / 1e6 - 1).toFixed(1);
    const cpuWaitPct = waited === null || waitedUs === null ? null : Math.round((100 * (waited - waitedUs)) / 1000 / ms);
    return { cpuPct: Math.round((100 * (used.user + used.system)) / 1000 / ms), cpuWaitPct, loopP99Ms: r(h.percentile(99)), loopMaxMs: r(h.max) };
  };
}

/** Microseconds some task has waited for a CPU since boot (PSI), or null. */
function cpuWaitedUs(): number | null {
  const file = '/proc/pressure/cpu';
  if (!existsSync(file)) return null;
  const m = /^some .*total=(\d+)/m.exec(readFileSync(file, 'utf8'));
  return m ? Number(m[1]) : null;
}
