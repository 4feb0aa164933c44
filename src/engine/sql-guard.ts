import { Transform } from 'node:stream';
import { badInput } from '../errors.ts';

// The mysql/mariadb client runs its own commands when it reads them in a dump: `\! cmd` and
// `system cmd` run a shell, `source FILE` reads a file, `tee`/`pager` write files or run
// programs, `use`/`connect` switch databases. A restore runs the client as root, so a crafted
// database.sql must never reach it with one. The client is started with --binary-mode (and
// --sandbox where it has one); this scanner is the second lock: it reads database.sql the way
// the client does (quotes, backquotes, comments, DELIMITER) and refuses any client command.
//
// Named commands count at the start of a statement, backslash commands anywhere outside quoted
// data. Inside quoted data, backquotes and comments the scanner also refuses the few backslash
// pairs that would be dangerous commands (\! \. \T \P \e \u \C \d): mysqldump never writes
// them there (it escapes only \0 \n \r \\ \' \" \Z), and refusing them means that a server told
// to stop treating backslashes as escapes (NO_BACKSLASH_ESCAPES), which makes the client read
// quotes differently, cannot turn data into a command either.

/** The client's named commands (mariadb --help, `help` at its prompt); DELIMITER alone is allowed. */
const NAMED = new Set([
  'charset', 'clear', 'connect', 'delimiter', 'edit', 'ego', 'exit', 'go', 'help', 'nopager', 'notee', 'nowarning',
  'pager', 'print', 'prompt', 'quit', 'rehash', 'sandbox', 'source', 'status', 'system', 'tee', 'use', 'warnings',
]);
/** SQL statements no dump holds that reach for files: LOAD DATA/XML [LOCAL] INFILE (the client runs with --local-infile=0 too). */
const FILE_STATEMENTS = new Set(['load']);
/** Backslash commands allowed outside quotes: \- turns the sandbox on (mariadb-dump's first line), \N is NULL. */
const SAFE_BACKSLASH = new Set(['-', 'N']);
const DANGEROUS_PAIR = new Set(['!', '.', 'T', 'P', 'e', 'u', 'C', 'd']);
const MAX_WORD = 16;
const MAX_DELIMITER_LINE = 64;

type Mode = 'code' | 'squote' | 'dquote' | 'btick' | 'block' | 'line' | 'delim';

const BS = 0x5c;
const NL = 0x0a;

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === NL || c === 0x0d || c === 0x0b || c === 0x0c;
}

function isWordByte(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f;
}

function isLetter(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);
}

function refuse(line: number, what: string): Error {
  return badInput(
    `database.sql line ${line} holds ${what}: refusing to import; the archive was not made by wpbackup or was altered`,
    'Restore only archives wpbackup made; if this one came from a site that may be compromised, do not import it',
  );
}

export class SqlScanner {
  #mode: Mode = 'code';
  /** Inside a /*! ... *\/ comment, which the server runs (and the client parses as code). */
  #ss = false;
  /** Nothing but whitespace and comments since the last delimiter. */
  #stmtStart = true;
  /** The first word of the statement, while it is being read. */
  #word: string | null = null;
  #wordLine = 1;
  #delimiter = Buffer.from(';');
  #delimLine = '';
  #line = 1;
  #carry: Buffer = Buffer.alloc(0);

  /** Scans the next bytes; returns those cleared to go on (a few may wait for the next chunk). */
  push(chunk: Buffer): Buffer {
    const buf = this.#carry.length ? Buffer.concat([this.#carry, chunk]) : chunk;
    const done = this.#scan(buf, false);
    this.#carry = Buffer.from(buf.subarray(done));
    return buf.subarray(0, done);
  }

