import { spawn, spawnSync, type StdioOptions } from 'node:child_process';
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, statfsSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Measures one contender: wall time, CPU seconds and peak RSS of its whole process tree,
// and the peak extra disk it used. Every command runs under GNU time, whose rusage covers the
// command and every descendant it (or they) waited for; while it runs, /proc is sampled every
// 100 ms for each process's VmHWM (its own peak RSS) and the tree's total VmRSS, and the dirs
// the contender writes to are sampled for their allocated size.

export interface Step {
  label: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Write the command's stdout to this file (a redirect without a shell). */
  stdoutFile?: string;
  /** Collect stdout and give each line to this callback as it arrives. */
  onLine?: (line: string, atMs: number) => void;
  /** Called as soon as the step has exited (untimed bookkeeping, e.g. the size of a file it wrote). */
  afterExit?: () => void;
}

export interface ProcPeak {
  pid: number;
  /** The command name (/proc/PID/comm, or the argv[0] we started for the step's main process). */
  name: string;
  /** Which step started it, and whether it is the step's own process or a descendant. */
  step: string;
  role: 'main' | 'child';
  peakRssKiB: number;
  /** user+sys seconds at the last sample before it exited (so up to 100 ms short). */
  cpuS: number;
}

export interface StepResult {
  label: string;
  wallS: number;
  userS: number;
  sysS: number;
  /** GNU time's max RSS: the largest single process in the step's tree. */
  maxRssKiB: number;
}

export interface Measurement {
  wallS: number;
  userS: number;
  sysS: number;
  cpuS: number;
  /** The largest single process's peak RSS in the tree (GNU time and /proc samples agree within a sample). */
  peakProcRssKiB: number;
  /** The largest sum of VmRSS over the tree at one sample: pages shared between processes (the Node binary) count once per process. */
  peakTreeRssKiB: number;
  /**
   * The largest sum of Pss (proportional set size, /proc/PID/smaps_rollup) over the tree at one sample: what the tree
   * holds in memory, each shared page split between the processes that map it, so two Node processes count the Node
   * binary's pages once. The memory target is judged on this.
   */
  peakTreePssKiB: number;
  procs: ProcPeak[];
  steps: StepResult[];
  /** Peak of (allocated bytes under the watched dirs - their size at the start). */
  peakExtraDiskBytes: number;
  /** Peak growth of the filesystem's used bytes (statvfs): includes MinIO's own writes to the same disk. */
  peakFsGrowthBytes: number;
  /** CPU the whole machine spent meanwhile (/proc/stat: user, nice, system, irq, softirq, steal). */
  machineCpuS: number;
  /** Of which steal: time the hypervisor gave to someone else. */
  stealS: number;
  samples: number;
}

export interface MeasureOptions {
  /** Dirs whose growth counts as the contender's extra disk. */
  watchDirs: string[];
  /** A path on the filesystem to sample with statvfs. */
  fsPath: string;
  intervalMs?: number;
}

const TIME = '/usr/bin/time';

/** Allocated bytes under path (like du), not following symlinks; missing paths are 0. */
export function allocatedBytes(path: string): number {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return 0;
  }
  let total = st.blocks * 512;
  if (st.isDirectory()) {
    let names: string[] = [];
    try {
      names = readdirSync(path);
    } catch {
      // vanished or unreadable: counted as empty
    }
    for (const n of names) total += allocatedBytes(join(path, n));
  }
  return total;
}

function fsUsed(path: string): number {
  const s = statfsSync(path);
  return (s.blocks - s.bfree) * s.bsize;
}

/** Parent of every pid in /proc, read once per sample. */
function processTable(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(pid, ppid);
    } catch {
      // exited meanwhile
    }
  }
  return parents;
}

function descendants(root: number, parents: Map<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) {
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift() as number;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

function statusOf(pid: number): { name: string; hwm: number; rss: number; pss: number; cpuS: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (k: string, t = text): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)?.[1] ?? 0);
    const rss = field('VmRSS');
    // A process gone between the two reads counts its RSS: never less than what it held.
    const pss = ((): number => {
      try {
        return field('Pss', readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      } catch {
        return rss;
      }
    })();
    return { name: /^Name:\s+(.*)$/m.exec(text)?.[1] ?? '?', hwm: field('VmHWM'), rss, pss, cpuS: processCpuSeconds(pid) ?? 0 };
  } catch {
    return undefined;
  }
}

/** Busy and steal seconds of the whole machine so far. */
function machineCpu(): { busy: number; steal: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const t = (i: number): number => f[i] ?? 0;
  const hz = clockTicks();
  return { busy: (t(0) + t(1) + t(2) + t(5) + t(6) + t(7)) / hz, steal: t(7) / hz };
}

class Sampler {
  private readonly o: MeasureOptions;
  private readonly baseDisk: number;
  private readonly baseFs: number;
  private timer: NodeJS.Timeout | undefined;
  /** The pid running under GNU time (the step's own command), with its step label. */
  private roots: { timePid: number; step: string }[] = [];
  readonly procs = new Map<string, ProcPeak>();
  peakTreeRss = 0;
  peakTreePss = 0;
  peakDisk = 0;
  peakFs = 0;
  samples = 0;

  constructor(o: MeasureOptions) {
    this.o = o;
    this.baseDisk = o.watchDirs.reduce((s, d) => s + allocatedBytes(d), 0);
    this.baseFs = fsUsed(o.fsPath);
  }

  start(): void {
    this.timer = setInterval(() => this.sample(), this.o.intervalMs ?? 100);
  }

  watch(timePid: number, step: string): void {
    this.roots.push({ timePid, step });
    this.sample();
  }

