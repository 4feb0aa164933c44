import type { FastifyInstance } from 'fastify';
import { toolVersion } from '../../engine/manifest.ts';
import type { ServerContext } from '../context.ts';
import { defineRoute } from '../route.ts';

export function registerHealthRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute(app, ctx, {
    method: 'GET',
    url: '/healthz',
    auth: 'public',
    summary: 'Liveness and database check',
    tags: ['health'],
    handler: async () => {
      await ctx.db.get('SELECT 1 AS ok');
      return { status: 'ok', version: toolVersion(), database: ctx.db.dialect };
    },
  });
}
