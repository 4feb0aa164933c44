import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { CreateTokenRequest, CreateTokenResponse, TokenList, type ApiToken } from '../../api/admin-types.ts';
import { authorize } from '../auth/roles.ts';
import { generateToken, hashToken } from '../auth/tokens.ts';
import { notFound } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import type { TokenRow } from '../db/tokens.ts';
import { defineRoute, replied } from '../route.ts';
import { accessChanged } from '../stream-access.ts';
import { currentTokenHash, idParams, iso, userId } from './admin-common.ts';

import { errorResponses, noContent, ok, success } from './error-responses.ts';

// The caller's own tokens: their sessions and long-lived API tokens (wpb_a_…) for scripts.
// A token's value is returned once, by the call that creates it. A super_admin (user.manage)
// may revoke anyone's token; everyone else only their own (another's id is "not found").

const DAY = 24 * 60 * 60 * 1000;

const TokenParams = idParams('id');

function tokenBody(t: TokenRow, currentId: string | undefined): ApiToken {
  return { id: t.id, kind: t.kind, name: t.name, created_at: iso(t.createdAt), expires_at: iso(t.expiresAt), last_used_at: iso(t.lastUsedAt), current: t.id === currentId };
}

export function registerTokenRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const tags = ['tokens'];

  defineRoute<unknown, Record<string, string>, Record<string, string>, TokenList>(app, ctx, {
    method: 'GET',
    url: '/api/v1/tokens',
    auth: 'user',
    summary: 'Your sessions and API tokens (never their values)',
    tags,
    schema: { response: ok(TokenList, 'Your tokens') },
    handler: async ({ principal, raw }) => {
      const hash = currentTokenHash(raw);
      const current = hash === undefined ? undefined : (await ctx.repos.tokens.authenticate(hash))?.token.id;
      const now = Date.now();
      const tokens = (await ctx.repos.tokens.listForUser(userId(principal))).filter((t) => t.expiresAt === null || t.expiresAt > now);
      return { tokens: tokens.map((t) => tokenBody(t, current)) };
    },
  });

  defineRoute<CreateTokenRequest, Record<string, string>, Record<string, string>, CreateTokenResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/tokens',
    auth: 'user',
    summary: 'Create an API token for scripts; its value is shown once',
    tags,
    schema: {
      body: CreateTokenRequest,
      response: success(201, 'The token, with its value (shown once)', CreateTokenResponse),
    },
    handler: async ({ body, principal }) => {
      const uid = userId(principal);
      const token = generateToken('api');
      const expiresAt = body.expires_in_days == null ? null : Date.now() + body.expires_in_days * DAY;
      const row = await ctx.repos.tokens.create({ userId: uid, tokenHash: hashToken(token), kind: 'api', name: body.name, expiresAt });
      await ctx.repos.audit.record({ userId: uid, action: 'token.create', targetType: 'token', targetId: row.id, detail: { name: row.name, expires_at: iso(row.expiresAt) } });
      const { current: _current, ...out } = tokenBody(row, undefined);
      return replied(201, { ...out, token });
    },
  });

  defineRoute<unknown, Static<typeof TokenParams>>(app, ctx, {
    method: 'DELETE',
    url: '/api/v1/tokens/:id',
    auth: 'user',
    summary: 'Revoke one of your tokens (a super_admin may revoke anyone’s)',
    tags,
    schema: { params: TokenParams, response: { ...noContent('Revoked'), ...errorResponses({ 404: 'No such token of yours' }) } },
    handler: async ({ params, principal }) => {
      const uid = userId(principal);
      const t = await ctx.repos.tokens.get(params.id);
      const mayRevoke = t !== undefined && (t.userId === uid || (principal !== undefined && authorize(principal, 'user.manage', {}) === 'allow'));
      if (!t || !mayRevoke) throw notFound('Token', params.id);
      await ctx.repos.tokens.revoke(t.id);
      accessChanged(ctx, t.userId); // its open event streams end now, not at their next re-check
      await ctx.repos.audit.record({ userId: uid, action: 'token.revoke', targetType: 'token', targetId: t.id, detail: { owner_id: t.userId, kind: t.kind, name: t.name } });
      return replied(204, undefined);
    },
  });
}
