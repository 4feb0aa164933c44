import type { FastifyInstance } from 'fastify';
import { toolVersion } from '../../engine/manifest.ts';
import type { ServerContext } from '../context.ts';
import { defineRoute } from '../route.ts';
import { Health } from '../../api/types.ts';
import { ok } from './error-responses.ts';

export function registerHealthRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, Record<string, string>, Record<string, string>, Health>(app, ctx, {
    method: 'GET',
    url: '/healthz',
    auth: 'public',
    summary: 'Liveness and database check',
    tags: ['health'],
    schema: { response: ok(Health, 'Up, and the database answers') },
    handler: async () => {
      await ctx.db.get('SELECT 1 AS ok');
      return { status: 'ok', version: toolVersion(), database: ctx.db.dialect };
    },
  });
}
