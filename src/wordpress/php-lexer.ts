// The PHP tokenizer behind php-literal.ts: splits a source (read as latin1, one char per
// byte, as PHP strings are bytes) into the tokens the evaluator needs, with PHP's own rules
// for quotes, escapes, heredocs, comments and open/close tags.

import { badInput } from '../errors.ts';

export type Token =
  | { kind: 'str'; text: string; line: number; interp?: string; shell?: boolean }
  | { kind: 'int'; value: bigint; line: number }
  | { kind: 'float'; value: number; line: number }
  | { kind: 'id' | 'var' | 'op'; text: string; line: number };


const NAME = /[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*/y;
const NAME_START = /[A-Za-z_\x80-\xff]/;
const NUMBER =
  /0[xX][0-9a-fA-F]+(?:_[0-9a-fA-F]+)*|0[bB][01]+(?:_[01]+)*|0[oO][0-7]+(?:_[0-7]+)*|(?:\d+(?:_\d+)*)?\.\d+(?:_\d+)*(?:[eE][+-]?\d+(?:_\d+)*)?|\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?(?:[eE][+-]?\d+(?:_\d+)*)?/y;
const HEREDOC_START =
  /<<<[ \t]*(?:"([A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)"|'([A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)'|([A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*))(\r\n|\n|\r)/y;
const OPEN_TAG = /<\?(?:php(?=\s|$)|=)/gi;
const OPS = ['<=>', '===', '!==', '**=', '...', '<<=', '>>=', '??=', '?->', '==', '!=', '<>', '<=', '>=', '&&', '||', '??', '->', '=>', '::', '++', '--', '.=', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '<<', '>>', '**'];
export const INT64_MAX = 2n ** 63n - 1n;

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