  /** Scans what is left at the end of the file and returns it, cleared. */
  end(): Buffer {
    const rest = this.#carry;
    this.#scan(rest, true);
    this.#carry = Buffer.alloc(0);
    if (this.#word !== null) this.#endWord(undefined);
    if (this.#mode === 'delim') this.#setDelimiter();
    return rest;
  }

  #scan(buf: Buffer, final: boolean): number {
    let i = 0;
    while (i < buf.length) {
      // Lookahead: a backslash pair, '/*M!', '-- ', or the delimiter (which DELIMITER changes).
      if (!final && buf.length - i < Math.max(4, this.#delimiter.length)) break;
      const plain = this.#plainRun(buf, i);
      if (plain > i) {
        i = plain;
        continue;
      }
      const next = this.#step(buf, i);
      for (let k = i; k < next; k++) if (buf[k] === NL) this.#line++;
      i = next;
    }
    return i;
  }

  /** Skips bytes that change nothing (most of a dump is quoted data); returns where to go on. */
  #plainRun(b: Buffer, i: number): number {
    const m = this.#mode;
    if (m === 'code') return this.#plainCode(b, i);
    if (m !== 'squote' && m !== 'dquote' && m !== 'line') return i;
    const stop = m === 'squote' ? 0x27 : m === 'dquote' ? 0x22 : NL;
    let j = i;
    const end = b.length - 1; // keep one byte of lookahead for a backslash pair
    for (; j < end; j++) {
      const c = b[j];
      if (c === stop || c === BS) break;
      if (c === NL) this.#line++;
    }
    return j;
  }

  /** Inside a statement, only quotes, comments, backslashes and the delimiter matter. */
  #plainCode(b: Buffer, i: number): number {
    if (this.#stmtStart || this.#word !== null) return i;
    const d = this.#delimiter[0];
    let j = i;
    for (; j < b.length; j++) {
      const c = b[j] as number;
      if (c === d || c === BS || c === 0x27 || c === 0x22 || c === 0x60 || c === 0x2f || c === 0x2a || c === 0x23 || c === 0x2d) break;
      if (c === NL) this.#line++;
    }
    return j;
  }

  #step(b: Buffer, i: number): number {
    const c = b[i] as number;
    switch (this.#mode) {
      case 'code':
        return this.#code(b, i, c);
      case 'squote':
      case 'dquote':
        if (c === BS) return this.#pair(b, i, 'a quoted value');
        if (c === (this.#mode === 'squote' ? 0x27 : 0x22)) this.#mode = 'code';
        return i + 1;
      case 'btick':
        if (c === 0x60) this.#mode = 'code';
        return this.#loose(b, i, c, 'a backquoted name');
      case 'block':
        if (c === 0x2a && b[i + 1] === 0x2f) {
          this.#mode = 'code';
          return i + 2;
        }
        return this.#loose(b, i, c, 'a comment');
      case 'line':
        if (c === NL) this.#mode = 'code';
        return this.#loose(b, i, c, 'a comment');
      case 'delim':
        if (c === NL) {
          this.#setDelimiter();
          return i + 1;
        }
        this.#delimLine += String.fromCharCode(c);
        if (this.#delimLine.length > MAX_DELIMITER_LINE) throw refuse(this.#line, 'a DELIMITER line too long to be one');
        return i + 1;
    }
  }

  /** A backslash pair inside quotes: an escape, unless it is one mysqldump never writes. */
  #pair(b: Buffer, i: number, where: string): number {
    const x = b[i + 1];
    if (x !== undefined && DANGEROUS_PAIR.has(String.fromCharCode(x))) throw refuse(this.#line, `'\\${String.fromCharCode(x)}' inside ${where}, where mysqldump never writes it`);
    return x === undefined ? i + 1 : i + 2;
  }

  /** Backquotes and comments have no escapes; a dangerous pair there is still refused. */
  #loose(b: Buffer, i: number, c: number, where: string): number {
    if (c === BS) {
      const x = b[i + 1];
      if (x !== undefined && DANGEROUS_PAIR.has(String.fromCharCode(x))) throw refuse(this.#line, `'\\${String.fromCharCode(x)}' inside ${where}, where mysqldump never writes it`);
    }
    return i + 1;
  }

  #code(b: Buffer, i: number, c: number): number {
    if (this.#word !== null) {
      if (isWordByte(c) && this.#word.length <= MAX_WORD) {
        this.#word += String.fromCharCode(c);
        return i + 1;
      }
      this.#endWord(c, this.#atDelimiter(b, i));
      if (this.#mode === 'delim') return i;
    }
    if (this.#atDelimiter(b, i)) {
      this.#stmtStart = true;
      return i + this.#delimiter.length;
    }
    const n1 = b[i + 1];
    if (c === BS) {
      const x = n1 === undefined ? '' : String.fromCharCode(n1);
      if (!SAFE_BACKSLASH.has(x)) throw refuse(this.#line, `the client command '\\${x}'`);
      this.#stmtStart = false;
      return i + 2;
    }
    if (c === 0x27 || c === 0x22 || c === 0x60) {
      this.#mode = c === 0x27 ? 'squote' : c === 0x22 ? 'dquote' : 'btick';
      this.#stmtStart = false;
      return i + 1;
    }
    if (c === 0x2f && n1 === 0x2a) return this.#commentStart(b, i);
    if (this.#ss && c === 0x2a && n1 === 0x2f) {
      this.#ss = false;
      return i + 2;
    }
    if (c === 0x23 || (c === 0x2d && n1 === 0x2d && (isSpace(b[i + 2]) || b[i + 2] === undefined || this.#stmtStart))) {
      this.#mode = 'line';
      return i + 1;
    }
    if (this.#stmtStart && isSpace(c)) return i + 1;
    if (this.#stmtStart && isLetter(c)) {
      this.#word = String.fromCharCode(c);
      this.#wordLine = this.#line;
    }
    this.#stmtStart = false;
    return i + 1;
  }

  #commentStart(b: Buffer, i: number): number {
    const c2 = b[i + 2];
    if (c2 === 0x21 || c2 === 0x2b) {
      this.#ss = true;
      this.#stmtStart = false;
      return i + 3;
    }
    if (c2 === 0x4d && b[i + 3] === 0x21) {
      this.#ss = true;
      this.#stmtStart = false;
      return i + 4;
    }
    this.#mode = 'block';
    return i + 2;
  }

  #atDelimiter(b: Buffer, i: number): boolean {
    const d = this.#delimiter;
    if (b[i] !== d[0]) return false;
    for (let k = 1; k < d.length; k++) if (b[i + k] !== d[k]) return false;
    return true;
  }

  /** The statement's first word ended at byte `term` (undefined: end of file). */
  #endWord(term: number | undefined, atDelimiter = false): void {
    const word = (this.#word ?? '').toLowerCase();
    this.#word = null;
    if (FILE_STATEMENTS.has(word) && (term === undefined || isSpace(term))) throw refuse(this.#wordLine, `a ${word.toUpperCase()} statement, which reads files and which mysqldump never writes`);
    if (!NAMED.has(word)) return;
    // The client takes a word as a command when whitespace, the delimiter or the end follows it.
    if (!(term === undefined || isSpace(term) || atDelimiter)) return;
    if (word === 'delimiter' && (term === 0x20 || term === 0x09)) {
      this.#mode = 'delim';
      this.#delimLine = '';
      return;
    }
    throw refuse(this.#wordLine, `the client command '${word}'`);
  }

  #setDelimiter(): void {
    const d = this.#delimLine.trim();
    // mysqldump writes ';;' and ';'; anything quoted, spaced or with a backslash is not a dump's.
    if (!/^[^\s'"`\\]{1,16}$/.test(d)) throw refuse(this.#line, `an unusual DELIMITER ${JSON.stringify(d)}`);
    this.#delimiter = Buffer.from(d, 'latin1');
    this.#mode = 'code';
    this.#stmtStart = true;
  }
}

/**
 * A pass-through that refuses database.sql at the first client command. Bytes go on only once
 * scanned; onRefuse runs before the error is raised (e.g. to kill the client, so it cannot
 * act on a partial line it already has).
 */
export function sqlGuard(onRefuse?: () => void): Transform {
  const scanner = new SqlScanner();
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        const cleared = scanner.push(chunk);
        cb(null, cleared.length ? cleared : undefined);
      } catch (err) {
        onRefuse?.();
        cb(err as Error);
      }
    },
    flush(cb) {
      // push() held back a few bytes for lookahead; they are scanned now and sent after.
      try {
        const rest = scanner.end();
        cb(null, rest.length ? rest : undefined);
      } catch (err) {
        onRefuse?.();
        cb(err as Error);
      }
    },
  });
}
