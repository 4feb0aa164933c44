import type { FastifyRequest } from 'fastify';
import type { User } from '../../api/admin-types.ts';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../auth/password-policy.ts';
import { hashToken, parseBearer } from '../auth/tokens.ts';
import type { Repos } from '../db/repos.ts';
import type { UserRow } from '../db/users.ts';
import { iso } from './schema.ts';

// Pieces the admin route files share: the user schemas and body, the caller's token. The
// schema pieces all routes share live in schema.ts (re-exported here for the admin files).

export { emptyBody, iso, label, userId, uuid, uuidParams as idParams } from './schema.ts';

export const ROLE_SCHEMA = { type: 'string', enum: ['super_admin', 'node_admin', 'site_admin'] } as const;
export const EMAIL_SCHEMA = { type: 'string', minLength: 3, maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+$' } as const;
export const PASSWORD_SCHEMA = { type: 'string', minLength: 1, maxLength: 1024 } as const;
/** A new password: the policy's length (auth/password-policy.ts; its other rules stay in the handler). */
export const NEW_PASSWORD_SCHEMA = { type: 'string', minLength: MIN_PASSWORD_LENGTH, maxLength: MAX_PASSWORD_LENGTH } as const;
export const SHORT_PASSWORD = `Password must be at least ${MIN_PASSWORD_LENGTH} characters long`;

/** The hash of the bearer token this request came with (the route already authenticated it). */
export function currentTokenHash(req: FastifyRequest): string | undefined {
  const cred = parseBearer(req.headers.authorization);
  return cred ? hashToken(cred.token) : undefined;
}

export async function userBody(repos: Repos, u: UserRow): Promise<User> {
  const [nodeIds, siteIds] = await Promise.all([repos.users.assignedNodeIds(u.id), repos.users.assignedSiteIds(u.id)]);
  return { id: u.id, email: u.email, role: u.role, node_ids: nodeIds, site_ids: siteIds, disabled: u.disabled, created_at: iso(u.createdAt) };
}
