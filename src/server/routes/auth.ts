import type { FastifyInstance, FastifyReply } from 'fastify';
import { Me } from '../../api/admin-types.ts';
import { LoginBody, LoginEnrollRequest, LoginMfaRequest, LoginMfaResponse, LoginResult, MfaEnrollment, type LoginChallenge, type LoginRequest, type UsernameLoginRequest } from '../../api/types.ts';
import { verifyPassword } from '../auth/passwords.ts';
import { refusalMessage, type LimitVerdict, type LoginTicket } from '../auth/rate-limit.ts';
import { expiryFor, generateToken, hashToken } from '../auth/tokens.ts';
import { ApiError, conflict, notFound } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import { defineRoute, replied } from '../route.ts';
import { accessChanged } from '../stream-access.ts';
import { currentTokenHash, userBody } from './admin-common.ts';
import { errorResponses, errorResponsesWithDetail, noContent, ok } from './error-responses.ts';
import { registerMfaRoutes } from './mfa.ts';
import { emptyBody, userId } from './schema.ts';

// Signing in. POST /auth/login checks the password; an account with a second factor (or of a role
// that must have one) gets no token there but a challenge, and POST /auth/login/mfa trades the
// challenge and a code for the session. These two are the only routes that issue a session;
// API tokens are made only by a signed-in session (POST /tokens), so a password alone never
// yields a usable token for an account with MFA. Wrong passwords and wrong codes both count
// toward the sign-in limits (auth/rate-limit.ts). GET /auth/me and POST /auth/logout are the
// signed-in caller's own account.
//
// The original system's clients sign in with {"username", "password"} and read access_token:
// username is accepted as the email, and the session is also returned under those names.

const loginSchema = {
  body: LoginBody,
  response: {
    ...ok(LoginResult, 'The session (token, also as access_token with token_type bearer), or a challenge when a second factor is needed'),
    ...errorResponsesWithDetail(400, 401, { 403: 'The account is disabled' }, 429),
  },
} as const;

const mfaSchema = {
  body: LoginMfaRequest,
  response: { ...ok(LoginMfaResponse, 'The session'), ...errorResponses(400, 401, 409, 429) },
} as const;

/** 429 with Retry-After unless the limiter let the attempt through. */
/** The limiter's ticket, or 429 with Retry-After: every check of a password or code goes through it. */
export function admit(verdict: LimitVerdict, reply: FastifyReply): LoginTicket {
  if (verdict.ok) return verdict.ticket;
  void reply.header('retry-after', String(verdict.retryAfterSec));
  throw new ApiError(429, 'rate_limited', refusalMessage(verdict));
}

const badChallenge = (): ApiError => new ApiError(401, 'unauthorized', 'The sign-in challenge is unknown, used or expired; sign in with your password again');

async function issueSession(ctx: ServerContext, userId: string, detail: Record<string, unknown>): Promise<{ token: string; expires_at: string }> {
  const token = generateToken('session');
  const expires = expiryFor('session') as Date;
  await ctx.repos.tokens.create({ userId, tokenHash: hashToken(token), kind: 'session', name: 'login', expiresAt: expires.getTime() });
  await ctx.repos.audit.record({ userId, action: 'auth.login', targetType: 'user', targetId: userId, detail });
  return { token, expires_at: expires.toISOString() };
}

