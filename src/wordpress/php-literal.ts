// Reads the literal values a PHP file such as wp-config.php assigns, without running PHP:
// define('NAME', value), const NAME = value; and $variable = value;. Values must be literals
// (strings, numbers, true/false/null, joined with `.`); anything else (getenv(), $_ENV,
// constants, function calls, string interpolation) is recorded as unevaluable with its line,
// so the caller can tell the user exactly what to change.
//
// PHP strings are byte strings, so the source is read as latin1 (one char per byte) and values
// are decoded as UTF-8 only at the end: that keeps "\xC3\xA9" and 'é' the same bytes, as in PHP.

import { INT64_MAX, tokenize, type Token } from './php-lexer.ts';

export { tokenize, type Token };

export type PhpValue = string | number | boolean | null;

interface DefinitionBase {
  name: string;
  /** Line of the define / const / $variable that set it. */
  line: number;
  kind: 'define' | 'const' | 'variable';
  /** Inside an if/else, a block or after `||`: PHP may or may not run it. */
  conditional: boolean;
}

export type PhpDefinition =
  /** value is typed (PHP ints and floats are numbers); text is exactly PHP's (string) cast. */
  | (DefinitionBase & { ok: true; value: PhpValue; text: string })
  /** reason completes "NAME is set with ...", e.g. "getenv()" or "the constant ABSPATH". */
  | (DefinitionBase & { ok: false; reason: string });

export interface PhpInclude {
  line: number;
  /** The include's expression as written, e.g. "ABSPATH . 'wp-settings.php'". */
  text: string;
}

export interface PhpLiterals {
  /** Constants from define() and const; the first definition wins, as in PHP. */
  constants: Map<string, PhpDefinition>;
  /** Variables from $name = ...; the last assignment wins, as in PHP. */
  variables: Map<string, PhpDefinition>;
  /** include / require statements: values may come from those files instead. */
  includes: PhpInclude[];
}

/** Reads every literal definition in a PHP source. Throws bad_input on a PHP syntax error. */
export function parsePhpLiterals(source: string | Uint8Array, file = 'PHP file'): PhpLiterals {
  const tokens = tokenize(toBytes(source), file);
  const mask = conditionalMask(tokens);
  const out: PhpLiterals = { constants: new Map(), variables: new Map(), includes: [] };
  const raw = { constants: new Map<string, RawDef>(), variables: new Map<string, RawDef>() };
  for (let i = 0; i < tokens.length; i++) {
    const found = readStatement(tokens, i, mask[i] ?? false);
    for (const def of found) {
      if (def.kind === 'variable') setVariable(raw.variables, def);
      else setConstant(raw.constants, def);
    }
    const inc = readInclude(tokens, i);
    if (inc) out.includes.push(inc);
  }
  for (const [name, def] of raw.constants) out.constants.set(name, finish(def));
  for (const [name, def] of raw.variables) out.variables.set(name, finish(def));
  return out;
}

function toBytes(source: string | Uint8Array): string {
  const buf = typeof source === 'string' ? Buffer.from(source, 'utf8') : Buffer.from(source);
  return buf.toString('latin1');
}

// ---------------------------------------------------------------------------------------------
// Which tokens PHP might skip: bodies of if/else/loops, any { } block, and the right side of
// `||` / `or` / `?` (as in `defined('X') || define('X', 1);`). Only used to flag ambiguity.

const CONTROL = new Set(['if', 'elseif', 'while', 'for', 'foreach', 'switch']);
const ALT_END = new Set(['endif', 'endwhile', 'endfor', 'endforeach', 'endswitch']);
const SHORT_CIRCUIT = new Set(['||', '&&', '??', '?', 'or', 'and', 'xor']);

