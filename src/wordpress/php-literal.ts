// Reads the literal values a PHP file such as wp-config.php assigns, without running PHP:
// define('NAME', value), const NAME = value; and $variable = value;. Values must be literals
// (strings, numbers, true/false/null, joined with `.`); anything else (getenv(), $_ENV,
// constants, function calls, string interpolation) is recorded as unevaluable with its line,
// so the caller can tell the user exactly what to change.
//
// PHP strings are byte strings, so the source is read as latin1 (one char per byte) and values
// are decoded as UTF-8 only at the end: that keeps "\xC3\xA9" and 'é' the same bytes, as in PHP.

import { badInput } from '../errors.ts';

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

export type Token =
  | { kind: 'str'; text: string; line: number; interp?: string; shell?: boolean }
  | { kind: 'int'; value: bigint; line: number }
  | { kind: 'float'; value: number; line: number }
  | { kind: 'id' | 'var' | 'op'; text: string; line: number };

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
// Tokenizer

const NAME = /[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*/y;
const NAME_START = /[A-Za-z_\x80-\xff]/;
const NUMBER =
  /0[xX][0-9a-fA-F]+(?:_[0-9a-fA-F]+)*|0[bB][01]+(?:_[01]+)*|0[oO][0-7]+(?:_[0-7]+)*|(?:\d+(?:_\d+)*)?\.\d+(?:_\d+)*(?:[eE][+-]?\d+(?:_\d+)*)?|\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?(?:[eE][+-]?\d+(?:_\d+)*)?/y;
const HEREDOC_START =
  /<<<[ \t]*(?:"([A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)"|'([A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)'|([A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*))(\r\n|\n|\r)/y;
const OPEN_TAG = /<\?(?:php(?=\s|$)|=)/gi;
const OPS = ['<=>', '===', '!==', '**=', '...', '<<=', '>>=', '??=', '?->', '==', '!=', '<>', '<=', '>=', '&&', '||', '??', '->', '=>', '::', '++', '--', '.=', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '<<', '>>', '**'];
const INT64_MAX = 2n ** 63n - 1n;

interface Lexer {
  src: string;
  pos: number;
  file: string;
  newlines: number[];
  tokens: Token[];
}

/** Splits PHP source (one char per byte) into tokens; comments, whitespace and inline HTML go. */
export function tokenize(src: string, file = 'PHP file'): Token[] {
  const newlines: number[] = [];
  for (let i = src.indexOf('\n'); i >= 0; i = src.indexOf('\n', i + 1)) newlines.push(i);
  const lx: Lexer = { src, pos: 0, file, newlines, tokens: [] };
  let inPhp = false;
  while (lx.pos < src.length) inPhp = inPhp ? lexOne(lx) : skipInlineHtml(lx);
  return lx.tokens;
}

function lineAt(lx: Lexer, pos: number): number {
  let lo = 0;
  let hi = lx.newlines.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((lx.newlines[mid] ?? Infinity) < pos) lo = mid + 1;
    else hi = mid;
  }
  return lo + 1;
}

function syntaxError(lx: Lexer, pos: number, what: string): never {
  throw badInput(`${lx.file}:${lineAt(lx, pos)}: ${what}`, 'PHP itself cannot load this file either; fix the syntax error first');
}

function push(lx: Lexer, token: Token): void {
  lx.tokens.push(token);
}

/** Text outside <?php ... ?> is output, not code. Returns true once inside a PHP block. */
function skipInlineHtml(lx: Lexer): boolean {
  OPEN_TAG.lastIndex = lx.pos;
  const m = OPEN_TAG.exec(lx.src);
  if (!m) {
    lx.pos = lx.src.length;
    return false;
  }
  lx.pos = m.index + m[0].length;
  if (m[0] === '<?=') push(lx, { kind: 'id', text: 'echo', line: lineAt(lx, m.index) });
  return true;
}

/** Reads one token (or skips whitespace/comment). Returns false when `?>` leaves PHP mode. */
function lexOne(lx: Lexer): boolean {
  const { src, pos } = lx;
  const c = src[pos] ?? '';
  const two = src.slice(pos, pos + 2);
  const line = lineAt(lx, pos);
  if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f') lx.pos++;
  else if (two === '?>') return closeTag(lx, line);
  else if (two === '#[') lexAttributeStart(lx, line);
  else if (c === '#' || two === '//') skipLineComment(lx);
  else if (two === '/*') skipBlockComment(lx);
  else if (c === "'") lexSingle(lx, pos + 1);
  else if (c === '"' || c === '`') lexDouble(lx, pos + 1, c);
  else if ((c === 'b' || c === 'B') && (src[pos + 1] === "'" || src[pos + 1] === '"')) lx.pos++; // b'binary' prefix
  else if (src.startsWith('<<<', pos) && lexHeredoc(lx)) return true;
  else if (c === '$' && NAME_START.test(src[pos + 1] ?? '')) lexName(lx, pos + 1, 'var');
  else if (/\d/.test(c) || (c === '.' && /\d/.test(src[pos + 1] ?? ''))) lexNumber(lx);
  else if (NAME_START.test(c)) lexName(lx, pos, 'id');
  else lexOperator(lx);
  return true;
}

/** `?>` ends a statement like `;` and swallows one newline right after it, as PHP does. */
function closeTag(lx: Lexer, line: number): false {
  push(lx, { kind: 'op', text: ';', line });
  lx.pos += 2;
  if (lx.src.startsWith('\r\n', lx.pos)) lx.pos += 2;
  else if (lx.src[lx.pos] === '\n') lx.pos++;
  return false;
}

/** PHP 8 attributes `#[...]` look like a `#` comment but are code. */
function lexAttributeStart(lx: Lexer, line: number): void {
  push(lx, { kind: 'op', text: '#[', line });
  lx.pos += 2;
}

/** `//` and `#` comments end at the end of the line or just before `?>`. */
function skipLineComment(lx: Lexer): void {
  const { src } = lx;
  let i = lx.pos;
  while (i < src.length && src[i] !== '\n' && src[i] !== '\r' && !src.startsWith('?>', i)) i++;
  lx.pos = i;
}

/** PHP only warns about an unterminated comment; the rest of the file is comment. */
function skipBlockComment(lx: Lexer): void {
  const end = lx.src.indexOf('*/', lx.pos + 2);
  lx.pos = end < 0 ? lx.src.length : end + 2;
}

function lexName(lx: Lexer, start: number, kind: 'id' | 'var'): void {
  NAME.lastIndex = start;
  const m = NAME.exec(lx.src);
  const text = m?.[0] ?? '';
  push(lx, { kind, text, line: lineAt(lx, lx.pos) });
  lx.pos = start + text.length;
}

function lexOperator(lx: Lexer): void {
  const op = OPS.find((o) => lx.src.startsWith(o, lx.pos)) ?? lx.src[lx.pos] ?? '';
  push(lx, { kind: 'op', text: op, line: lineAt(lx, lx.pos) });
  lx.pos += op.length;
}

function lexNumber(lx: Lexer): void {
  NUMBER.lastIndex = lx.pos;
  const text = NUMBER.exec(lx.src)?.[0] ?? '';
  const line = lineAt(lx, lx.pos);
  const t = text.replaceAll('_', '');
  if (/^0[xXbBoO]/.test(t) || !/[.eE]/.test(t)) {
    if (/^0\d*[89]/.test(t)) syntaxError(lx, lx.pos, `invalid numeric literal ${text}`);
    const big = BigInt(/^0\d/.test(t) ? `0o${t.slice(1)}` : t);
    // PHP turns integers beyond 64 bits into floats.
    push(lx, big > INT64_MAX ? { kind: 'float', value: Number(big), line } : { kind: 'int', value: big, line });
  } else {
    push(lx, { kind: 'float', value: Number(t), line });
  }
  lx.pos += text.length;
}

/** Single quotes: only \\ and \' are escapes; any other backslash stays as written. */
function lexSingle(lx: Lexer, start: number): void {
  const { src } = lx;
  let out = '';
  let i = start;
  for (;;) {
    let j = i;
    while (j < src.length && src[j] !== "'" && src[j] !== '\\') j++;
    if (j >= src.length) syntaxError(lx, start - 1, 'unterminated single-quoted string');
    out += src.slice(i, j);
    if (src[j] === "'") {
      i = j + 1;
      break;
    }
    const next = src[j + 1];
    const escaped = next === '\\' || next === "'";
    out += escaped ? next : '\\';
    i = escaped ? j + 2 : j + 1;
  }
  push(lx, { kind: 'str', text: out, line: lineAt(lx, start - 1) });
  lx.pos = i;
}

function lexDouble(lx: Lexer, start: number, quote: '"' | '`'): void {
  const end = findQuoteEnd(lx.src, start, quote);
  if (end < 0) syntaxError(lx, start - 1, `unterminated ${quote === '"' ? 'double-quoted string' : 'backtick command'}`);
  const line = lineAt(lx, start - 1);
  const { text, interp } = unescape(lx, lx.src.slice(start, end), quote, start);
  push(lx, { kind: 'str', text, line, ...(interp ? { interp } : {}), ...(quote === '`' ? { shell: true } : {}) });
  lx.pos = end + 1;
}

/** Index of the closing quote, skipping escapes and {$...} interpolations (which may hold quotes). */
function findQuoteEnd(src: string, start: number, quote: string): number {
  let i = start;
  while (i < src.length) {
    const c = src[i];
    if (c === '\\') i += 2;
    else if (c === quote) return i;
    else if (c === '{' && src[i + 1] === '$') i = skipBraced(src, i + 1);
    else if (c === '$' && src[i + 1] === '{') i = skipBraced(src, i + 2);
    else i++;
  }
  return -1;
}

/** From the char after an interpolation's `{`, returns the index after its matching `}`. */
function skipBraced(src: string, start: number): number {
  let depth = 1;
  let i = start;
  while (i < src.length && depth > 0) {
    const c = src[i];
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === '"' || c === "'") {
      const end = c === '"' ? findQuoteEnd(src, i + 1, '"') : src.indexOf("'", i + 1);
      if (end < 0) return src.length;
      i = end;
    }
    i++;
  }
  return i;
}

