// The background passes' share of npm run bench:api, from the servers' own metrics: each
// server counts how long its passes take (wpbackup_pass_duration_seconds, periodic.ts), and
// the bench reads that histogram before and after the load, on the token-less
// --metrics-listen address, and reports what ran in between.

export interface PassHistogram {
  /** pass -> { count, sumSeconds, buckets: le -> cumulative count } */
  [pass: string]: { count: number; sum: number; buckets: Map<number, number> };
}

export interface PassCost {
  pass: string;
  passes: number;
  mean_ms: number;
  /** The slowest pass took at most this long (the histogram's bucket bound). */
  max_ms_at_most: number | null;
}

const LINE = /^wpbackup_pass_duration_seconds_(bucket|sum|count)\{([^}]*)\} (\S+)$/;

export async function scrapePasses(metricsUrl: string): Promise<PassHistogram> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const out: PassHistogram = {};
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    const pass = labels.pass ?? '';
    const h = (out[pass] ??= { count: 0, sum: 0, buckets: new Map() });
    const v = Number(m[3]);
    if (m[1] === 'count') h.count = v;
    else if (m[1] === 'sum') h.sum = v;
    else if (labels.le !== '+Inf') h.buckets.set(Number(labels.le), v);
  }
  return out;
}

/** What ran between two scrapes of one server. */
export function passCosts(before: PassHistogram, after: PassHistogram): PassCost[] {
  return Object.entries(after).map(([pass, a]) => {
    const b = before[pass];
    const passes = a.count - (b?.count ?? 0);
    const sum = a.sum - (b?.sum ?? 0);
    const bounds = [...a.buckets.keys()].sort((x, y) => x - y);
    const all = bounds.find((le) => (a.buckets.get(le) ?? 0) - (b?.buckets.get(le) ?? 0) === passes);
    return { pass, passes, mean_ms: passes === 0 ? 0 : +((1000 * sum) / passes).toFixed(1), max_ms_at_most: passes === 0 || all === undefined ? null : all * 1000 };
  });
}
