import type { FastifyInstance } from 'fastify';

// GET /api/openapi.json: the OpenAPI document of every route defineRoute registered (it is
// built when asked for, so routes registered after this one are in it too). Not listed in
// itself; the docs page at /api/docs (app.ts) reads it.

export function registerOpenApiRoutes(app: FastifyInstance): void {
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