function conditionalMask(tokens: Token[]): boolean[] {
  const mask: boolean[] = [];
  let braces = 0;
  let alt = 0;
  let parens = 0;
  let single = -1; // paren depth of a brace-less body that ends at the next `;`
  tokens.forEach((t, i) => {
    mask.push(braces > 0 || alt > 0 || single >= 0);
    const word = t.kind === 'id' || t.kind === 'op' ? t.text.toLowerCase() : '';
    if (t.kind === 'op' && word === '{') braces++;
    else if (t.kind === 'op' && word === '}') braces = Math.max(0, braces - 1);
    else if (word === '(' || word === '[') parens++;
    else if (word === ')' || word === ']') {
      parens = Math.max(0, parens - 1);
      if (parens < single) single = -1; // `if (a && b)`: the && ends with the )
    } else if (word === ';' && single === parens) single = -1;
    else if (t.kind === 'id' && CONTROL.has(word)) {
      const after = tokens[matchingParen(tokens, i + 1) + 1];
      if (isOp(after, ':')) alt++;
      else if (!isOp(after, '{')) single = parens;
    } else if (t.kind === 'id' && word === 'else') {
      const after = tokens[i + 1];
      if (!isOp(after, '{') && !isOp(after, ':') && !isWord(after, 'if')) single = parens;
    } else if (t.kind === 'id' && ALT_END.has(word)) alt = Math.max(0, alt - 1);
    else if (SHORT_CIRCUIT.has(word) && single < 0) single = parens;
  });
  return mask;
}

/** Index of the `)` matching the `(` at `open`, or `open` itself when there is none. */
function matchingParen(tokens: Token[], open: number): number {
  if (!isOp(tokens[open], '(')) return open;
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    if (isOp(tokens[i], '(')) depth++;
    else if (isOp(tokens[i], ')') && --depth === 0) return i;
  }
  return tokens.length;
}

function isOp(t: Token | undefined, text: string): boolean {
  return t?.kind === 'op' && t.text === text;
}

function isWord(t: Token | undefined, word: string): boolean {
  return t?.kind === 'id' && t.text.toLowerCase() === word;
}

// ---------------------------------------------------------------------------------------------
// Statements

type Val = string | bigint | number | boolean | null; // bigint is a PHP int, number a PHP float
type Evaluated = { ok: true; value: Val } | { ok: false; reason: string };
/** `append`: set with .= ; `ambiguous`: already known to depend on a condition. */
type RawDef = DefinitionBase & Evaluated & { append?: boolean; ambiguous?: boolean };

function readStatement(tokens: Token[], i: number, conditional: boolean): RawDef[] {
  const t = tokens[i];
  const prev = tokens[i - 1];
  // `->define(`, `::define(`, `function define(` are something else.
  if (isOp(prev, '->') || isOp(prev, '?->') || isOp(prev, '::') || isWord(prev, 'function')) return [];
  if (isWord(t, 'define') && isOp(tokens[i + 1], '(')) return readDefine(tokens, i, conditional);
  if (isWord(t, 'const')) return readConst(tokens, i, conditional);
  if (t?.kind === 'var' && !isOp(prev, '$')) return readAssignment(tokens, i, conditional);
  return [];
}

function readDefine(tokens: Token[], i: number, conditional: boolean): RawDef[] {
  const args = splitArgs(tokens, i + 1);
  const named = (n: string) => args.find((a) => a.name === n)?.tokens;
  const nameToks = named('constant_name') ?? args.find((a) => !a.name)?.tokens ?? [];
  const valueToks = named('value') ?? args.filter((a) => !a.name)[1]?.tokens ?? [];
  const name = evaluate(nameToks);
  if (!name.ok || typeof name.value !== 'string') return []; // a computed name: nothing to record
  const line = tokens[i]?.line ?? 0;
  return [{ name: name.value, line, kind: 'define', conditional, ...evaluate(valueToks) }];
}

