import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

// No module under src/ reaches itself through its relative imports, type-only ones included:
// a cycle means two files that cannot be read, tested or moved one without the other.

const SRC = resolve(import.meta.dirname, '../../src');
const IMPORT = /^(?:import|export)\s[^;]*?\sfrom\s+'(\.{1,2}\/[^']+\.ts)'/gms;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

function importGraph(files: string[]): Map<string, string[]> {
  const known = new Set(files);
  return new Map(files.map((f) => [f, [...readFileSync(f, 'utf8').matchAll(IMPORT)].map((m) => resolve(dirname(f), m[1] ?? '')).filter((d) => known.has(d))]));
}

/** One cycle per back edge of a depth-first walk: empty exactly when the graph has none. */
function cycles(graph: Map<string, string[]>): string[][] {
  const done = new Set<string>();
  const path: string[] = [];
  const found: string[][] = [];
  const visit = (f: string): void => {
    path.push(f);
    for (const d of graph.get(f) ?? []) {
      const at = path.indexOf(d);
      if (at >= 0) found.push([...path.slice(at), d]);
      else if (!done.has(d)) visit(d);
    }
    path.pop();
    done.add(f);
  };
  for (const f of graph.keys()) if (!done.has(f)) visit(f);
  return found;
}

describe('import graph of src/', () => {
  it('has no cycles', () => {
    const found = cycles(importGraph(sources(SRC))).map((c) => c.map((f) => relative(SRC, f)).join(' -> '));
    assert.deepEqual(found, []);
  });

  it('finds a cycle when there is one (the check itself works)', () => {
    const graph = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]);
    assert.deepEqual(cycles(graph), [['a', 'b', 'c', 'a']]);
  });
});
