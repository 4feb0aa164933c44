import type { Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ChangePasswordRequest, CreateUserRequest, UpdateUserRequest, User, UserList } from '../../api/admin-types.ts';
import { checkPasswordPolicy, hashPassword, verifyPassword } from '../auth/passwords.ts';
import type { Principal } from '../auth/roles.ts';
import { ApiError, conflict, invalid, notFound } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import type { UserRow } from '../db/users.ts';
import { defineRoute, must, replied } from '../route.ts';
import { deleteUser, updateUser } from '../services/users.ts';
import { accessChanged } from '../stream-access.ts';
import { currentTokenHash, idParams, SHORT_PASSWORD, userBody, userId } from './admin-common.ts';
import { admit } from './auth.ts';
import { errorResponses, noContent, ok, success } from './error-responses.ts';

// Users (super_admin only, action user.manage), their node and site assignments, and the
// caller's own password (/auth/password). Passwords go in hashed and never come out.

const UserParams = idParams('id');
type IdP = Static<typeof UserParams>;

async function loadUser(ctx: ServerContext, id: string): Promise<UserRow> {
  const u = await ctx.repos.users.get(id);
  if (!u) throw notFound('User', id);
  return u;
}

function checkPolicy(password: string, email: string): void {
  const verdict = checkPasswordPolicy(password, email);
  if (!verdict.ok) throw invalid(verdict.message);
}

/**
 * After a password change: every session and API token of the user ends, except the token the change was
 * made with when it is theirs (an admin changing their own password stays signed in). API tokens go too:
 * whoever knew the old password could have made some, and a password is changed because it leaked.
 */
async function endOtherTokens(ctx: ServerContext, req: FastifyRequest, uid: string): Promise<number> {
  return ctx.repos.tokens.revokeForUser(uid, { exceptId: await ownTokenId(ctx, req, uid) });
}

/** The token this request is made with, when it belongs to uid: it survives uid's password change. */
async function ownTokenId(ctx: ServerContext, req: FastifyRequest, uid: string): Promise<string | undefined> {
  const hash = currentTokenHash(req);
  const current = hash === undefined ? undefined : (await ctx.repos.tokens.authenticate(hash))?.token;
  return current?.userId === uid ? current.id : undefined;
}