/** `const A = 1, B = 'x';` */
function readConst(tokens: Token[], i: number, conditional: boolean): RawDef[] {
  const defs: RawDef[] = [];
  let j = i + 1;
  for (;;) {
    const name = tokens[j];
    if (name?.kind !== 'id' || !isOp(tokens[j + 1], '=')) return defs;
    const end = expressionEnd(tokens, j + 2, [',', ';']);
    defs.push({ name: name.text, line: name.line, kind: 'const', conditional, ...evaluate(tokens.slice(j + 2, end)) });
    if (!isOp(tokens[end], ',')) return defs;
    j = end + 1;
  }
}

/** `$name = value;` and `$name .= value;`; other compound assignments make it unevaluable. */
function readAssignment(tokens: Token[], i: number, conditional: boolean): RawDef[] {
  const t = tokens[i];
  const op = tokens[i + 1];
  if (t?.kind !== 'var' || op?.kind !== 'op') return [];
  const base = { name: t.text, line: t.line, kind: 'variable' as const, conditional };
  if (op.text === '=' || op.text === '.=') {
    const value = evaluate(tokens.slice(i + 2, expressionEnd(tokens, i + 2, [';', ','])));
    return [{ ...base, ...value, ...(op.text === '.=' ? { append: true } : {}) }];
  }
  if (/^(?:[-+*/%&|^]|\*\*|<<|>>|\?\?)=$|^(?:\+\+|--)$/.test(op.text)) {
    return [{ ...base, ok: false, reason: `an expression (it is changed with ${op.text} on line ${t.line})` }];
  }
  return [];
}

function readInclude(tokens: Token[], i: number): PhpInclude | undefined {
  const t = tokens[i];
  if (t?.kind !== 'id' || !/^(?:include|require)(?:_once)?$/i.test(t.text)) return undefined;
  const end = expressionEnd(tokens, i + 1, [';']);
  return { line: t.line, text: render(tokens.slice(i + 1, end)) };
}

interface Arg {
  name?: string;
  tokens: Token[];
}

/** Arguments of the call whose `(` is at `open`, split at top-level commas; `name:` for named ones. */
function splitArgs(tokens: Token[], open: number): Arg[] {
  const args: Arg[] = [];
  let start = open + 1;
  for (;;) {
    const end = expressionEnd(tokens, start, [',']);
    const slice = tokens.slice(start, end);
    const first = slice[0];
    if (first?.kind === 'id' && isOp(slice[1], ':')) args.push({ name: first.text, tokens: slice.slice(2) });
    else if (slice.length) args.push({ tokens: slice });
    if (!isOp(tokens[end], ',')) return args;
    start = end + 1;
  }
}

/** Index of the first stop operator at depth 0, or of a bracket closing an outer one. */
function expressionEnd(tokens: Token[], start: number, stops: string[]): number {
  let depth = 0;
  for (let i = start; i < tokens.length; i++) {
    const t = tokens[i];
    if (t?.kind !== 'op') continue;
    if (t.text === ';' && depth === 0) return i; // a statement never runs past `;`
    if (depth === 0 && stops.includes(t.text)) return i;
    if ('([{'.includes(t.text) || t.text === '#[') depth++;
    else if (')]}'.includes(t.text) && depth-- === 0) return i;
  }
  return tokens.length;
}

// ---------------------------------------------------------------------------------------------
// Evaluating a literal expression: literal ('.' literal)*, with ( ) and unary - / +.

function evaluate(tokens: Token[]): Evaluated {
  if (!tokens.length) return { ok: false, reason: 'no value' };
  const at = { i: 0 };
  const result = concat(tokens, at);
  if (result.ok && at.i < tokens.length) return { ok: false, reason: describeToken(tokens, at.i) };
  return result;
}

function concat(tokens: Token[], at: { i: number }): Evaluated {
  let left = unary(tokens, at);
  while (left.ok && isOp(tokens[at.i], '.')) {
    at.i++;
    const right = unary(tokens, at);
    if (!right.ok) return right;
    left = { ok: true, value: phpString(left.value) + phpString(right.value) };
  }
  return left;
}

