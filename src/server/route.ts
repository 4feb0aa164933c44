import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, HTTPMethods } from 'fastify';
import { authorize, type Action, type Principal, type Resource } from './auth/roles.ts';
import { nodeWithJob, userOf, userWithSite } from './auth/cached-auth.ts';
import { prefetchedJobs, prefetchedSites } from './auth/prefetched.ts';
import { hashToken, parseBearer } from './auth/tokens.ts';
import { forbidden, unauthorized } from './api-error.ts';
import type { ServerContext } from './context.ts';
import { errorResponses, errorResponsesWithDetail } from './routes/error-responses.ts';

// One handler shape for every route: it gets the request, the principal and the context,
// and returns the response body (or { status, body }) or throws an ApiError.

export type Auth = 'public' | 'user' | 'node' | 'any';

export interface RouteRequest<B = unknown, P = Record<string, string>, Q = Record<string, string>> {
  body: B;
  params: P;
  query: Q;
  principal: Principal | undefined;
  raw: FastifyRequest;
  reply: FastifyReply;
}

export interface Replied<T> {
  status: number;
  body: T;
}

export interface RouteSpec<B, P, Q, R> {
  method: HTTPMethods;
  url: string;
  auth: Auth;
  summary: string;
  tags?: string[];
  /**
   * response: each success status with the schema of its body (from src/api, through ok/success/noContent
   * in routes/error-responses.ts), and the errors the route gives beyond the common ones below.
   */
  schema?: Omit<FastifySchema, 'summary' | 'tags'>;
  /**
   * Error bodies also carry the message as a top-level detail: for the routes the original
   * system's scripts call, which print .detail (document them with errorResponsesWithDetail).
   */
  errorDetail?: boolean;
  /**
   * What to tell a client whose request the schema refuses, by where and why: '/code:pattern'
   * (also matches '/sites/3/code'), ':anyOf' (the body itself). The validator's words follow in parentheses.
   */
  messages?: Record<string, string>;
  handler: (req: RouteRequest<B, P, Q>, ctx: ServerContext) => Promise<R | Replied<R>>;
  /**
   * The row the :id parameter names is read with the credentials, in one query, for the
   * handler's nodesJob ('job') or siteFor ('site'): for the hottest routes (auth/prefetched.ts).
   */
  prefetch?: 'job' | 'site';
}

/** What a route tells the app's error handler (app.ts). */
export interface RouteConfig {
  errorDetail: boolean;
}

export function replied<T>(status: number, body: T): Replied<T> {
  return { status, body };
}

function isReplied(x: unknown): x is Replied<unknown> {
  return typeof x === 'object' && x !== null && 'status' in x && 'body' in x && Object.keys(x).length === 2;
}

/**
 * "Last used" bookkeeping without a write per request: each process writes at most once per
 * gap per id (the repository also refuses writes inside the gap, across processes).
 */
const lastTouch = new Map<string, number>();
const TOUCH_KEYS_MAX = 100_000;

function shouldTouch(id: string, gapMs: number): boolean {
  const now = Date.now();
  if (now - (lastTouch.get(id) ?? 0) < gapMs) return false;
  if (lastTouch.size >= TOUCH_KEYS_MAX) lastTouch.clear();
  lastTouch.set(id, now);
  return true;
}

/** What an agent whose key is refused is told (401): the way back (node-keys.ts). */
export const NODE_KEY_REFUSED = 'This node key is not valid (revoked, replaced, or its node removed or disabled); ask an admin for a re-join code (wpbackup nodes join-code --node NODE_ID) and restart the agent with WPBACKUP_JOIN_CODE set';

/** A row to read with the credentials, in the same query (auth/prefetched.ts). */
export interface Prefetch {
  /** The job a node's request names. */
  jobId?: string;
  /** The site a user's request names. */
  siteId?: string;
}

/**
 * The caller behind a bearer token, or undefined. Session/API tokens are users; node keys are agents.
 * With a prefetch (the hottest routes), credentials come from the authentication cache when it
 * holds them (auth/auth-cache.ts); otherwise they are read afresh.
 */
export async function principalOf(req: FastifyRequest, ctx: ServerContext, prefetch: Prefetch = {}): Promise<Principal | undefined> {
  const cred = parseBearer(req.headers.authorization);
  if (!cred) return undefined;
  const hash = hashToken(cred.token);
  if (cred.kind === 'node') {
    const { jobId } = prefetch;
    const found = jobId === undefined ? { node: await ctx.repos.nodes.findByKeyHash(hash), job: undefined } : await nodeWithJob(ctx, hash, jobId);
    const node = found?.node;
    if (!node || node.status === 'disabled') return undefined;
    if (shouldTouch(node.id, 5_000)) ctx.nodeTouches.add(node.id);
    const principal: Principal = { kind: 'node', nodeId: node.id, keyHash: hash };
    if (jobId !== undefined) prefetchedJobs.set(principal, jobId, found?.job);
    return principal;
  }
  const { siteId } = prefetch;
  const found = siteId === undefined ? await userOf(ctx, hash) : await userWithSite(ctx, hash, siteId);
  if (!found || found.auth.token.kind !== cred.kind) return undefined;
  const { token, user, nodeIds, siteIds } = found.auth;
  if (shouldTouch(token.id, 60_000)) void ctx.repos.tokens.touch(token.id).catch(() => {});
  // A new object per request: prefetched rows are kept by principal.
  const principal: Principal = { kind: 'user', userId: user.id, role: user.role, nodeIds, siteIds };
  if (siteId !== undefined) prefetchedSites.set(principal, siteId, found.site);
  return principal;
}

