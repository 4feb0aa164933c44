import type { FastifyInstance } from 'fastify';
import type { LoginRequest, LoginResponse } from '../../api/types.ts';
import { verifyPassword } from '../auth/passwords.ts';
import { expiryFor, generateToken, hashToken } from '../auth/tokens.ts';
import { ApiError } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import { defineRoute } from '../route.ts';

const loginSchema = {
  body: {
    type: 'object',
    required: ['email', 'password'],
    additionalProperties: false,
    properties: { email: { type: 'string', minLength: 3, maxLength: 254 }, password: { type: 'string', minLength: 1, maxLength: 1024 } },
  },
} as const;

export function registerAuthRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<LoginRequest, Record<string, string>, Record<string, string>, LoginResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/login',
    auth: 'public',
    summary: 'Sign in with email and password; returns a bearer token',
    tags: ['auth'],
    schema: loginSchema,
    handler: async ({ body, raw, reply }) => {
      const verdict = ctx.loginLimiter.attempt(raw.ip, body.email);
      if (!verdict.ok) {
        void reply.header('retry-after', String(verdict.retryAfterSec));
        throw new ApiError(429, 'rate_limited', `Too many failed sign-ins; try again in ${verdict.retryAfterSec} s`);
      }
      const creds = await ctx.repos.users.credentialsByEmail(body.email);
      // verifyPassword hashes even for an unknown email, so timing does not tell which exist.
      if (!(await verifyPassword(body.password, creds?.passwordHash)) || !creds) throw new ApiError(401, 'unauthorized', 'Wrong email or password');
      ctx.loginLimiter.succeeded(raw.ip, body.email);
      if (creds.user.disabled) throw new ApiError(403, 'user_disabled', 'This account is disabled; ask a super_admin to enable it');
      const token = generateToken('session');
      const expires = expiryFor('session') as Date;
      await ctx.repos.tokens.create({ userId: creds.user.id, tokenHash: hashToken(token), kind: 'session', name: 'login', expiresAt: expires.getTime() });
      await ctx.repos.audit.record({ userId: creds.user.id, action: 'auth.login', targetType: 'user', targetId: creds.user.id });
      return { token, expires_at: expires.toISOString() };
    },
  });
}
