// Statements are written with `?` placeholders; PostgreSQL wants $1, $2, ... A `?` inside a
// string literal, a quoted identifier or a comment is left alone.

const cache = new Map<string, string>();
const CACHE_MAX = 1000;

export function toDollarParams(sql: string): string {
  const known = cache.get(sql);
  if (known !== undefined) return known;
  const out = translate(sql);
  if (cache.size >= CACHE_MAX) cache.clear(); // statements are a fixed set; this only bounds a leak
  cache.set(sql, out);
  return out;
}

function translate(sql: string): string {
  let out = '';
  let n = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] as string;
    const skip = skipQuoted(sql, i);
    if (skip > i) {
      out += sql.slice(i, skip);
      i = skip;
    } else {
      out += c === '?' ? `$${++n}` : c;
      i++;
    }
  }
  return out;
}

/** The index after a literal, quoted identifier or comment starting at i; i when none does. */
function skipQuoted(sql: string, i: number): number {
  const c = sql[i];
  if (c === "'" || c === '"') {
    // '' (or "") inside is an escaped quote: the scan simply continues past it.
    let j = i + 1;
    while (j < sql.length) {
      if (sql[j] === c) {
        if (sql[j + 1] === c) j += 2;
        else return j + 1;
      } else j++;
    }
    return sql.length;
  }
  if (c === '-' && sql[i + 1] === '-') {
    const end = sql.indexOf('\n', i);
    return end === -1 ? sql.length : end;
  }
  if (c === '/' && sql[i + 1] === '*') {
    const end = sql.indexOf('*/', i + 2);
    return end === -1 ? sql.length : end + 2;
  }
  return i;
}