/** Throws 403 unless the principal may do action on resource (ids from the database, never the request). */
export function must(principal: Principal | undefined, action: Action, resource: Resource = {}): Principal {
  if (!principal) throw unauthorized();
  if (authorize(principal, action, resource) !== 'allow') throw forbidden();
  return principal;
}

/** Methods whose requests Fastify parses a body for (the rest never see 413 or 415). */
const BODYLESS: ReadonlySet<string> = new Set(['GET', 'HEAD']);

/**
 * The statuses every route of its kind can answer, added to the route's own (which win):
 * 400 for a request its schema or the JSON parser refuses, 401/403 for the sign-in check
 * (a user on an agents' route and back), 413/415 for bodies too large or not JSON.
 */
function withCommonStatuses<B, P, Q, R>(spec: RouteSpec<B, P, Q, R>): Record<string, unknown> {
  const schema = spec.schema ?? {};
  const takesBody = !BODYLESS.has(spec.method);
  const statuses: number[] = [];
  if (takesBody || schema.params || schema.querystring) statuses.push(400);
  if (spec.auth !== 'public') statuses.push(401, 403);
  if (takesBody) statuses.push(413, 415);
  const common = (spec.errorDetail ? errorResponsesWithDetail : errorResponses)(...statuses);
  const own = (schema.response ?? {}) as Record<string, unknown>;
  return { ...common, ...own };
}

interface SchemaError {
  instancePath?: string;
  keyword: string;
  message?: string;
}

/** '/path:pattern' also stands for '/sites/3/path:pattern' (the end of the data's path). */
function messageFor(messages: Record<string, string>, where: string): string | undefined {
  const key = Object.keys(messages).find((k) => k === where || (k.startsWith('/') && where.endsWith(k)));
  return key === undefined ? undefined : messages[key];
}

/** Fastify's wording of schema errors, led by the route's own message for the first error it has one for. */
function schemaErrorFormatter(messages: Record<string, string> | undefined) {
  return (errors: SchemaError[], dataVar: string): Error => {
    const text = errors.map((e) => `${dataVar}${e.instancePath ?? ''} ${e.message ?? ''}`).join(', ');
    const own = messages && errors.map((e) => messageFor(messages, `${e.instancePath ?? ''}:${e.keyword}`)).find((m) => m !== undefined);
    return new Error(own ? `${own} (${text})` : text);
  };
}

// The principal found by a route's onRequest hook, for its handler.
const principals = new WeakMap<FastifyRequest, Principal>();

/**
 * Who calls, checked on arrival (onRequest): before the body is read or anything validated,
 * so a request without a valid token gets 401 whatever it carries.
 */
async function authenticate(auth: Exclude<Auth, 'public'>, request: FastifyRequest, ctx: ServerContext, prefetch?: Prefetch): Promise<void> {
  const principal = await principalOf(request, ctx, prefetch);
  if (!principal) throw unauthorized(parseBearer(request.headers.authorization)?.kind === 'node' ? NODE_KEY_REFUSED : undefined);
  if (auth === 'user' && principal.kind !== 'user') throw forbidden('This endpoint is for users, not agents');
  if (auth === 'node' && principal.kind !== 'node') throw forbidden('This endpoint is for agents (node keys) only');
  principals.set(request, principal);
}

/** JSON.stringify, not a serializer compiled from the schema (which would drop what the schema does not list). */
function sendAsBuilt(): (data: unknown) => string {
  return (data) => JSON.stringify(data);
}

function prefetchOf(what: 'job' | 'site' | undefined, request: FastifyRequest): Prefetch | undefined {
  const id = (request.params as { id?: unknown } | undefined)?.id;
  if (what === undefined || typeof id !== 'string') return undefined;
  return what === 'job' ? { jobId: id } : { siteId: id };
}

export function defineRoute<B = unknown, P = Record<string, string>, Q = Record<string, string>, R = unknown>(app: FastifyInstance, ctx: ServerContext, spec: RouteSpec<B, P, Q, R>): void {
  const { auth } = spec;
  app.route({
    method: spec.method,
    url: spec.url,
    schema: { summary: spec.summary, tags: spec.tags, ...(auth === 'public' ? {} : { security: [{ bearer: [] }] }), ...spec.schema, response: withCommonStatuses(spec) },
    config: { errorDetail: spec.errorDetail === true } satisfies RouteConfig,
    // The response schemas document the bodies (the OpenAPI document, and the tests that hold every
    // answer to it); they do not shape them: a body goes out as the handler built it.
    serializerCompiler: sendAsBuilt,
    schemaErrorFormatter: schemaErrorFormatter(spec.messages),
    onRequest: async (request) => {
      if (auth !== 'public') await authenticate(auth, request, ctx, prefetchOf(spec.prefetch, request));
    },
    handler: async (request, reply) => {
      const principal = principals.get(request);
      const out = await spec.handler({ body: request.body as B, params: request.params as P, query: request.query as Q, principal, raw: request, reply }, ctx);
      if (reply.sent) return reply;
      if (isReplied(out)) return reply.code(out.status).send(out.body);
      return reply.send(out);
    },
  });
}
