import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { toolVersion } from '../engine/manifest.ts';
import { createLogger } from '../log.ts';
import { toApiError } from './api-error.ts';
import type { ServerContext } from './context.ts';
import { endConnectionsOnClose } from './close-connections.ts';
import { answerMethodNotAllowed } from './method-not-allowed.ts';
import { lazyRequestLogger } from './request-logger.ts';
import type { RouteConfig } from './route.ts';
import { registerAdminRoutes } from './routes/admin.ts';
import { registerAgentRoutes } from './routes/agent.ts';
import { registerAlertRoutes } from './routes/alerts.ts';
import { registerAuthRoutes } from './routes/auth.ts';
import { registerBackupRoutes } from './routes/backups.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerMetricsRoutes } from './routes/metrics.ts';
import { registerOpenApiRoutes } from './routes/openapi.ts';
import { registerRetentionRoutes } from './routes/retention.ts';
import { registerScheduleRoutes } from './routes/schedules.ts';
import { registerSiteRoutes } from './routes/sites.ts';

// The HTTP API: /api/v1, the OpenAPI document at /api/openapi.json, its docs page at
// /api/docs, health at /healthz. Route modules register themselves through defineRoute.

export type RouteModule = (app: FastifyInstance, ctx: ServerContext) => void;

/** Route modules beyond the core; each file under routes/ adds itself to this list. */
export const ROUTE_MODULES: RouteModule[] = [
  registerHealthRoutes, registerOpenApiRoutes, registerAuthRoutes, registerAdminRoutes, registerSiteRoutes, registerBackupRoutes, registerAgentRoutes,
  registerRetentionRoutes,
  registerAlertRoutes,
  registerMetricsRoutes,
  registerScheduleRoutes,
];

export interface AppOptions {
  /** Log one line per request (`wpbackup server --log-requests`). */
  logRequests?: boolean;
  /** Where request logs go (the server's log, ctx.log, by default). */
  logStream?: NodeJS.WritableStream;
  extraRoutes?: RouteModule[];
}

/** Download links and local part uploads carry a signed token in the path: it must not reach a log. */
export function redactUrl(url: string): string {
  return url.replace(/^(\/api\/v1\/downloads\/)[^?#]+/, '$1[redacted]').replace(/^(\/api\/v1\/agent\/uploads\/)[^/?#]+/, '$1[redacted]');
}

function requestForLog(req: { method: string; url: string; ip?: string }): Record<string, unknown> {
  return { method: req.method, url: redactUrl(req.url), ip: req.ip };
}

/** The server's log for Fastify: failed requests always, one line per request with logRequests (at info at least). */
function appLogger(ctx: ServerContext, opts: AppOptions): FastifyBaseLogger {
  const base = opts.logStream ? createLogger({ stream: opts.logStream }) : ctx.log;
  const level = opts.logRequests && base.levelVal > INFO ? 'info' : base.level;
  return base.child({}, { level, serializers: { req: requestForLog } }) as unknown as FastifyBaseLogger;
}
const INFO = 30;

export async function buildApp(ctx: ServerContext, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    bodyLimit: 1 << 20,
    // Only the listed proxies' X-Forwarded-For counts, right-most untrusted address first (auth/trust-proxy.ts).
    trustProxy: ctx.config.trustProxy ?? false,
    // Never log headers (bearer tokens) nor the signed tokens some URLs carry (requestForLog, and log.ts).
    loggerInstance: appLogger(ctx, opts),
    logController: new LogController({ disableRequestLogging: opts.logRequests !== true }),
    childLoggerFactory: lazyRequestLogger,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  endConnectionsOnClose(app);
  answerMethodNotAllowed(app);
  await app.register(swagger, {
    openapi: {
      info: { title: 'wpbackup API', version: toolVersion(), description: 'Backups of WordPress sites across a fleet of servers.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs' });
  app.setErrorHandler((err, req, reply) => {
    const { status, body, internal } = toApiError(err);
    if (internal) req.log.error({ err }, 'request failed');
    const withDetail = (req.routeOptions.config as Partial<RouteConfig> | undefined)?.errorDetail === true;
    void reply.code(status).send(withDetail ? { ...body, detail: body.error.message } : body);
  });
  // An empty body sent as application/json is no body (curl -H 'Content-Type: application/json'
  // with no -d, as the original system's scripts do), not a 400; anything else parses as before.
  const json = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, raw, done) => {
    if (raw === '') done(null, undefined);
    else json(req, raw as string, done);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: { code: 'not_found', message: `No route ${req.method} ${req.url.split('?')[0]}` } });
  });
  for (const mod of [...ROUTE_MODULES, ...(opts.extraRoutes ?? [])]) mod(app, ctx);
  await app.ready();
  return app;
}
