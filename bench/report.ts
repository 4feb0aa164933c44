import type { ContenderResult } from './contenders.ts';
import type { Startup } from './more-contenders.ts';
import type { BenchSite } from './site-gen.ts';

// Turns the measurements into the figures table, the ratios against the targets, and JSON.

const MB = 1e6;
/** Files wpbackup keeps next to the dump (owner.json, client.cnf, node.json, sites.json): a block each. */
const BOOKKEEPING_BYTES = 64 * 1024;

export interface Row {
  name: string;
  label: string;
  wallS: number;
  mbPerS: number;
  cpuS: number;
  userS: number;
  sysS: number;
  /** Largest single process: its peak RSS and name. */
  peakRssMB: number;
  peakRssProc: string;
  /** The contender's own top process (ours: the wpbackup node process). */
  mainRssMB: number | null;
  peakTreeRssMB: number;
  peakTreePssMB: number;
  peakExtraDiskMB: number;
  archiveMB: number | null;
  minioCpuS: number | null;
  mariadbCpuS: number | null;
  /** Machine CPU not in the tree, MinIO or MariaDB: kernel work (loopback TCP, writeback), the bench's sampler, anything else running. */
  otherCpuS: number;
  stealS: number;
  cache: string;
}

export interface Target {
  what: string;
  value: string;
  target: string;
  met: boolean | null;
}

/** One measured contender of ours against the spec's pipeline and its floor, with the issue's targets. */
export interface Case {
  case: string;
  contender: string;
  wallS: number;
  spec: { name: string; wallS: number; ratio: number; pass: boolean } | null;
  floor: { wallS: number; boundBy: string; ratio: number; pass: boolean } | null;
  /**
   * Peak of the sum of Pss over the whole process tree (wpbackup and its children: the target's measure, shared pages
   * split between the processes mapping them), of the sum of VmRSS (shared pages counted once per process), and of
   * wpbackup's own process's RSS.
   */
  treePssMB: number;
  treeRssMB: number;
  mainRssMB: number | null;
  memPass: boolean;
}

export const TARGETS = { vsSpec: 0.75, vsFloor: 1.25, rssMB: 200, startupMs: 150 };
const OURS = new Set(['ours', 'ours-local', 'restore']);

export interface Summary {
  cases: Case[];
  startup: (Startup & { pass: boolean }) | null;
  siteDataBytes: number;
  dumpBytes: number;
  rows: Row[];
  floor: { wallS: number; boundBy: string } | null;
  /** The CPU-bound floor: CPU seconds of (i) and (ii), servers included, over all cores. */
  cpuFloor: { wallS: number; cpuS: number; cores: number } | null;
  targets: Target[];
  stages: Record<string, Record<string, number>>;
  steps: Record<string, { label: string; wallS: number; cpuS: number; maxRssMB: number }[]>;
  procs: Record<string, { name: string; step: string; role: string; peakRssMB: number; cpuS: number }[]>;
}

function row(r: ContenderResult, siteDataBytes: number): Row {
  const m = r.m;
  const top = m.procs[0];
  const main = m.procs.find((p) => p.role === 'main' && (r.name !== 'ours' || p.step === 'wpbackup backup'));
  const mainRss = OURS.has(r.name) ? m.procs.filter((p) => p.role === 'main').reduce((mx, p) => Math.max(mx, p.peakRssKiB), 0) : main?.peakRssKiB;
  return {
    name: r.name, label: r.label, wallS: m.wallS, mbPerS: siteDataBytes / MB / m.wallS, cpuS: m.cpuS, userS: m.userS, sysS: m.sysS,
    peakRssMB: (m.peakProcRssKiB * 1024) / MB, peakRssProc: top?.name ?? '?',
    mainRssMB: mainRss === undefined ? null : (mainRss * 1024) / MB,
    peakTreeRssMB: (m.peakTreeRssKiB * 1024) / MB, peakTreePssMB: (m.peakTreePssKiB * 1024) / MB, peakExtraDiskMB: m.peakExtraDiskBytes / MB,
    archiveMB: r.archiveBytes === null ? null : r.archiveBytes / MB, minioCpuS: r.serverCpu.minioS, mariadbCpuS: r.serverCpu.mariadbS,
    otherCpuS: m.machineCpuS - m.cpuS - (r.serverCpu.minioS ?? 0) - (r.serverCpu.mariadbS ?? 0), stealS: m.stealS, cache: r.cache,
  };
}

