import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger, parseLogOptions, prettyLine, serializeError } from '../../src/log.ts';
import { WpbError } from '../../src/errors.ts';
import { captureLog } from '../helpers/log.ts';

// The logs of `wpbackup server` and `wpbackup agent`: JSON lines with a level word and an ISO
// time, errors with their whole cause chain, and no secret in any field, message or stack.

const TOKEN = (letter: string): string => `wpb_${letter}_${'Q'.repeat(43)}`;

describe('log lines', () => {
  it('write errors with their cause chain, an AggregateError\'s errors and our error fields', () => {
    const root = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', config: { password: 'never' } });
    const middle = new AggregateError([root, 'a string reason'], 'every attempt failed');
    const top = new WpbError('failed', 'Cannot open the database', { cause: middle, stage: 'backup_db', hint: 'Check DATABASE_URL' });
    const c = captureLog();
    c.logger.error({ err: top, job: 'j1' }, 'job failed');
    const [e] = c.entries();
    assert.equal(e?.level, 'error');
    assert.match(String(e?.time), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const err = e?.err as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- walking the parsed JSON
    assert.deepEqual([err.type, err.message, err.kind, err.stage, err.hint], ['WpbError', 'Cannot open the database', 'failed', 'backup_db', 'Check DATABASE_URL']);
    assert.equal(err.cause.type, 'AggregateError');
    assert.deepEqual(err.cause.errors.map((x: { message: string }) => x.message), ['connect ECONNREFUSED 127.0.0.1:5432', 'a string reason']);
    assert.equal(err.cause.errors[0].code, 'ECONNREFUSED');
    assert.match(err.stack, /^WpbError: Cannot open the database\n\s+at /);
    assert.doesNotMatch(c.text(), /never/, 'arbitrary fields of an error are not written');
  });

  it('stop a cause chain that loops', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    let depth = 0;
    for (let e: Record<string, unknown> | undefined = serializeError(a); e; e = e.cause as Record<string, unknown> | undefined) depth++;
    assert.ok(depth <= 10, `${depth} levels`);
  });

  it('cut every kind of secret out of messages, fields, error messages and stacks', () => {
    const secrets = {
      session: TOKEN('s'), api: TOKEN('a'), node: TOKEN('n'), join: TOKEN('j'), metrics: TOKEN('m'),
      signature: 'f00dbabe'.repeat(8), credential: 'AKIAEXAMPLE%2F20261130', linkToken: 'c2lnbmVk.bGluaw', partToken: 'sealed.part.token',
      dbPassword: 'pg-pass-Hunter2', field: 'plain-secret-value', s3Secret: 'wJalrXUtnFEMI/K7MDENG',
    };
    const url = `https://s3.example.com/b/k?partNumber=1&X-Amz-Credential=${secrets.credential}&X-Amz-Signature=${secrets.signature}`;
    const c = captureLog();
    c.logger.warn({
      err: new Error(`PUT ${url} failed`, { cause: new Error(`postgres://wpb:${secrets.dbPassword}@db:5432/wpb refused ${secrets.node}`) }),
      password: secrets.field, body: { node_key: secrets.node, secret_access_key: secrets.s3Secret, join_code: secrets.join, note: `token ${secrets.api}` },
      url: `/api/v1/downloads/${secrets.linkToken}`, part: `http://x/api/v1/agent/uploads/${secrets.partToken}/parts/1`,
    }, `Authorization: Bearer ${secrets.session} and ${secrets.metrics}`);
    const text = c.text();
    for (const [what, s] of Object.entries(secrets)) assert.ok(!text.includes(s), `${what} is not in: ${text}`);
    assert.match(text, /X-Amz-Signature=\[redacted\]/);
    assert.match(text, /wpb_n_\[redacted\]/);
    assert.match(text, /"password":"\[redacted\]"/);
  });

  it('write a short human line with --log-format pretty', () => {
    const lines: string[] = [];
    const sink = { write: (s: string) => (lines.push(s), true), on: () => sink, once: () => sink, emit: () => true, end: () => undefined };
    const log = createLogger({ format: 'pretty', stream: sink as unknown as NodeJS.WritableStream });
    log.warn({ err: new Error('outer', { cause: new Error('inner') }), job: 'j1' }, 'job failed');
    return new Promise<void>((resolve) => setImmediate(() => {
      assert.equal(lines.length, 1, lines.join(''));
      assert.match(lines[0] ?? '', /^\d{4}-\d{2}-\d{2}T\S+ WARN {2}job failed job=j1: outer <- inner\n$/);
      resolve();
    }));
  });

  it('pretty-prints a JSON line and passes anything else through', () => {
    assert.equal(prettyLine('{"time":"T","level":"info","msg":"hello","n":1}'), 'T INFO  hello n=1');
    assert.equal(prettyLine('not json'), 'not json');
  });

  it('take the level and format from the flags, else the environment, and refuse unknown ones by name', () => {
    assert.deepEqual(parseLogOptions({}, {}), { level: 'info', format: 'json' });
    assert.deepEqual(parseLogOptions({}, { WPBACKUP_LOG_LEVEL: 'DEBUG', WPBACKUP_LOG_FORMAT: 'pretty' }), { level: 'debug', format: 'pretty' });
    assert.deepEqual(parseLogOptions({ level: 'warn' }, { WPBACKUP_LOG_LEVEL: 'debug' }), { level: 'warn', format: 'json' });
    assert.throws(() => parseLogOptions({ level: 'loud' }, {}), /--log-level must be one of fatal, error, warn, info, debug, trace, silent, not loud/);
    assert.throws(() => parseLogOptions({}, { WPBACKUP_LOG_FORMAT: 'xml' }), /WPBACKUP_LOG_FORMAT must be json or pretty, not xml/);
  });
});