/** Heredoc <<<ID / <<<"ID" and nowdoc <<<'ID'. Returns false when `<<<` is not one (an operator). */
function lexHeredoc(lx: Lexer): boolean {
  HEREDOC_START.lastIndex = lx.pos;
  const m = HEREDOC_START.exec(lx.src);
  if (!m) return false;
  const id = m[1] ?? m[2] ?? m[3] ?? '';
  const line = lineAt(lx, lx.pos);
  const bodyStart = HEREDOC_START.lastIndex;
  // PHP 7.3+: the closing marker may be indented and followed by anything but a name char.
  const close = new RegExp(`^([ \\t]*)${id}(?![A-Za-z0-9_\\x80-\\xff])`, 'gm');
  close.lastIndex = bodyStart;
  const end = close.exec(lx.src);
  if (!end) syntaxError(lx, lx.pos, `heredoc <<<${id} is never closed`);
  const raw = lx.src.slice(bodyStart, end.index).replace(/(?:\r\n|\n|\r)$/, '');
  const body = dedent(lx, raw, end[1] ?? '', end.index);
  if (m[2] !== undefined) push(lx, { kind: 'str', text: body, line });
  else {
    const { text, interp } = unescape(lx, body, 'heredoc', bodyStart);
    push(lx, { kind: 'str', text, line, ...(interp ? { interp } : {}) });
  }
  lx.pos = end.index + end[0].length;
  return true;
}