  unwatch(timePid: number): void {
    this.sample();
    this.roots = this.roots.filter((r) => r.timePid !== timePid);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.sample();
  }

  sample(): void {
    this.samples++;
    if (this.roots.length) {
      const parents = processTable();
      let treeRss = 0;
      let treePss = 0;
      for (const { timePid, step } of this.roots) {
        for (const pid of descendants(timePid, parents)) {
          if (pid === timePid) continue; // GNU time itself: about 2 MB, not the contender's
          const s = statusOf(pid);
          if (!s) continue;
          treeRss += s.rss;
          treePss += s.pss;
          const key = `${pid}:${s.name}`;
          const main = parents.get(pid) === timePid;
          const prev = this.procs.get(key);
          if (!prev) this.procs.set(key, { pid, name: s.name, step, role: main ? 'main' : 'child', peakRssKiB: s.hwm, cpuS: s.cpuS });
          else {
            prev.peakRssKiB = Math.max(prev.peakRssKiB, s.hwm);
            prev.cpuS = Math.max(prev.cpuS, s.cpuS);
          }
        }
      }
      this.peakTreeRss = Math.max(this.peakTreeRss, treeRss);
      this.peakTreePss = Math.max(this.peakTreePss, treePss);
    }
    const disk = this.o.watchDirs.reduce((s, d) => s + allocatedBytes(d), 0) - this.baseDisk;
    this.peakDisk = Math.max(this.peakDisk, disk);
    this.peakFs = Math.max(this.peakFs, fsUsed(this.o.fsPath) - this.baseFs);
  }
}

async function runStep(step: Step, sampler: Sampler, scratch: string, index: number): Promise<StepResult> {
  const timeFile = join(scratch, `time-${index}.txt`);
  const outFd = step.stdoutFile ? openSync(step.stdoutFile, 'w', 0o600) : undefined;
  const stdio: StdioOptions = ['ignore', outFd ?? (step.onLine ? 'pipe' : 'ignore'), 'pipe'];
  const started = performance.now();
  const child = spawn(TIME, ['-f', '%e %U %S %M', '-o', timeFile, '--', ...step.argv], { stdio, env: step.env ?? process.env, cwd: step.cwd });
  if (outFd !== undefined) closeSync(outFd);
  if (child.pid) sampler.watch(child.pid, step.label);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-8000)));
  if (step.onLine && child.stdout) {
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      const at = performance.now();
      for (const l of lines) step.onLine?.(l, at);
    });
    child.stdout.on('end', () => buf && step.onLine?.(buf, performance.now()));
  }
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  });
  const wallS = (performance.now() - started) / 1000;
  if (child.pid) sampler.unwatch(child.pid);
  if (code === 0) step.afterExit?.();
  if (code !== 0) throw new Error(`${step.label} failed (exit ${code}): ${step.argv.slice(0, 3).join(' ')} ...\n${stderr.trim().split('\n').slice(-15).join('\n')}`);
  const fields = readFileSync(timeFile, 'utf8').trim().split('\n').pop()?.split(' ').map(Number) ?? [];
  const [, user = 0, sys = 0, maxRss = 0] = fields;
  return { label: step.label, wallS, userS: user, sysS: sys, maxRssKiB: maxRss };
}

/** Runs steps one after another, measured as one contender. */
export async function measure(steps: Step[], o: MeasureOptions): Promise<Measurement> {
  const scratch = mkdtempSync(join(tmpdir(), 'wpb-bench-time-'));
  const sampler = new Sampler(o);
  const results: StepResult[] = [];
  const cpu0 = machineCpu();
  const started = performance.now();
  sampler.start();
  try {
    for (const [i, step] of steps.entries()) results.push(await runStep(step, sampler, scratch, i));
  } finally {
    sampler.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
  const wallS = (performance.now() - started) / 1000;
  const cpu1 = machineCpu();
  const userS = results.reduce((s, r) => s + r.userS, 0);
  const sysS = results.reduce((s, r) => s + r.sysS, 0);
  const procs = [...sampler.procs.values()].sort((a, b) => b.peakRssKiB - a.peakRssKiB);
  const peakProcRssKiB = Math.max(0, ...results.map((r) => r.maxRssKiB), ...procs.map((p) => p.peakRssKiB));
  return {
    wallS, userS, sysS, cpuS: userS + sysS, peakProcRssKiB, peakTreeRssKiB: sampler.peakTreeRss, peakTreePssKiB: sampler.peakTreePss, procs, steps: results,
    peakExtraDiskBytes: Math.max(0, sampler.peakDisk), peakFsGrowthBytes: Math.max(0, sampler.peakFs),
    machineCpuS: cpu1.busy - cpu0.busy, stealS: cpu1.steal - cpu0.steal, samples: sampler.samples,
  };
}

/** CPU seconds (user+sys) a running process has used so far, e.g. MinIO's or MariaDB's, from /proc. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    return ticks / clockTicks();
  } catch {
    return undefined;
  }
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    ticksPerSecond = Number(r.stdout.trim()) || 100;
  }
  return ticksPerSecond;
}

/** The first pid whose command line contains every needle (for the service processes). */
export function findPid(needles: string[]): number | undefined {
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (needles.every((n) => cmd.includes(n))) return pid;
    } catch {
      // gone
    }
  }
  return undefined;
}

export type CacheMode = 'dropped' | 'warmed';

/**
 * Puts the page cache in the same state before each contender: dropped (needs root), or,
 * when that is not permitted, warmed by reading everything once (the caller passes the warm-up).
 */
export async function resetPageCache(warm: () => Promise<void>): Promise<CacheMode> {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return 'dropped';
  } catch {
    await warm();
    return 'warmed';
  }
}