/** The floor of a case: the slowest of the parts a pipeline could at best overlap. */
function floorOf(parts: [ContenderResult | undefined, string][]): { wallS: number; boundBy: string } | null {
  if (parts.some(([r]) => !r)) return null;
  const [r, label] = parts.sort((a, b) => (b[0] as ContenderResult).m.wallS - (a[0] as ContenderResult).m.wallS)[0] as [ContenderResult, string];
  return { wallS: r.m.wallS, boundBy: label };
}

function oneCase(name: string, r: ContenderResult | undefined, spec: ContenderResult | undefined, floor: { wallS: number; boundBy: string } | null, rows: Row[]): Case[] {
  if (!r) return [];
  const ratio = (d: number): number => r.m.wallS / d;
  const treeRssMB = (r.m.peakTreeRssKiB * 1024) / MB;
  const treePssMB = (r.m.peakTreePssKiB * 1024) / MB;
  return [{
    case: name, contender: r.name, wallS: r.m.wallS,
    spec: spec ? { name: spec.name, wallS: spec.m.wallS, ratio: ratio(spec.m.wallS), pass: ratio(spec.m.wallS) <= TARGETS.vsSpec } : null,
    floor: floor ? { ...floor, ratio: ratio(floor.wallS), pass: ratio(floor.wallS) <= TARGETS.vsFloor } : null,
    treePssMB, treeRssMB, mainRssMB: rows.find((x) => x.name === r.name)?.mainRssMB ?? null, memPass: treePssMB < TARGETS.rssMB,
  }];
}

