// parseArgs hands back loosely typed values; these narrow them.

type Value = string | boolean | string[] | boolean[] | undefined;

export function str(v: Value): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function strs(v: Value): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [];
}