export function registerUserRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const tags = ['users'];

  defineRoute<unknown, Record<string, string>, Record<string, string>, UserList>(app, ctx, {
    method: 'GET',
    url: '/api/v1/users',
    auth: 'user',
    summary: 'List users with their assignments (super_admin)',
    tags,
    schema: { response: ok(UserList, 'The users') },
    handler: async ({ principal }) => {
      must(principal, 'user.manage');
      const users = await ctx.repos.users.list();
      return { users: await Promise.all(users.map((u) => userBody(ctx.repos, u))) };
    },
  });

  defineRoute<CreateUserRequest, Record<string, string>, Record<string, string>, User>(app, ctx, {
    method: 'POST',
    url: '/api/v1/users',
    auth: 'user',
    summary: 'Create a user (super_admin); the password must meet the policy',
    tags,
    messages: { '/password:minLength': SHORT_PASSWORD },
    schema: {
      body: CreateUserRequest,
      response: { ...success(201, 'The new user', User), ...errorResponses({ 400: 'Malformed request, or the password does not meet the policy' }, { 409: 'A user with that email exists' }) },
    },
    handler: async ({ body, principal }) => {
      const me = must(principal, 'user.manage');
      checkPolicy(body.password, body.email);
      if (await ctx.repos.users.getByEmail(body.email)) throw conflict(`A user with email ${body.email.trim().toLowerCase()} already exists`);
      const user = await ctx.repos.users.create({ email: body.email, passwordHash: await hashPassword(body.password), role: body.role });
      await ctx.repos.audit.record({ userId: userId(me), action: 'user.create', targetType: 'user', targetId: user.id, detail: { email: user.email, role: user.role } });
      return replied(201, await userBody(ctx.repos, user));
    },
  });

  defineRoute<unknown, IdP, Record<string, string>, User>(app, ctx, {
    method: 'GET',
    url: '/api/v1/users/:id',
    auth: 'user',
    summary: 'One user with their assignments (super_admin)',
    tags,
    schema: { params: UserParams, response: { ...ok(User, 'The user'), ...errorResponses({ 404: 'No such user' }) } },
    handler: async ({ params, principal }) => {
      must(principal, 'user.manage');
      return userBody(ctx.repos, await loadUser(ctx, params.id));
    },
  });

  defineRoute<UpdateUserRequest, IdP, Record<string, string>, User>(app, ctx, {
    method: 'PATCH',
    url: '/api/v1/users/:id',
    auth: 'user',
    summary: "Change a user's role, password or disabled flag (super_admin); a new password or disabling ends their sessions and API tokens",
    tags,
    messages: { '/password:minLength': SHORT_PASSWORD },
    schema: {
      params: UserParams,
      body: UpdateUserRequest,
      response: { ...ok(User, 'The user as changed'), ...errorResponses({ 400: 'Malformed request, or the password does not meet the policy' }, { 404: 'No such user' }, { 409: 'You cannot disable yourself, nor leave no enabled super_admin' }) },
    },
    handler: async ({ body, params, principal, raw }) => {
      const me = must(principal, 'user.manage');
      const user = await loadUser(ctx, params.id);
      if (body.password !== undefined) checkPolicy(body.password, user.email);
      // Nobody disables themselves; demoting or disabling another keeps one enabled super_admin (services/users.ts).
      if (body.disabled === true && user.id === userId(me)) throw conflict('You cannot disable your own account; another super_admin can');
      const passwordHash = body.password === undefined ? undefined : await hashPassword(body.password);
      const keepTokenId = passwordHash === undefined ? undefined : await ownTokenId(ctx, raw, user.id);
      const updated = await updateUser(ctx, userId(me), user.id, { role: body.role, disabled: body.disabled, passwordHash, keepTokenId });
      if (updated.changed.length > 0) accessChanged(ctx, user.id);
      return userBody(ctx.repos, updated.user);
    },
  });

  defineRoute<ChangePasswordRequest, Record<string, string>, Record<string, string>, void>(app, ctx, {
    method: 'POST',
    url: '/api/v1/auth/password',
    auth: 'user',
    summary: 'Change your own password; your other sessions and API tokens end (this one stays)',
    tags: ['auth'],
    messages: { '/new_password:minLength': SHORT_PASSWORD },
    schema: {
      body: ChangePasswordRequest,
      response: {
        204: { description: 'Changed; your other sessions and API tokens ended', type: 'null' },
        ...errorResponses({ 400: 'The new password does not meet the policy', 401: 'Not signed in', 403: 'The current password is wrong', 429: 'Too many wrong passwords (Retry-After)' }),
      },
    },
    handler: async ({ body, principal, raw, reply }) => {
      const user = await loadUser(ctx, userId(principal));
      // The current password is guessed here no faster than at sign-in: the same limiter counts both.
      const ticket = admit(await ctx.loginLimiter.attempt(raw.ip, user.email, 'password'), reply);
      const creds = await ctx.repos.users.credentialsByEmail(user.email);
      if (!(await verifyPassword(body.current_password, creds?.passwordHash))) throw new ApiError(403, 'wrong_password', 'The current password is wrong; nothing was changed');
      await ctx.loginLimiter.succeeded(ticket, { complete: false });
      checkPolicy(body.new_password, user.email);
      await ctx.repos.users.setPasswordHash(user.id, await hashPassword(body.new_password));
      const ended = await endOtherTokens(ctx, raw, user.id);
      accessChanged(ctx, user.id);
      await ctx.repos.audit.record({ userId: user.id, action: 'auth.password_change', targetType: 'user', targetId: user.id, detail: { tokens_ended: ended } });
      return replied(204, undefined);
    },
  });

  defineRoute<unknown, IdP>(app, ctx, {
    method: 'DELETE',
    url: '/api/v1/users/:id',
    auth: 'user',
    summary: 'Delete a user with their tokens and assignments (super_admin)',
    tags,
    schema: { params: UserParams, response: { ...noContent('Deleted'), ...errorResponses({ 404: 'No such user' }, { 409: 'You cannot delete yourself, nor the last super_admin' }) } },
    handler: async ({ params, principal }) => {
      const me = must(principal, 'user.manage');
      const user = await loadUser(ctx, params.id);
      if (user.id === userId(me)) throw conflict('You cannot delete your own account; another super_admin can');
      await deleteUser(ctx, userId(me), user.id);
      accessChanged(ctx, user.id);
      return replied(204, undefined);
    },
  });

  for (const kind of ['node', 'site'] as const) {
    const param = `${kind}_id`;
    const url = `/api/v1/users/:id/${kind}s/:${param}`;
    const what = kind === 'node' ? 'Node' : 'Site';
    const exists = async (id: string): Promise<boolean> => (kind === 'node' ? ctx.repos.nodes.get(id) : ctx.repos.sites.get(id)).then((r) => r !== undefined);
    /** Both routes' checks: a super_admin asks, the user and the node or site exist. */
    const assignment = async (params: Record<string, string>, principal: Principal | undefined): Promise<{ me: Principal; user: UserRow; target: string }> => {
      const me = must(principal, 'user.manage');
      const user = await loadUser(ctx, params.id ?? '');
      const target = params[param] ?? '';
      if (!(await exists(target))) throw notFound(what, target);
      return { me, user, target };
    };

    defineRoute<unknown, Record<string, string>, Record<string, string>, User>(app, ctx, {
      method: 'PUT',
      url,
      auth: 'user',
      summary: `Assign a ${kind} to a user (super_admin)`,
      tags,
      schema: { params: idParams('id', param), response: { ...ok(User, 'The user with the assignment'), ...errorResponses({ 404: `No such user or ${kind}` }) } },
      handler: async ({ params, principal }) => {
        const { me, user, target } = await assignment(params, principal);
        if (kind === 'node') await ctx.repos.users.assignNode(user.id, target);
        else await ctx.repos.users.assignSite(user.id, target);
        await ctx.repos.audit.record({ userId: userId(me), action: `user.assign_${kind}`, targetType: 'user', targetId: user.id, detail: { [param]: target } });
        return userBody(ctx.repos, user);
      },
    });

    defineRoute<unknown, Record<string, string>>(app, ctx, {
      method: 'DELETE',
      url,
      auth: 'user',
      summary: `Take a ${kind} away from a user (super_admin)`,
      tags,
      schema: { params: idParams('id', param), response: { ...noContent('Not assigned (any more)'), ...errorResponses({ 404: `No such user or ${kind}` }) } },
      handler: async ({ params, principal }) => {
        const { me, user, target } = await assignment(params, principal);
        const removed = kind === 'node' ? await ctx.repos.users.unassignNode(user.id, target) : await ctx.repos.users.unassignSite(user.id, target);
        if (removed) {
          accessChanged(ctx, user.id);
          await ctx.repos.audit.record({ userId: userId(me), action: `user.unassign_${kind}`, targetType: 'user', targetId: user.id, detail: { [param]: target } });
        }
        return replied(204, undefined);
      },
    });
  }
}
