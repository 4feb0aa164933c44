import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';
import { registerAuditRoutes } from './admin-audit.ts';
import { registerNodeRoutes } from './admin-nodes.ts';
import { registerStorageRoutes } from './admin-storage.ts';
import { registerTokenRoutes } from './admin-tokens.ts';
import { registerUserRoutes } from './admin-users.ts';
import { registerNodeKeyRoutes } from './node-keys.ts';

// The admin API: users and their assignments, the caller's account and tokens, nodes and join
// codes, storage providers, the audit log. Bodies are in src/api/admin-types.ts.
export function registerAdminRoutes(app: FastifyInstance, ctx: ServerContext): void {
  registerUserRoutes(app, ctx);
  registerTokenRoutes(app, ctx);
  registerNodeRoutes(app, ctx);
  registerNodeKeyRoutes(app, ctx);
  registerStorageRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
}
