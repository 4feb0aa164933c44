import type { FastifyInstance } from 'fastify';
import { AuditPage, AuditQuery, type AuditEntryBody } from '../../api/admin-types.ts';
import type { ServerContext } from '../context.ts';
import type { AuditEntry } from '../db/audit.ts';
import { defineRoute, must } from '../route.ts';
import { iso } from './admin-common.ts';
import { ok } from './error-responses.ts';

// The audit log, newest first, a page at a time (super_admin). Pages are cut between
// timestamps, never inside one: entries sharing a millisecond all land on the same page, so
// next_before (exclusive) never skips one.

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;
/** Most entries one page holds when a single millisecond has more than `limit` of them. */
const MAX_GROUP = 5000;

function entryBody(e: AuditEntry): AuditEntryBody {
  return { id: e.id, at: iso(e.at), user_id: e.userId, node_id: e.nodeId, action: e.action, target_type: e.targetType, target_id: e.targetId, detail: e.detail };
}

export function registerAuditRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<unknown, Record<string, string>, AuditQuery, AuditPage>(app, ctx, {
    method: 'GET',
    url: '/api/v1/audit',
    auth: 'user',
    summary: 'The audit log, newest first (super_admin); page with ?before=<next_before>',
    tags: ['audit'],
    schema: {
      querystring: AuditQuery,
      response: ok(AuditPage, 'A page of the log'),
    },
    handler: async ({ query, principal }) => {
      must(principal, 'audit.read');
      const limit = Math.min(Number(query.limit ?? DEFAULT_LIMIT), MAX_LIMIT);
      const filter = { before: query.before === undefined ? undefined : Number(query.before), userId: query.user_id, targetType: query.target_type, targetId: query.target_id };
      const rows = await ctx.repos.audit.list({ ...filter, limit: limit + 1 });
      if (rows.length <= limit) return { entries: rows.map(entryBody), next_before: null };
      const lastAt = rows[limit - 1]?.at ?? 0;
      // A clean cut between two timestamps.
      if (rows[limit]?.at !== lastAt) return { entries: rows.slice(0, limit).map(entryBody), next_before: lastAt };
      // The cut falls inside lastAt's group: leave that whole group for the next page.
      const page = rows.slice(0, limit).filter((e) => e.at !== lastAt);
      if (page.length > 0) return { entries: page.map(entryBody), next_before: page[page.length - 1]?.at ?? lastAt };
      // One millisecond holds more than a page: return that whole group (up to MAX_GROUP) as the page.
      const group = (await ctx.repos.audit.list({ ...filter, before: lastAt + 1, limit: MAX_GROUP })).filter((e) => e.at === lastAt);
      return { entries: group.map(entryBody), next_before: lastAt };
    },
  });
}
