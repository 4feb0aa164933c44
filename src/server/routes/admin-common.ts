import type { FastifyRequest } from 'fastify';
import type { User } from '../../api/admin-types.ts';
import { hashToken, parseBearer } from '../auth/tokens.ts';
import { unauthorized } from '../api-error.ts';
import type { Principal } from '../auth/roles.ts';
import type { Repos } from '../db/repos.ts';
import type { UserRow } from '../db/users.ts';

// Pieces the admin route files share: JSON schema fragments, time formatting, the user body.

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const uuid = { type: 'string', pattern: UUID_PATTERN, maxLength: 36 } as const;

/** Path params made only of uuids, e.g. idParams('id', 'node_id'). */
export function idParams(...names: string[]): Record<string, unknown> {
  return { type: 'object', required: names, additionalProperties: false, properties: Object.fromEntries(names.map((n) => [n, uuid])) };
}

/** Routes that take no body still get a schema: nothing, or an empty object. */
export const emptyBody = { type: 'object', additionalProperties: false, maxProperties: 0 } as const;

/** Free text a person names something with: stored as given, but no control characters. */
export const label = (maxLength: number): Record<string, unknown> => ({ type: 'string', minLength: 1, maxLength, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });

export const ROLE_SCHEMA = { type: 'string', enum: ['super_admin', 'node_admin', 'site_admin'] } as const;
export const EMAIL_SCHEMA = { type: 'string', minLength: 3, maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+$' } as const;
export const PASSWORD_SCHEMA = { type: 'string', minLength: 1, maxLength: 1024 } as const;

export function iso(ms: number): string;
export function iso(ms: number | null): string | null;
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function userId(p: Principal | undefined): string {
  if (p?.kind !== 'user') throw unauthorized();
  return p.userId;
}

/** The hash of the bearer token this request came with (the route already authenticated it). */
export function currentTokenHash(req: FastifyRequest): string | undefined {
  const cred = parseBearer(req.headers.authorization);
  return cred ? hashToken(cred.token) : undefined;
}

export async function userBody(repos: Repos, u: UserRow): Promise<User> {
  const [nodeIds, siteIds] = await Promise.all([repos.users.assignedNodeIds(u.id), repos.users.assignedSiteIds(u.id)]);
  return { id: u.id, email: u.email, role: u.role, node_ids: nodeIds, site_ids: siteIds, disabled: u.disabled, created_at: iso(u.createdAt) };
}
