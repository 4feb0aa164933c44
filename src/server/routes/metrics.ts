import type { FastifyInstance } from 'fastify';
import { unauthorized } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import { carriesToken, METRICS_TOKEN_ENV, METRICS_TOKEN_FILE } from '../metrics-token.ts';
import { defineRoute } from '../route.ts';
import { errorResponses } from './error-responses.ts';

// GET /metrics on the API's address: the Prometheus text format, behind the metrics token
// (metrics-token.ts), which no user session, API token or node key replaces. Without a token,
// `wpbackup server --metrics-listen ADDR` serves the same text on an address of its own
// (metrics-listener.ts).

const METRICS_TEXT = { type: 'string', description: 'Prometheus text exposition format 0.0.4' } as const;

export function registerMetricsRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, Record<string, string>, Record<string, string>, string>(app, ctx, {
    method: 'GET',
    url: '/metrics',
    // Checked here, not by defineRoute: the metrics token is no user and no node.
    auth: 'public',
    summary: 'Prometheus metrics; Authorization: Bearer <metrics token>',
    tags: ['health'],
    schema: {
      description: `The bearer token is the metrics token: ${METRICS_TOKEN_ENV}, or the one the server generated into <data dir>/${METRICS_TOKEN_FILE}. User sessions, API tokens and node keys are refused. \`wpbackup server --metrics-listen ADDR\` serves the same text without a token on an address of its own.`,
      security: [{ bearer: [] }],
      response: {
        200: { description: 'The series, one per line', content: { 'text/plain': { schema: METRICS_TEXT } } },
        ...errorResponses({ 401: 'No metrics token, or another one' }),
      },
    },
    handler: async ({ raw, reply }) => {
      if (!carriesToken(raw.headers.authorization, ctx.metrics.token)) throw unauthorized('Send the metrics token: Authorization: Bearer <token> (see the server\'s data dir, metrics.token, or WPBACKUP_METRICS_TOKEN)');
      const text = await ctx.metrics.scrape();
      void reply.header('content-type', ctx.metrics.contentType);
      return text;
    },
  });
}
