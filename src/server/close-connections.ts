import type { FastifyInstance } from 'fastify';
import type { Socket } from 'node:net';

// Node's server.close() ends the connections idle at that moment and waits for the others, and
// two kinds of connection held a close up until the client let go or the keep-alive timeout
// (Fastify's 72 s) ran out: a stop took over a minute, most of the unit's 90 s before SIGKILL
// (TimeoutStopSec, service/units.ts), and a client that never lets go took it all:
// - a request in flight at the close (a long poll the close answers, a download) finished
//   later, and its connection stayed open as keep-alive;
// - a connection that had sent no request yet (clients open them ahead: browsers, undici's
//   pool) is not idle to Node 24's closeIdleConnections (nodejs/node#63452).
// Once the app is closing, a response tells its client the connection ends (Connection: close),
// a connection that falls idle ends at once, and connections without a request end.

/** Registered before the route modules, so their preClose hooks (ending polls and streams) run after it. */
export function endConnectionsOnClose(app: FastifyInstance): void {
  let closing = false;
  // Every open connection (no 'data' listener: it would take Node's parser off its fast path).
  const open = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  app.addHook('preClose', (done) => {
    closing = true;
    // Read by Node when a response finishes: its idle socket then times out at once (0 would
    // mean never). Set before the route modules end their polls and streams.
    app.server.keepAliveTimeout = 1;
    app.server.keepAliveTimeoutBuffer = 0;
    for (const socket of open) if (socket.bytesRead === 0) socket.destroy();
    done();
  });
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });
}
