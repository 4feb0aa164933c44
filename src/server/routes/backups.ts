import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';

// Placeholder: routes arrive here (see src/api/types.ts for the bodies).
export function registerBackupRoutes(_app: FastifyInstance, _ctx: ServerContext): void {}
