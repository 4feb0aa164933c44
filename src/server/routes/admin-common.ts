import type { FastifyRequest } from 'fastify';
import type { User } from '../../api/admin-types.ts';
import { MIN_PASSWORD_LENGTH } from '../../api/formats.ts';
import { hashToken, parseBearer } from '../auth/tokens.ts';
import type { Repos } from '../db/repos.ts';
import type { UserRow } from '../db/users.ts';
import { iso } from './schema.ts';

// Pieces the admin route files share: the user schemas and body, the caller's token. The
// schema pieces all routes share live in schema.ts (re-exported here for the admin files).

export { emptyBody, iso, label, userId, uuid, uuidParams as idParams } from './schema.ts';

/** What a client whose new password is too short is told (the schema's minLength). */
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