export function summarize(results: Record<string, ContenderResult>, site: BenchSite, cores: number, startup: Startup | null = null): Summary {
  const ours = results.ours;
  const spec = results.spec;
  const dumpBytes = ours?.dumpBytes ?? spec?.dumpBytes ?? site.sqlBytes;
  const siteDataBytes = dumpBytes + site.wpContentBytes;
  const rows = Object.values(results).map((r) => row(r, siteDataBytes));
  const fc = results['floor-cpu'];
  const fn = results['floor-net'];
  const floor = fc && fn ? { wallS: Math.max(fc.m.wallS, fn.m.wallS), boundBy: fc.m.wallS >= fn.m.wallS ? 'floor (i) read+compress' : 'floor (ii) upload' } : null;
  // max(i, ii) assumes (i) and (ii) could overlap for free. With MinIO on the same few cores they
  // share the CPU, so no pipeline doing both can beat their CPU seconds (MinIO's and MariaDB's
  // included) spread over every core.
  const serverCpu = (r: ContenderResult): number => r.m.cpuS + (r.serverCpu.minioS ?? 0) + (r.serverCpu.mariadbS ?? 0);
  const cpuFloor = fc && fn ? { wallS: (serverCpu(fc) + serverCpu(fn)) / cores, cpuS: serverCpu(fc) + serverCpu(fn), cores } : null;
  const cases = [
    ...oneCase('backup to S3', ours, spec, floor, rows),
    ...oneCase('backup to a local dir', results['ours-local'], results['spec-local'], floorOf([[fc, 'floor (i) read+compress'], [results['floor-fsync'], 'floor (iii) fsynced write']]), rows),
    ...oneCase('restore from a local archive', results.restore, undefined, floorOf([[results['restore-floor'], 'zstd -d | tar -x; mariadb < database.sql']]), rows),
  ];
  const targets: Target[] = [];
  const fo = results['floor-net-ours'];
  if (ours && fc && fo) {
    const x = ours.m.wallS / Math.max(fc.m.wallS, fo.m.wallS);
    targets.push({ what: "ours / max(i, ii') (information)", value: x.toFixed(2), target: '-', met: null });
  }
  if (ours && cpuFloor) {
    const x = ours.m.wallS / cpuFloor.wallS;
    targets.push({ what: 'ours / CPU-bound floor (information)', value: x.toFixed(2), target: '-', met: null });
  }
  for (const r of [ours, results['ours-local']]) {
    if (!r) continue;
    const extra = r.m.peakExtraDiskBytes;
    targets.push({ what: `${r.name} peak extra disk / DB dump size`, value: `${(extra / dumpBytes).toFixed(3)} (${(extra / MB).toFixed(1)} MB vs ${(dumpBytes / MB).toFixed(1)} MB)`, target: '<= 1 (+64 KiB of run files)', met: extra <= dumpBytes + BOOKKEEPING_BYTES });
  }
  const stages = Object.fromEntries(Object.values(results).map((r) => [r.name, r.stages]));
  const steps = Object.fromEntries(Object.values(results).map((r) => [r.name, r.m.steps.map((s) => ({ label: s.label, wallS: s.wallS, cpuS: s.userS + s.sysS, maxRssMB: (s.maxRssKiB * 1024) / MB }))]));
  const procs = Object.fromEntries(Object.values(results).map((r) => [r.name, r.m.procs.slice(0, 12).map((p) => ({ name: p.name, step: p.step, role: p.role, peakRssMB: (p.peakRssKiB * 1024) / MB, cpuS: p.cpuS }))]));
  return { cases, startup: startup ? { ...startup, pass: startup.bestMs < TARGETS.startupMs } : null, siteDataBytes, dumpBytes, rows, floor, cpuFloor, targets, stages, steps, procs };
}

function table(head: string[], body: string[][], rightFrom = 1): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (i >= rightFrom ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n') + '\n';
}

const f1 = (n: number | null): string => (n === null ? '-' : n.toFixed(1));
const short: Record<string, string> = {
  ours: 'ours (wpbackup backup to S3)', 'ours-local': 'ours-local (wpbackup backup to a dir)', restore: 'restore (wpbackup restore)', spec: 'spec pipeline',
  'spec-local': 'spec pipeline to a dir', 'floor-cpu': 'floor (i) dump+tar|zstd', 'floor-net': 'floor (ii) upload only', 'floor-net-ours': "floor (ii') wpbackup upload",
  'floor-fsync': 'floor (iii) fsynced write', 'restore-floor': 'restore floor (zstd -d|tar -x; import)',
};
const verdict = (pass: boolean): string => (pass ? 'PASS' : 'FAIL');

/** The issue's targets per case: ours against the spec's pipeline, its floor, and memory. */
function formatCases(s: Summary): string {
  const out: string[] = [];
  const body = s.cases.map((c) => [
    c.case, c.contender, c.wallS.toFixed(1),
    c.spec ? `${c.spec.ratio.toFixed(2)} of ${c.spec.wallS.toFixed(1)} ${verdict(c.spec.pass)}` : '-',
    c.floor ? `${c.floor.ratio.toFixed(2)} of ${c.floor.wallS.toFixed(1)} ${verdict(c.floor.pass)}` : '-',
    c.floor?.boundBy ?? '-',
    `${c.treePssMB.toFixed(1)} ${verdict(c.memPass)}`, c.treeRssMB.toFixed(1), f1(c.mainRssMB),
  ]);
  if (body.length) {
    out.push(table(['case', 'contender', 'wall s', `/ spec (<= ${TARGETS.vsSpec})`, `/ floor (<= ${TARGETS.vsFloor})`, 'floor bound by', `tree memory MB (< ${TARGETS.rssMB})`, 'tree RSS sum MB', 'wpbackup RSS MB'], body, 2));
    out.push(`(tree memory: the largest sum of Pss over wpbackup's whole process tree (the node process and its children: reader,
 zstd, mariadb-dump / mariadb, tar) at one 100 ms sample, each shared page split between the processes that map it;
 tree RSS sum: the same with VmRSS, where the Node binary's pages count once per Node process, so it errs high)
`);
  }
  if (s.startup) out.push(`start-up: best of ${s.startup.runs} runs of ${s.startup.command}: ${s.startup.bestMs.toFixed(0)} ms (median ${s.startup.medianMs.toFixed(0)} ms), target < ${TARGETS.startupMs} ms: ${verdict(s.startup.pass)}
`);
  return out.join('');
}

