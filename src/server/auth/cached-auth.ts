import type { ServerContext } from '../context.ts';
import type { JobRow } from '../db/job-rows.ts';
import type { NodeRow } from '../db/nodes.ts';
import type { SiteRow } from '../db/sites.ts';
import type { UserAuth } from './auth-cache.ts';

// A request's credentials, from the authentication cache when it has them (auth-cache.ts),
// else from the database in one query (with the row the request names, when the route
// prefetches one: auth/prefetched.ts), kept for the next request.

const NO_IDS: ReadonlySet<string> = new Set();

/** The node whose key hashes to keyHash, and the job jobId (job undefined: no such job). */
export async function nodeWithJob(ctx: ServerContext, keyHash: string, jobId: string): Promise<{ node: NodeRow; job: JobRow | undefined } | undefined> {
  const cache = ctx.authCache;
  const node = cache.node(keyHash);
  const job = node && cache.job(jobId, node.id);
  if (node && job) return { node, job };
  const reading = cache.begin();
  const found = await ctx.repos.nodes.findByKeyHashWithJob(keyHash, jobId);
  if (!found) return undefined;
  cache.keepNode(reading, keyHash, found.node);
  if (found.job) cache.keepJob(reading, found.node.id, found.job);
  return found;
}

/** The user whose token hashes to tokenHash, and the site siteId (site undefined: no such site). */
export async function userWithSite(ctx: ServerContext, tokenHash: string, siteId: string): Promise<{ auth: UserAuth; site: SiteRow | undefined } | undefined> {
  const cache = ctx.authCache;
  const kept = cache.user(tokenHash);
  if (kept) return { auth: kept, site: await ctx.siteReads.get(siteId) };
  const reading = cache.begin();
  const found = await ctx.repos.tokens.authenticateWithSite(tokenHash, siteId);
  if (!found) return undefined;
  const auth = await userAuth(ctx, found);
  cache.keepUser(reading, tokenHash, auth);
  return { auth, site: found.site };
}

/** The user whose token hashes to tokenHash, from the database (not kept). */
export async function userOf(ctx: ServerContext, tokenHash: string): Promise<{ auth: UserAuth; site: undefined } | undefined> {
  const found = await ctx.repos.tokens.authenticate(tokenHash);
  return found && { auth: await userAuth(ctx, found), site: undefined };
}

/** A token's user with their assignments; a super_admin's change nothing, so their two queries are skipped. */
async function userAuth(ctx: ServerContext, { token, user }: Pick<UserAuth, 'token' | 'user'>): Promise<UserAuth> {
  if (user.role === 'super_admin') return { token, user, nodeIds: NO_IDS, siteIds: NO_IDS };
  const [nodeIds, siteIds] = await Promise.all([ctx.repos.users.assignedNodeIds(user.id), ctx.repos.users.assignedSiteIds(user.id)]);
  return { token, user, nodeIds: new Set(nodeIds), siteIds: new Set(siteIds) };
}
