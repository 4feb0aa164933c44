import type { Raw } from './rows.ts';

// A second table's row read in the same statement as the first (a request's credentials and
// the row the request names: one round trip instead of two on the hottest routes). Its columns
// travel under a prefix and come back unprefixed for the table's own row mapper.

/** 'a, b' of table alias t as 't.a AS p_a, t.b AS p_b'; plain column names only. */
export function prefixed(columns: string, alias: string, prefix: string): string {
  return columns.split(',').map((c) => `${alias}.${c.trim()} AS ${prefix}${c.trim()}`).join(', ');
}

/** The joined row, unprefixed; undefined when there was none (a LEFT JOIN's NULL id). */
export function unprefixed(r: Raw, prefix: string): Raw | undefined {
  if (r[`${prefix}id`] === null || r[`${prefix}id`] === undefined) return undefined;
  const out: Raw = {};
  for (const [k, v] of Object.entries(r)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}