export interface ReportInput {
  command: string;
  site: BenchSite;
  summary: Summary;
  runs: number;
  env: Record<string, string | number>;
  siteReused: boolean;
  /** Wall times of every run, per contender. */
  ranges: Record<string, number[]>;
}

export function formatReport(i: ReportInput): string {
  const s = i.summary;
  const body = s.rows.map((r) => [
    short[r.name] ?? r.name, r.wallS.toFixed(1), r.mbPerS.toFixed(1), `${r.cpuS.toFixed(1)} (${r.userS.toFixed(1)}+${r.sysS.toFixed(1)})`,
    `${r.peakRssMB.toFixed(1)} ${r.peakRssProc}`, f1(r.mainRssMB), f1(r.peakTreePssMB), f1(r.peakTreeRssMB), f1(r.peakExtraDiskMB), f1(r.archiveMB), f1(r.minioCpuS), f1(r.mariadbCpuS), f1(r.otherCpuS),
    ...(i.runs > 1 ? [(i.ranges[r.name] ?? []).map((w) => w.toFixed(1)).join(' ')] : []),
  ]);
  const pad = i.runs > 1 ? [''] : [];
  if (s.floor) body.push([`floor = max(i, ii)`, s.floor.wallS.toFixed(1), (s.siteDataBytes / MB / s.floor.wallS).toFixed(1), '', '', '', '', '', '', '', '', '', '', ...pad]);
  if (s.cpuFloor) body.push([`CPU-bound floor`, s.cpuFloor.wallS.toFixed(1), (s.siteDataBytes / MB / s.cpuFloor.wallS).toFixed(1), `${s.cpuFloor.cpuS.toFixed(1)} incl. servers`, '', '', '', '', '', '', '', '', '', ...pad]);
  const out: string[] = [];
  out.push(`\nwpbackup benchmark: ${i.command}\n`);
  out.push(`site ${i.site.key}${i.siteReused ? ' (kept from an earlier run)' : ''}: DB dump ${(s.dumpBytes / MB).toFixed(1)} MB + wp-content ${(i.site.wpContentBytes / MB).toFixed(1)} MB in ${i.site.wpContentFiles} files = ${(s.siteDataBytes / MB).toFixed(1)} MB of site data\n`);
  out.push(`machine: ${i.env.cpus} CPUs (${i.env.cpuModel}), ${i.env.memGiB} GiB, Linux ${i.env.kernel}, node ${i.env.node}, ${i.env.zstd}; MinIO on 127.0.0.1, same disk\n`);
  out.push(`page cache before each contender: ${s.rows[0]?.cache === 'dropped' ? 'dropped (sync; echo 3 > /proc/sys/vm/drop_caches)' : 'warmed by one untimed read of the site and one dump'}${i.runs > 1 ? `; fastest of ${i.runs} runs each` : ''}\n\n`);
  out.push(formatCases(s));
  out.push('\nevery contender:\n');
  out.push(table(['contender', 'wall s', 'MB/s', 'CPU s (usr+sys)', 'peak RSS MB (proc)', 'main RSS MB', 'tree PSS MB', 'tree RSS MB', 'extra disk MB', 'archive MB', 'MinIO CPU s', 'MariaDB CPU s', 'other CPU s', ...(i.runs > 1 ? ['all runs, wall s'] : [])], body));
  out.push('\nMB = 10^6 bytes. MB/s = site data (DB dump + wp-content) / wall time. CPU = user+sys of the contender\'s process tree\n');
  out.push('(GNU time rusage, children included); MinIO\'s and MariaDB\'s CPU is not in it and is shown apart, as is "other": the rest\n');
  out.push('of the machine\'s busy time meanwhile (kernel loopback-TCP and writeback work, the bench\'s sampler, anything else running). Peak RSS: the largest\n');
  out.push('single process (VmHWM sampled every 100 ms and GNU time); main = the contender\'s own top process (ours: the wpbackup\n');
  out.push('node process); tree = the largest sum of VmRSS over the tree at one sample. Extra disk: peak growth, sampled every\n');
  out.push('100 ms, of the allocated size of the dirs the contender writes to (ours: its --data-dir; spec: its temp dir); MinIO\'s\n');
  out.push('data dir is elsewhere and not counted.\n\n');
  out.push(table(['target', 'value', 'target', 'met'], s.targets.map((t) => [t.what, t.value, t.target, t.met === null ? '?' : t.met ? 'yes' : 'NO']), 99));
  if (s.floor) out.push(`(the floor is bound by ${s.floor.boundBy})\n`);
  if (s.rows.some((r) => r.name === 'floor-net-ours')) out.push("(floor (ii') uploads the same file with wpbackup's own uploader, which sends UNSIGNED-PAYLOAD to this loopback MinIO\n where the SDK signs every part's sha256: the floor stays the SDK's, as in the spec pipeline, and (ii') shows how\n much of the lead is the uploader's)\n");
  if (s.cpuFloor) out.push(`(CPU-bound floor = CPU s of floor (i) + floor (ii), MinIO's and MariaDB's included, / ${s.cpuFloor.cores} cores: with MinIO on the same\n machine, (i) and (ii) cannot overlap for free, so max(i, ii) is below what any pipeline doing both can reach)\n`);
  out.push('\nsteps and stages (seconds):\n');
  for (const [name, steps] of Object.entries(s.steps)) {
    if (OURS.has(name)) {
      const st = s.stages[name] ?? {};
      const names = Object.keys(st);
      const parts = names.map((k, j) => {
        const next = names[j + 1];
        return next ? `${k} ${((st[next] as number) - (st[k] as number)).toFixed(1)}` : '';
      }).filter(Boolean);
      out.push(`  ${short[name]}: ${parts.join(', ')}  (starts at ${(st[names[0] as string] ?? 0).toFixed(1)} s)\n`);
    } else {
      out.push(`  ${short[name] ?? name}: ${steps.map((x) => `${x.label} ${x.wallS.toFixed(1)} (cpu ${x.cpuS.toFixed(1)})`).join(', ')}\n`);
    }
  }
  for (const name of OURS) {
    const procs = s.procs[name];
    if (procs) out.push(`\n${name}, per process (CPU s sampled every 100 ms / peak RSS MB): ${procs.map((p) => `${p.role === 'main' ? 'wpbackup node' : p.name} ${p.cpuS.toFixed(1)} / ${p.peakRssMB.toFixed(1)}`).join(', ')}`);
  }
  out.push('\n');
  const busy = s.rows.map((r) => `${short[r.name] ?? r.name} ${(r.cpuS + (r.minioCpuS ?? 0) + (r.mariadbCpuS ?? 0) + r.otherCpuS).toFixed(1)} of ${(Number(i.env.cpus) * r.wallS).toFixed(1)}`);
  out.push(`machine CPU busy (core-seconds used of available, ${i.env.cpus} cores): ${busy.join('; ')}\n`);
  return out.join('');
}
