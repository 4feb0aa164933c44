import { conflict, notFound } from '../api-error.ts';
import type { ServerContext } from '../context.ts';
import type { Repos } from '../db/repos.ts';
import type { Role, UserRow } from '../db/users.ts';

// Changes to a user that must hold together, each in one transaction. The rule that an enabled
// super_admin always remains is checked with the enabled super_admins' rows locked (PostgreSQL)
// or under SQLite's write lock: two admins demoting, disabling or deleting each other at the
// same moment cannot both pass it, whichever server each request reaches.

export interface UserChange {
  role?: Role;
  disabled?: boolean;
  /** Already hashed: hashing is slow and must not hold the transaction open. */
  passwordHash?: string;
  /** With a new password, the token that stays (the caller's own session when it is theirs). */
  keepTokenId?: string;
}

export interface UserUpdate {
  user: UserRow;
  /** What changed, for the audit log and the caller: role, disabled/enabled, password. */
  changed: string[];
}

/** Whether removing this user from the enabled super_admins (demote, disable, delete) leaves none. */
async function keepOneSuperAdmin(repos: Repos, u: UserRow): Promise<void> {
  const admins = await repos.users.lockSuperAdmins();
  if (admins.includes(u.id) && admins.length <= 1) throw conflict('This is the last super_admin; make another user super_admin first');
}

async function loadUser(repos: Repos, id: string): Promise<UserRow> {
  const u = await repos.users.get(id);
  if (!u) throw notFound('User', id);
  return u;
}

/** PATCH /users/{id}: role, disabled flag and password, audited as one change by `by`. */
export function updateUser(ctx: ServerContext, by: string, id: string, c: UserChange): Promise<UserUpdate> {
  return ctx.repos.transaction(async (repos) => {
    const user = await loadUser(repos, id);
    const roleChanges = c.role !== undefined && c.role !== user.role;
    const disabledChanges = c.disabled !== undefined && c.disabled !== user.disabled;
    if (roleChanges || (disabledChanges && c.disabled === true)) await keepOneSuperAdmin(repos, user);
    const changed: string[] = [];
    let sessionsEnded = 0;
    if (roleChanges && c.role !== undefined) {
      await repos.users.setRole(user.id, c.role);
      changed.push('role');
      // A role that needs a second factor: sessions signed in without one end (they enroll at the next sign-in).
      if (ctx.mfa.isRequired(c.role)) sessionsEnded = await repos.tokens.revokeSessionsWithoutMfa([c.role], user.id);
    }
    if (disabledChanges && c.disabled !== undefined) {
      await repos.users.setDisabled(user.id, c.disabled);
      if (c.disabled) await repos.tokens.revokeForUser(user.id);
      changed.push(c.disabled ? 'disabled' : 'enabled');
    }
    if (c.passwordHash !== undefined) {
      await repos.users.setPasswordHash(user.id, c.passwordHash);
      await repos.tokens.revokeForUser(user.id, { exceptId: c.keepTokenId });
      changed.push('password');
    }
    const detail = { changed, role: c.role ?? user.role, ...(sessionsEnded > 0 ? { sessions_ended: sessionsEnded } : {}) };
    await repos.audit.record({ userId: by, action: 'user.update', targetType: 'user', targetId: user.id, detail });
    return { user: await loadUser(repos, user.id), changed };
  });
}

/** DELETE /users/{id}: the user, their tokens and assignments, audited by `by`. */
export function deleteUser(ctx: ServerContext, by: string, id: string): Promise<UserRow> {
  return ctx.repos.transaction(async (repos) => {
    const user = await loadUser(repos, id);
    await keepOneSuperAdmin(repos, user);
    await repos.users.remove(user.id);
    await repos.audit.record({ userId: by, action: 'user.delete', targetType: 'user', targetId: user.id, detail: { email: user.email, role: user.role } });
    return user;
  });
}