export function registerAuthRoutes(app: FastifyInstance, ctx: ServerContext): void {
  defineRoute<LoginRequest | UsernameLoginRequest, Record<string, string>, Record<string, string>, LoginResult>(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/login',
    auth: 'public',
    summary: 'Sign in with email (or username) and password; returns a bearer token, or a challenge when a second factor is needed',
    tags: ['auth'],
    schema: loginSchema,
    errorDetail: true,
    handler: async ({ body, raw, reply }) => {
      const email = 'email' in body ? body.email : body.username;
      const ticket = admit(await ctx.loginLimiter.attempt(raw.ip, email, 'password'), reply);
      const creds = await ctx.repos.users.credentialsByEmail(email);
      // verifyPassword hashes even for an unknown email, so timing does not tell which exist.
      if (!(await verifyPassword(body.password, creds?.passwordHash)) || !creds) throw new ApiError(401, 'unauthorized', 'Wrong email or password');
      const { user } = creds;
      if (user.disabled) throw new ApiError(403, 'user_disabled', 'This account is disabled; ask a super_admin to enable it');
      const mfa = await ctx.mfa.status(user.id);
      const purpose = mfa.enabled ? 'verify' : ctx.mfa.isRequired(user.role) ? 'enroll' : undefined;
      await ctx.loginLimiter.succeeded(ticket, { complete: purpose === undefined });
      if (purpose === undefined) {
        const session = await issueSession(ctx, user.id, { mfa: null });
        return { ...session, access_token: session.token, token_type: 'bearer' };
      }
      const { challenge, expiresAt } = await ctx.mfa.newChallenge(user.id, purpose);
      const out: LoginChallenge = { challenge, challenge_expires_at: new Date(expiresAt).toISOString() };
      return purpose === 'verify' ? { mfa_required: true, ...out } : { mfa_enrollment_required: true, ...out };
    },
  });

  defineRoute<LoginMfaRequest, Record<string, string>, Record<string, string>, LoginMfaResponse>(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/login/mfa',
    auth: 'public',
    summary: 'Second step of a sign-in: the challenge and a TOTP or recovery code; returns the bearer token',
    tags: ['auth'],
    schema: mfaSchema,
    handler: async ({ body, raw, reply }) => {
      const ch = await ctx.mfa.challenge(body.challenge);
      if (!ch) throw badChallenge();
      const ticket = admit(await ctx.loginLimiter.attempt(raw.ip, ch.email, 'mfa'), reply);
      let kind: string | undefined;
      let recoveryCodes: string[] | undefined;
      if (ch.purpose === 'verify') kind = await ctx.mfa.verify(ch.userId, body.code);
      else {
        const r = await ctx.mfa.confirmEnrollment(ch.userId, body.code);
        if (r === 'none') throw conflict('Start the enrollment first: POST /api/v1/auth/login/mfa/enroll with this challenge');
        if (r !== 'wrong') [kind, recoveryCodes] = ['enrolled', r];
      }
      if (kind === undefined) {
        await ctx.mfa.challengeFailed(body.challenge);
        throw new ApiError(401, 'unauthorized', 'Wrong or already used code');
      }
      if (!(await ctx.mfa.consumeChallenge(body.challenge))) throw badChallenge();
      await ctx.loginLimiter.succeeded(ticket, { complete: true });
      if (kind === 'enrolled') await ctx.repos.audit.record({ userId: ch.userId, action: 'user.mfa_enable', targetType: 'user', targetId: ch.userId });
      const session = await issueSession(ctx, ch.userId, { mfa: kind });
      return recoveryCodes ? { ...session, recovery_codes: recoveryCodes } : session;
    },
  });

  defineRoute<LoginEnrollRequest, Record<string, string>, Record<string, string>, MfaEnrollment>(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/login/mfa/enroll',
    auth: 'public',
    summary: 'For a role that must have a second factor: with the enrollment challenge from sign-in, get a TOTP secret to confirm through /auth/login/mfa',
    tags: ['auth'],
    schema: {
      body: LoginEnrollRequest,
      response: { ...ok(MfaEnrollment, 'The secret to confirm'), ...errorResponses(400, 401, 409) },
    },
    handler: async ({ body }) => {
      const ch = await ctx.mfa.challenge(body.challenge);
      // A verify challenge is for an account that already has a factor: it never starts a new one.
      if (!ch || ch.purpose !== 'enroll') throw badChallenge();
      const e = await ctx.mfa.startEnrollment(ch.userId, ch.email);
      if (!e) throw conflict('This account already has a second factor; sign in again to use it');
      return { secret: e.secret, otpauth_uri: e.otpauthUri };
    },
  });

  defineRoute<unknown, Record<string, string>, Record<string, string>, Me>(app, ctx, {
    method: 'GET',
    url: '/api/v1/auth/me',
    auth: 'user',
    summary: 'The signed-in user, with their role and assignments',
    tags: ['auth'],
    schema: { response: ok(Me, 'You') },
    handler: async ({ principal }) => {
      const id = userId(principal);
      const user = await ctx.repos.users.get(id);
      if (!user) throw notFound('User', id);
      return userBody(ctx.repos, user);
    },
  });

  defineRoute(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/logout',
    auth: 'user',
    summary: 'Revoke the token this request is made with',
    tags: ['auth'],
    schema: { body: emptyBody, response: noContent('Signed out') },
    handler: async ({ principal, raw }) => {
      const id = userId(principal);
      const hash = currentTokenHash(raw);
      if (hash !== undefined) await ctx.repos.tokens.revokeByHash(hash);
      accessChanged(ctx, id);
      await ctx.repos.audit.record({ userId: id, action: 'auth.logout', targetType: 'user', targetId: id });
      return replied(204, undefined);
    },
  });

  registerMfaRoutes(app, ctx);
}
