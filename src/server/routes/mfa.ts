import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { MfaCodeRequest, MfaEnrollment, MfaRecoveryCodes, MfaStatusBody } from '../../api/types.ts';
import { refusalMessage } from '../auth/rate-limit.ts';
import { ApiError, conflict, notFound } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import { defineRoute, must, replied } from '../route.ts';
import { idParams, userId } from './admin-common.ts';
import { errorResponses, noContent, ok } from './error-responses.ts';

// A signed-in user's second factor: status, enroll (secret + otpauth:// URI), confirm with a first
// code (returns the recovery codes, once), disable with a code; and a super_admin's reset of
// someone's MFA (audited). Wrong codes to disable count toward the sign-in limits: a stolen
// session must not be a way to guess codes.

const UserParams = idParams('id');

const wrongCode = (): ApiError => new ApiError(422, 'wrong_code', 'Wrong or already used code');

export function registerMfaRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const tags = ['auth'];

  defineRoute<unknown, Record<string, string>, Record<string, string>, MfaStatusBody>(app, ctx, {
    method: 'GET',
    url: '/api/v1/auth/mfa',
    auth: 'user',
    summary: 'Whether your account has a second factor (TOTP), and how many recovery codes are left',
    tags,
    schema: { response: { ...ok(MfaStatusBody, 'Your second factor'), ...errorResponses(401, 403) } },
    handler: async ({ principal }) => {
      const id = userId(principal);
      const s = await ctx.mfa.status(id);
      const role = principal?.kind === 'user' ? principal.role : undefined;
      return { enabled: s.enabled, pending: s.pending, required: role !== undefined && ctx.mfa.isRequired(role), recovery_codes_left: s.recoveryCodesLeft };
    },
  });

  defineRoute<unknown, Record<string, string>, Record<string, string>, MfaEnrollment>(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/mfa/enroll',
    auth: 'user',
    summary: 'Start TOTP enrollment: a new secret and its otpauth:// URI (for a QR code); confirm with a code',
    tags,
    schema: { response: { ...ok(MfaEnrollment, 'The secret to confirm'), ...errorResponses(404, 409) } },
    handler: async ({ principal }) => {
      const id = userId(principal);
      const user = await ctx.repos.users.get(id);
      if (!user) throw notFound('User', id);
      const e = await ctx.mfa.startEnrollment(id, user.email);
      if (!e) throw conflict('Your account already has a second factor; disable it first to enroll a new one');
      return { secret: e.secret, otpauth_uri: e.otpauthUri };
    },
  });

  defineRoute<MfaCodeRequest, Record<string, string>, Record<string, string>, MfaRecoveryCodes>(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/mfa/confirm',
    auth: 'user',
    summary: 'Confirm TOTP enrollment with a code; returns 10 one-time recovery codes, shown only this once',
    tags,
    schema: { body: MfaCodeRequest, response: { ...ok(MfaRecoveryCodes, 'Turned on; the recovery codes'), ...errorResponses(400, 401, 403, 409, 422) } },
    handler: async ({ body, principal }) => {
      const id = userId(principal);
      const r = await ctx.mfa.confirmEnrollment(id, body.code);
      if (r === 'none') throw conflict('No enrollment to confirm: start one with POST /api/v1/auth/mfa/enroll');
      if (r === 'wrong') throw wrongCode();
      await ctx.repos.audit.record({ userId: id, action: 'user.mfa_enable', targetType: 'user', targetId: id });
      return { recovery_codes: r };
    },
  });

  defineRoute<MfaCodeRequest>(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/mfa/disable',
    auth: 'user',
    summary: 'Turn your second factor off, with a TOTP or recovery code',
    tags,
    schema: { body: MfaCodeRequest, response: { ...noContent('Turned off'), ...errorResponses(409, 422, 429) } },
    handler: async ({ body, principal, raw, reply }) => {
      const id = userId(principal);
      const user = await ctx.repos.users.get(id);
      if (!user) throw notFound('User', id);
      if (!(await ctx.mfa.status(id)).enabled) throw conflict('Your account has no second factor to disable');
      if (ctx.mfa.isRequired(user.role)) throw conflict(`The server requires a second factor for ${user.role}; it cannot be turned off`);
      const verdict = await ctx.loginLimiter.attempt(raw.ip, user.email, 'mfa');
      if (!verdict.ok) {
        void reply.header('retry-after', String(verdict.retryAfterSec));
        throw new ApiError(429, 'rate_limited', refusalMessage(verdict));
      }
      if (!(await ctx.mfa.verify(id, body.code))) throw wrongCode();
      await ctx.loginLimiter.succeeded(verdict.ticket, { complete: false });
      await ctx.mfa.disable(id);
      await ctx.repos.audit.record({ userId: id, action: 'user.mfa_disable', targetType: 'user', targetId: id });
      return replied(204, undefined);
    },
  });

  defineRoute<unknown, Static<typeof UserParams>>(app, ctx, {
    method: 'DELETE',
    url: '/api/v1/users/:id/mfa',
    auth: 'user',
    summary: "Reset a user's second factor, e.g. a lost phone (super_admin); they enroll again",
    tags: ['users'],
    schema: { params: UserParams, response: { ...noContent('Reset'), ...errorResponses(404) } },
    handler: async ({ params, principal }) => {
      const me = must(principal, 'user.manage');
      const user = await ctx.repos.users.get(params.id);
      if (!user) throw notFound('User', params.id);
      const had = await ctx.mfa.disable(user.id);
      await ctx.repos.audit.record({ userId: userId(me), action: 'user.mfa_reset', targetType: 'user', targetId: user.id, detail: { email: user.email, had_mfa: had } });
      return replied(204, undefined);
    },
  });
}
