import type { FastifyInstance, FastifyReply } from 'fastify';
import type { LoginChallenge, LoginMfaRequest, LoginMfaResponse, LoginRequest, LoginResult, MfaEnrollment } from '../../api/types.ts';
import { verifyPassword } from '../auth/passwords.ts';
import { refusalMessage, type LimitVerdict, type LoginTicket } from '../auth/rate-limit.ts';
import { expiryFor, generateToken, hashToken } from '../auth/tokens.ts';
import { ApiError, conflict } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import { defineRoute } from '../route.ts';
import { errorResponses } from './error-responses.ts';
import { registerMfaRoutes } from './mfa.ts';

// Signing in. POST /auth/login checks the password; an account with a second factor (or of a role
// that must have one) gets no token there but a challenge, and POST /auth/login/mfa trades the
// challenge and a code for the session. These two are the only routes that issue a session;
// API tokens are made only by a signed-in session (POST /tokens), so a password alone never
// yields a usable token for an account with MFA. Wrong passwords and wrong codes both count
// toward the sign-in limits (auth/rate-limit.ts).

const CHALLENGE_SCHEMA = { type: 'string', minLength: 1, maxLength: 100 } as const;

const loginSchema = {
  body: {
    type: 'object',
    required: ['email', 'password'],
    additionalProperties: false,
    properties: { email: { type: 'string', minLength: 3, maxLength: 254 }, password: { type: 'string', minLength: 1, maxLength: 1024 } },
  },
  response: errorResponses(400, 401, 429),
} as const;

const mfaSchema = {
  body: {
    type: 'object',
    required: ['challenge', 'code'],
    additionalProperties: false,
    properties: { challenge: CHALLENGE_SCHEMA, code: { type: 'string', minLength: 1, maxLength: 40 } },
  },
  response: errorResponses(400, 401, 409, 429),
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
  defineRoute<LoginRequest, Record<string, string>, Record<string, string>, LoginResult>(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/login',
    auth: 'public',
    summary: 'Sign in with email and password; returns a bearer token, or a challenge when a second factor is needed',
    tags: ['auth'],
    schema: loginSchema,
    handler: async ({ body, raw, reply }) => {
      const ticket = admit(await ctx.loginLimiter.attempt(raw.ip, body.email, 'password'), reply);
      const creds = await ctx.repos.users.credentialsByEmail(body.email);
      // verifyPassword hashes even for an unknown email, so timing does not tell which exist.
      if (!(await verifyPassword(body.password, creds?.passwordHash)) || !creds) throw new ApiError(401, 'unauthorized', 'Wrong email or password');
      const { user } = creds;
      if (user.disabled) throw new ApiError(403, 'user_disabled', 'This account is disabled; ask a super_admin to enable it');
      const mfa = await ctx.mfa.status(user.id);
      const purpose = mfa.enabled ? 'verify' : ctx.mfa.isRequired(user.role) ? 'enroll' : undefined;
      await ctx.loginLimiter.succeeded(ticket, { complete: purpose === undefined });
      if (purpose === undefined) return issueSession(ctx, user.id, { mfa: null });
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

  defineRoute<{ challenge: string }, Record<string, string>, Record<string, string>, MfaEnrollment>(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/login/mfa/enroll',
    auth: 'public',
    summary: 'For a role that must have a second factor: with the enrollment challenge from sign-in, get a TOTP secret to confirm through /auth/login/mfa',
    tags: ['auth'],
    schema: {
      body: { type: 'object', required: ['challenge'], additionalProperties: false, properties: { challenge: CHALLENGE_SCHEMA } },
      response: errorResponses(400, 401, 409),
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

  registerMfaRoutes(app, ctx);
}
