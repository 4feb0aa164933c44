import assert from 'node:assert/strict';

// A strict reader of the Prometheus text format (0.0.4): every line is empty, a HELP, a TYPE or a
// sample of a declared metric (histogram samples as _bucket, _sum, _count), names and labels
// well formed, values numbers. Samples come back by "name{a="x",b="y"}", labels sorted.

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL_VALUE = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*=${LABEL_VALUE}`;
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?,?\\})? (-?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|NaN|\\+Inf|-Inf)(?: -?\\d+)?$`);
const HELP = new RegExp(`^# HELP (${NAME}) .*$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const ONE_LABEL = new RegExp(`([a-zA-Z_][a-zA-Z0-9_]*)=(${LABEL_VALUE})`, 'g');

export function parseMetrics(text: string): Map<string, number> {
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  const lines = text.split('\n');
  assert.equal(lines.at(-1), '', 'the text ends with a newline');
  for (const [i, line] of lines.slice(0, -1).entries()) {
    const at = `line ${i + 1}: ${line}`;
    if (line === '') continue; // the format ignores empty lines
    if (line.startsWith('# HELP ')) {
      assert.match(line, HELP, at);
      continue;
    }
    const type = TYPE.exec(line);
    if (type) {
      assert.ok(!types.has(type[1] ?? ''), `${at}: TYPE given twice`);
      types.set(type[1] ?? '', type[2] ?? '');
      continue;
    }
    const m = SAMPLE.exec(line);
    assert.ok(m, `${at}: not a HELP, TYPE or sample line`);
    const name = m[1] ?? '';
    const base = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(base), `${at}: no TYPE for ${name}`);
    if (base !== name) assert.ok(['histogram', 'summary'].includes(types.get(base) ?? ''), `${at}: ${name} of a ${types.get(base)}`);
    const labels = [...(m[2] ?? '').matchAll(ONE_LABEL)].map(([, k, v]) => `${k}=${v}`).sort();
    const key = labels.length ? `${name}{${labels.join(',')}}` : name;
    assert.ok(!samples.has(key), `${at}: sample given twice`);
    samples.set(key, Number(m[3]?.replace('+Inf', 'Infinity')));
  }
  return samples;
}

/** The sample's value; fails when there is none. */
export function sample(samples: Map<string, number>, key: string): number {
  const v = samples.get(key);
  assert.ok(v !== undefined, `no sample ${key}; have:\n${[...samples.keys()].filter((k) => k.startsWith(key.split('{')[0] ?? '')).join('\n')}`);
  return v;
}