/** Removes the closing marker's indentation from every body line, with PHP's checks. */
function dedent(lx: Lexer, body: string, indent: string, closePos: number): string {
  if (!indent) return body;
  if (indent.includes(' ') && indent.includes('\t')) syntaxError(lx, closePos, 'heredoc indentation mixes tabs and spaces');
  const parts = body.split(/(\r\n|\n|\r)/);
  for (let i = 0; i < parts.length; i += 2) {
    const text = parts[i] ?? '';
    const lead = /^[ \t]*/.exec(text)?.[0] ?? '';
    if (lead.length === text.length) {
      parts[i] = text.slice(Math.min(lead.length, indent.length)); // blank lines may be shorter
      continue;
    }
    if (lead.length < indent.length) syntaxError(lx, closePos, `heredoc body is indented less than its closing marker (${indent.length})`);
    if (lead.slice(0, indent.length) !== indent) syntaxError(lx, closePos, 'heredoc indentation mixes tabs and spaces');
    parts[i] = text.slice(indent.length);
  }
  return parts.join('');
}

type QuoteMode = '"' | '`' | 'heredoc';

/** Applies double-quote escapes. `interp` names the first $variable interpolated, if any. */
function unescape(lx: Lexer, raw: string, mode: QuoteMode, offset: number): { text: string; interp?: string } {
  let text = '';
  let interp: string | undefined;
  for (let i = 0; i < raw.length; ) {
    const c = raw[i] ?? '';
    if (c === '\\') {
      const [out, used] = escapeAt(lx, raw, i, mode, offset);
      text += out;
      i += used;
      continue;
    }
    interp ??= interpolationAt(raw, i);
    text += c;
    i++;
  }
  return interp ? { text, interp } : { text };
}

