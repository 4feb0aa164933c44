import { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger } from 'pino';
import { badInput } from './errors.ts';

// The logs of `wpbackup server` and `wpbackup agent`: pino, one JSON object per line (or a
// short human line with --log-format pretty), with the level as a word. Shared by the server
// and the agent, so it imports neither. No secret reaches a line: known secret fields are
// censored by name, every string (messages, fields, error messages and stacks) has tokens,
// presigned URL signatures, signed link tokens and URL passwords cut out, and errors are
// written with their whole cause chain, by serializeError.

export type { Logger };
export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  /** info by default. */
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; stdout by default. */
  stream?: NodeJS.WritableStream;
  /** A field on every line, e.g. { name: 'server' }. */
  base?: Record<string, unknown>;
}

const CENSOR = '[redacted]';

/** Fields that hold a secret wherever they appear (top level or one object down). */
const SECRET_KEYS = ['password', 'current_password', 'new_password', 'token', 'node_key', 'join_code', 'secret', 'secret_access_key', 'access_token', 'authorization', 'metrics_token'];
const REDACT_PATHS = [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`), 'req.headers.authorization', 'req.headers.cookie'];

const TEXT_RULES: [RegExp, string][] = [
  // Our own tokens: sessions, API tokens, node keys, join codes, metrics tokens.
  [/\bwpb_([a-z])_[A-Za-z0-9_-]{16,}/g, `wpb_$1_${CENSOR}`],
  // Presigned URLs: the signature and credential query parameters.
  [/(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s"'<>]+/gi, `$1${CENSOR}`],
  [/(\b(?:Signature|AWSAccessKeyId|x-amz-security-token)=)[^&\s"'<>]+/g, `$1${CENSOR}`],
  // Signed local download links and part-upload URLs carry their token in the path.
  [/(\/api\/v1\/downloads\/)[^?#\s"'<>]+/g, `$1${CENSOR}`],
  [/(\/api\/v1\/agent\/uploads\/)[^/?#\s"'<>]+/g, `$1${CENSOR}`],
  // Authorization headers quoted in a message.
  [/(\bBearer\s+)[^\s"',]+/gi, `$1${CENSOR}`],
  // user:password@ in a URL (DATABASE_URL, endpoints).
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@"']*:)[^@\s/"']+@/gi, `$1${CENSOR}@`],
];

/** text with every secret the rules know cut out. */
export function redactText(text: string): string {
  let out = text;
  for (const [re, to] of TEXT_RULES) out = out.replace(re, to);
  return out;
}

/** Strings in value (plain objects and arrays, a few levels down) redacted; Errors are left to serializeError. */
function scrub(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactText(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v, depth + 1)]));
}

/** The few own fields of an error worth a log line; never arbitrary ones (an SDK error may carry its config). */
const ERROR_FIELDS = ['code', 'kind', 'stage', 'hint', 'status', 'statusCode', 'errno', 'syscall'];
const MAX_CAUSES = 8;

/** An error as a log field: type, message, a few fields, stack, and its cause chain (and an AggregateError's errors). */
export function serializeError(err: unknown, depth = 0): Record<string, unknown> {
  if (!(err instanceof Error)) return { type: typeof err, message: redactText(String(err)) };
  const out: Record<string, unknown> = { type: err.name, message: redactText(err.message) };
  const fields = err as unknown as Record<string, unknown>;
  for (const k of ERROR_FIELDS) {
    const v = fields[k];
    if (typeof v === 'string') out[k] = redactText(v);
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  }
  if (err.stack) out.stack = redactText(err.stack);
  if (err instanceof AggregateError && depth < MAX_CAUSES) out.errors = (err.errors as unknown[]).slice(0, 10).map((e) => serializeError(e, depth + 1));
  if (err.cause !== undefined) out.cause = depth < MAX_CAUSES ? serializeError(err.cause, depth + 1) : { message: '(more causes left out)' };
  return out;
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const dest: DestinationStream = o.format === 'pretty' ? prettyStream(o.stream ?? process.stdout) : ((o.stream as DestinationStream | undefined) ?? pino.destination({ fd: 1, sync: true }));
  return pino(
    {
      level: o.level ?? 'info',
      base: o.base ?? null,
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      serializers: { err: serializeError },
      redact: { paths: REDACT_PATHS, censor: CENSOR },
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => scrub(obj, 0) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          const cleaned = args.map((a) => (typeof a === 'string' ? redactText(a) : a));
          method.apply(this, cleaned as Parameters<typeof method>);
        },
      },
    },
    dest,
  );
}

/** A logger that writes nothing (library defaults, tests that do not look). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** The level and format from --log-level / --log-format, else $WPBACKUP_LOG_LEVEL / $WPBACKUP_LOG_FORMAT, else info and json. */
export function parseLogOptions(flags: { level?: string; format?: string }, env: NodeJS.ProcessEnv): { level: LogLevel; format: LogFormat } {
  const level = flags.level ?? env.WPBACKUP_LOG_LEVEL ?? 'info';
  const format = flags.format ?? env.WPBACKUP_LOG_FORMAT ?? 'json';
  const from = (flag: string | undefined, name: string, variable: string): string => (flag !== undefined ? name : variable);
  if (!(LOG_LEVELS as readonly string[]).includes(level.toLowerCase())) throw badInput(`${from(flags.level, '--log-level', 'WPBACKUP_LOG_LEVEL')} must be one of ${LOG_LEVELS.join(', ')}, not ${level}`);
  if (!(LOG_FORMATS as readonly string[]).includes(format.toLowerCase())) throw badInput(`${from(flags.format, '--log-format', 'WPBACKUP_LOG_FORMAT')} must be json or pretty, not ${format}`);
  return { level: level.toLowerCase() as LogLevel, format: format.toLowerCase() as LogFormat };
}

/** JSON lines in, "time LEVEL message key=value ..." lines out (no pino-pretty: one line per entry is all a terminal needs). */
function prettyStream(out: NodeJS.WritableStream): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer | string, _enc, done) {
      pending += chunk.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line) out.write(`${prettyLine(line)}\n`);
      }
      done();
    },
  });
}

export function prettyLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { time, level, msg, err, ...rest } = entry;
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  let line = `${String(time)} ${String(level).toUpperCase().padEnd(5)} ${String(msg ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}`;
  for (let e = err as Record<string, unknown> | undefined; e; e = e.cause as Record<string, unknown> | undefined) line += `${e === err ? ': ' : ' <- '}${String(e.message)}`;
  return line;
}
