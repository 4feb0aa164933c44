import type { FastifyInstance } from 'fastify';
import type { BackupStatusBody } from '../../api/types.ts';
import type { ServerContext } from '../context.ts';
import { onClose } from '../on-close.ts';
import { defineRoute } from '../route.ts';
import { errorResponses, successAs } from './error-responses.ts';
import { guardStream } from '../stream-access.ts';
import { holdSlot } from '../stream-caps.ts';
import { noQuery, userId } from './schema.ts';
import { idParams, siteFor, statusBody, type IdParams } from './site-common.ts';

// GET /api/v1/sites/{id}/backup/events: Server-Sent Events. An initial `status` event with
// the BackupStatusBody, then one `status` event per change, found by an in-process publish
// (events.ts) or by reading the row every sseTiming.pollMs (other server processes write progress
// too). A `: keepalive` comment every sseTiming.keepaliveMs keeps proxies from closing the stream.
// A deleted site ends the stream with a `deleted` event; a caller who lost access (token revoked,
// user disabled, assignment removed: stream-access.ts) gets `access_ended`. Everything stops when
// the client goes away or the server closes.
// Each stream holds a slot of the per-user and total caps (429 with Retry-After beyond them),
// released with the stream on every path.

/** How often a stream re-reads its site, and sends a keepalive comment; tests shorten them. */
export const sseTiming = { pollMs: 1_000, keepaliveMs: 15_000 };

const EVENT_STREAM = {
  type: 'string',
  description: 'Server-Sent Events: `status` (data: the backup status, as GET /api/v1/sites/{id}/backup/status without message), `deleted` and `access_ended` (data: {"site_id"}), then the stream ends; `: keepalive` comments between',
} as const;

export function registerSiteEventRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const events = ctx.events;
  app.addHook('preClose', (done) => {
    events.closeAll();
    done();
  });

  defineRoute<unknown, IdParams, Record<string, string>, void>(app, ctx, {
    method: 'GET',
    url: '/api/v1/sites/:id/backup/events',
    auth: 'user',
    summary: 'Live backup status as Server-Sent Events (text/event-stream): `status` events with the status body, keepalive comments every 15 s',
    tags: ['backup'],
    schema: { params: idParams, querystring: noQuery, response: { ...successAs(200, 'The event stream', 'text/event-stream', EVENT_STREAM), ...errorResponses({ 404: 'No such site' }, { 429: 'Too many open event streams (Retry-After)' }) } },
    handler: async ({ params, principal, raw, reply }) => {
      const { site, principal: p } = await siteFor(ctx, principal, 'site.read', params.id);
      // Per-process caps (stream-caps.ts): one user cannot hold every socket and timer of the server.
      const userKey = p.kind === 'user' ? p.userId : 'node';
      const releaseSlot = holdSlot(ctx.caps.streams, userKey, reply, { thing: 'event streams', holder: 'one user', option: '--max-streams-per-user', totalOption: '--max-streams' });
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      let last = '';
      let closed = false;
      let reading = false;
      let again = false;
      let seq = 0;

      const send = (event: string, data: unknown): void => {
        if (closed) return;
        res.write(`id: ${++seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      const emit = (body: BackupStatusBody): void => {
        const text = JSON.stringify(body);
        if (text === last) return;
        last = text;
        send('status', body);
      };
      // One read at a time; a change noticed meanwhile is read right after.
      const check = async (): Promise<void> => {
        if (closed) return;
        if (reading) {
          again = true;
          return;
        }
        reading = true;
        try {
          do {
            again = false;
            const state = await ctx.repos.sites.backupState(site.id);
            if (closed) return;
            if (!state) {
              send('deleted', { site_id: site.id });
              stop();
              return;
            }
            emit(statusBody(site.id, ctx.progress.overlay(state)));
          } while (again && !closed);
        } catch (err) {
          raw.log.warn({ err, siteId: site.id }, 'backup events: reading the site failed');
        } finally {
          reading = false;
        }
      };

      const poll = setInterval(() => void check(), sseTiming.pollMs);
      const keepalive = setInterval(() => {
        if (!closed) res.write(': keepalive\n\n');
      }, sseTiming.keepaliveMs);
      const unsubscribe = events.subscribe(site.id, () => void check());
      const unregister = events.onClose(() => stop());
      const unguard = guardStream(ctx, raw, userId(principal), site, () => {
        send('access_ended', { site_id: site.id });
        stop();
      });
      function stop(): void {
        if (closed) return;
        closed = true;
        clearInterval(poll);
        clearInterval(keepalive);
        unsubscribe();
        unregister();
        unguard();
        releaseSlot();
        if (!res.writableEnded) res.end();
      }
      // The response closes when the client disconnects (or we end it), maybe already did.
      onClose(res, stop);
      res.write('retry: 3000\n\n');
      emit(statusBody(site.id, ctx.progress.overlay(site)));
    },
  });
}