function interpolationAt(raw: string, i: number): string | undefined {
  const dollar = raw[i] === '$' ? i : raw[i] === '{' && raw[i + 1] === '$' ? i + 1 : -1;
  if (dollar < 0) return undefined;
  if (raw[dollar + 1] === '{') return '${...}';
  NAME.lastIndex = dollar + 1;
  const m = NAME.exec(raw);
  return m ? `$${m[0]}` : undefined;
}

const SIMPLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', v: '\v', e: '\x1b', f: '\f', '\\': '\\', $: '$' };

/** One escape at raw[i] === '\\': returns [bytes, chars consumed]. Unknown escapes stay literal. */
function escapeAt(lx: Lexer, raw: string, i: number, mode: QuoteMode, offset: number): [string, number] {
  const n = raw[i + 1] ?? '';
  const simple = SIMPLE_ESCAPES[n];
  if (simple !== undefined) return [simple, 2];
  if ((n === '"' && mode === '"') || (n === '`' && mode === '`')) return [n, 2];
  const octal = /^[0-7]{1,3}/.exec(raw.slice(i + 1, i + 4));
  if (octal) return [String.fromCharCode(parseInt(octal[0], 8) & 0xff), 1 + octal[0].length]; // \400 wraps to \0
  const hex = n === 'x' ? /^[0-9A-Fa-f]{1,2}/.exec(raw.slice(i + 2, i + 4)) : null;
  if (hex) return [String.fromCharCode(parseInt(hex[0], 16)), 2 + hex[0].length];
  if (n === 'u' && raw[i + 2] === '{') {
    const m = /^\{([0-9A-Fa-f]+)\}/.exec(raw.slice(i + 2));
    const cp = m ? parseInt(m[1] ?? '', 16) : NaN;
    if (!m || cp > 0x10ffff) syntaxError(lx, offset + i, 'invalid \\u{...} escape (PHP needs 1 to 6 hex digits, at most 10FFFF)');
    return [utf8Bytes(cp), 2 + m[0].length];
  }
  return ['\\', 1];
}

/** UTF-8 encoding as PHP does it: surrogates too (JS would turn those into U+FFFD). */
function utf8Bytes(cp: number): string {
  if (cp < 0x80) return String.fromCharCode(cp);
  if (cp < 0x800) return String.fromCharCode(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  if (cp < 0x10000) return String.fromCharCode(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  return String.fromCharCode(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
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
