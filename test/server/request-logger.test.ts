import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FastifyBaseLogger } from 'fastify';
import { lazyRequestLogger } from '../../src/server/request-logger.ts';
import { captureLog } from '../helpers/log.ts';

// A request's logger (request-logger.ts) is made on its first line: a request that never logs
// costs no pino child; one that does writes the same line as Fastify's own child would, with
// the request id and the server log's redaction.

function counted(): { parent: FastifyBaseLogger; children: () => number; log: ReturnType<typeof captureLog> } {
  const log = captureLog('info');
  const real = log.logger as unknown as FastifyBaseLogger;
  let children = 0;
  const parent = Object.create(real) as FastifyBaseLogger;
  parent.child = (bindings, options) => {
    children++;
    return real.child(bindings, options);
  };
  return { parent, children: () => children, log };
}

describe('lazyRequestLogger', () => {
  it('makes no child for a request that does not log, and reads the level without one', () => {
    const { parent, children } = counted();
    const logger = lazyRequestLogger(parent, { reqId: 'req-1' }, {});
    assert.equal(logger.level, 'info');
    assert.equal(children(), 0);
  });

  it('makes the child once, on the first line, with the request id and redaction', () => {
    const { parent, children, log } = counted();
    const logger = lazyRequestLogger(parent, { reqId: 'req-2' }, {});
    logger.error({ url: '/x' }, 'failed with wpb_n_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    logger.warn('again');
    logger.debug('below the level');
    assert.equal(children(), 1);
    const entries = log.entries();
    assert.deepEqual(entries.map((e) => [e.level, e.reqId, e.msg]), [['error', 'req-2', 'failed with wpb_n_[redacted]'], ['warn', 'req-2', 'again']]);
  });

  it('keeps a level given for the route', () => {
    const { parent, log } = counted();
    const logger = lazyRequestLogger(parent, { reqId: 'req-3' }, { level: 'warn' });
    assert.equal(logger.level, 'warn');
    logger.info('not written');
    logger.warn('written');
    assert.deepEqual(log.entries().map((e) => e.msg), ['written']);
  });
});