function unary(tokens: Token[], at: { i: number }): Evaluated {
  const t = tokens[at.i];
  if (!t) return { ok: false, reason: 'an incomplete expression' };
  if (isOp(t, '-') || isOp(t, '+')) return signed(tokens, at, isOp(t, '-') ? '-' : '+');
  if (isOp(t, '(')) {
    at.i++;
    const inner = concat(tokens, at);
    if (!inner.ok) return inner;
    if (!isOp(tokens[at.i], ')')) return { ok: false, reason: describeToken(tokens, at.i) };
    at.i++;
    return inner;
  }
  const value = literal(t);
  if (value === undefined) return { ok: false, reason: describeToken(tokens, at.i) };
  at.i++;
  return { ok: true, value };
}

function signed(tokens: Token[], at: { i: number }, sign: string): Evaluated {
  const start = at.i;
  at.i++;
  const inner = unary(tokens, at);
  if (!inner.ok) return inner;
  const v = inner.value;
  if (typeof v === 'bigint') return { ok: true, value: sign === '-' && -v > INT64_MAX ? Number(-v) : sign === '-' ? -v : v };
  if (typeof v === 'number') return { ok: true, value: sign === '-' ? -v : v };
  return { ok: false, reason: describeToken(tokens, start) }; // -'5' is arithmetic on a string
}

function literal(t: Token): Val | undefined {
  if (t.kind === 'str') return t.interp || t.shell ? undefined : t.text;
  if (t.kind === 'int' || t.kind === 'float') return t.value;
  if (t.kind !== 'id') return undefined;
  const word = t.text.toLowerCase();
  if (word === 'true') return true;
  if (word === 'false') return false;
  if (word === 'null') return null;
  return undefined;
}

const MAGIC = /^__(?:DIR|FILE|LINE|CLASS|FUNCTION|METHOD|NAMESPACE|TRAIT)__$/i;

/** What stops evaluation at tokens[i], phrased to follow "is set with". */
function describeToken(tokens: Token[], i: number): string {
  const t = tokens[i];
  const next = tokens[i + 1];
  if (!t) return 'an incomplete expression';
  if (t.kind === 'str') return t.shell ? 'a shell command in backticks' : `the variable ${t.interp ?? ''} inside a double-quoted string`;
  if (t.kind === 'var') {
    const key = tokens[i + 2];
    const index = isOp(next, '[') && key?.kind === 'str' && isOp(tokens[i + 3], ']') ? `['${key.text}']` : '';
    return `$${t.text}${index}`;
  }
  if (t.kind === 'id' && isOp(next, '(')) return `${t.text}()`;
  if (t.kind === 'id' && isOp(tokens[i - 1], '(') && isOp(next, ')')) return `a (${t.text}) cast`;
  if (t.kind === 'id') return MAGIC.test(t.text) ? t.text : `the constant ${t.text}`;
  if (t.kind === 'op' && t.text === '[') return 'an array';
  if (t.kind === 'op') return `an expression using ${t.text}`;
  return 'an expression wpbackup does not understand';
}

/** PHP's (string) cast of a scalar. */
function phpString(v: Val): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return phpFloat(v);
  return v === true ? '1' : '';
}

/** Floats print like PHP's `precision` = 14: 14 significant digits, E notation outside 1e-4 .. 1e14. */
function phpFloat(f: number): string {
  if (Number.isNaN(f)) return 'NAN';
  if (!Number.isFinite(f)) return f > 0 ? 'INF' : '-INF';
  if (f === 0) return Object.is(f, -0) ? '-0' : '0';
  const { digits, exp } = roundedDigits(Math.abs(f), 14);
  const sign = f < 0 ? '-' : '';
  if (exp < -4 || exp >= 14) return `${sign}${digits[0]}.${digits.slice(1) || '0'}E${exp < 0 ? '-' : '+'}${Math.abs(exp)}`;
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const int = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return frac ? `${sign}${int}.${frac}` : `${sign}${int}`;
}

/**
 * The first `n` significant digits of f > 0 (trailing zeros dropped) and the power of ten of the
 * first one, rounded from f's exact binary value with ties to even, as PHP's zend_dtoa does.
 */
function roundedDigits(f: number, n: number): { digits: string; exp: number } {
  let m = f;
  let shift = 0;
  // Exact: doubling only moves the binary point.
  for (; !Number.isInteger(m); shift++) m *= 2;
  const exact = (BigInt(m) * 5n ** BigInt(shift)).toString(); // f = exact * 10^-shift
  let exp = exact.length - shift - 1;
  let kept = BigInt(exact.slice(0, n));
  const rest = exact.slice(n).replace(/0+$/, '');
  const half = rest ? Number(rest[0]) - 5 || (rest.length > 1 ? 1 : 0) : -1; // >0 above half, 0 a tie
  if (half > 0 || (half === 0 && kept % 2n === 1n)) kept++;
  let digits = kept.toString();
  if (digits.length > Math.min(n, exact.length)) {
    exp += 1; // 999.. rounded up to 1000..
    digits = digits.slice(0, -1);
  }
  return { digits: digits.replace(/0+$/, ''), exp };
}

function render(tokens: Token[]): string {
  const text = tokens
    .map((t) => (t.kind === 'str' ? `'${t.text}'` : t.kind === 'int' || t.kind === 'float' ? String(t.value) : t.kind === 'var' ? `$${t.text}` : t.text))
    .join(' ')
    .replace(/\( /g, '(')
    .replace(/ \)/g, ')');
  return Buffer.from(text, 'latin1').toString('utf8');
}

// ---------------------------------------------------------------------------------------------
// Combining repeated definitions

function same(a: RawDef, b: RawDef): boolean {
  return a.ok && b.ok && a.value === b.value;
}

/** PHP keeps the first define(); when that one might not run, a different later one makes it unknowable. */
function setConstant(map: Map<string, RawDef>, def: RawDef): void {
  const old = map.get(def.name);
  if (!old) map.set(def.name, def);
  else if (old.conditional && !old.ambiguous && !same(old, def)) map.set(def.name, ambiguous(old, def, 'defined'));
}

/** The last assignment wins; a conditional one that differs makes it unknowable. */
function setVariable(map: Map<string, RawDef>, def: RawDef): void {
  const old = map.get(def.name);
  const next = def.append ? appended(old, def) : def;
  if (!old || !def.conditional) map.set(def.name, next);
  else if (!same(old, next)) map.set(def.name, ambiguous(old, next, 'assigned'));
}

function appended(old: RawDef | undefined, def: RawDef): RawDef {
  const { append: _append, ...plain } = def;
  if (!plain.ok) return plain;
  if (!old?.ok) return { ...plain, ok: false, reason: `an expression (it is extended with .= on line ${def.line})` };
  return { ...plain, line: old.line, value: phpString(old.value) + phpString(plain.value) };
}

function ambiguous(a: RawDef, b: RawDef, verb: string): RawDef {
  const reason = `an if/else (${verb} differently on lines ${a.line} and ${b.line}; wpbackup cannot tell which one PHP runs)`;
  return { name: a.name, line: a.line, kind: a.kind, conditional: true, ok: false, reason, ambiguous: true };
}

/** Converts to the public shape: UTF-8 strings, JS numbers, and PHP's string form. */
function finish(def: RawDef): PhpDefinition {
  const { name, line, kind, conditional } = def;
  const base = { name, line, kind, conditional };
  if (!def.ok) return { ...base, ok: false, reason: def.reason };
  const v = def.value;
  const text = decodeUtf8(phpString(v));
  if (text === undefined) return { ...base, ok: false, reason: 'bytes that are not valid UTF-8' };
  const value = typeof v === 'string' ? text : typeof v === 'bigint' ? Number(v) : v;
  return { ...base, ok: true, value, text };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8(bytes: string): string | undefined {
  try {
    return utf8.decode(Buffer.from(bytes, 'latin1'));
  } catch {
    return undefined;
  }
}
