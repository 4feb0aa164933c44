import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { lockTable } from '../../helpers/table-lock.ts';
import { DIALECTS, startTestServer, type ApiResponse, type TestServer } from '../../helpers/server.ts';

// The last enabled super_admin can be neither demoted, disabled nor deleted (services/users.ts),
// also when the last two act on each other at the same moment. On PostgreSQL both requests are
// held at a lock on the users table until both have read the users, so the race happens every
// run; each must then see what the other did. A refused request gets 409 (or 401/403 when the
// other request already ended or demoted the caller's account).

type Admin = { id: string; token: string };

for (const dialect of DIALECTS) {
  describe(`the last super_admin under concurrent requests (${dialect})`, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer(dialect);
    });
    after(async () => {
      await t?.close();
    });

    /** Two new super_admins, and no other enabled one left. */
    async function lastTwo(): Promise<[Admin, Admin]> {
      const a = await t.userWithRole('super_admin');
      const b = await t.userWithRole('super_admin');
      for (const u of await t.server.ctx.repos.users.list()) {
        if (u.role === 'super_admin' && u.id !== a.id && u.id !== b.id) await t.server.ctx.repos.users.setRole(u.id, 'node_admin');
      }
      assert.equal(await t.server.ctx.repos.users.count('super_admin'), 2);
      return [a, b];
    }

    /** Sends the requests together; on PostgreSQL lets them go only once all wait at the lock. */
    async function race(requests: (() => Promise<ApiResponse>)[]): Promise<number[]> {
      const lock = dialect === 'postgres' ? await lockTable(t.target, 'users') : undefined;
      try {
        const pending = requests.map((r) => r());
        await lock?.waiters(requests.length);
        await lock?.release();
        return (await Promise.all(pending)).map((r) => r.status).sort();
      } finally {
        await lock?.release();
      }
    }

    async function check(statuses: number[], ok: number): Promise<void> {
      assert.equal(statuses.filter((s) => s === ok).length, 1, `one request succeeds: ${statuses.join(', ')}`);
      assert.ok(statuses.every((s) => s === ok || s === 409 || s === 401 || s === 403), statuses.join(', '));
      assert.equal(await t.server.ctx.repos.users.count('super_admin'), 1, 'one enabled super_admin remains');
    }

    it('two deleting each other: one is deleted, the other refused', async () => {
      const [a, b] = await lastTwo();
      const statuses = await race([() => t.api('DELETE', `/api/v1/users/${b.id}`, { token: a.token }), () => t.api('DELETE', `/api/v1/users/${a.id}`, { token: b.token })]);
      await check(statuses, 204);
    });

    it('two demoting each other: one is demoted, the other refused', async () => {
      const [a, b] = await lastTwo();
      const demote = (who: Admin, by: Admin) => () => t.api('PATCH', `/api/v1/users/${who.id}`, { token: by.token, body: { role: 'site_admin' } });
      await check(await race([demote(b, a), demote(a, b)]), 200);
    });

    it('two disabling each other: one is disabled, the other refused', async () => {
      const [a, b] = await lastTwo();
      const disable = (who: Admin, by: Admin) => () => t.api('PATCH', `/api/v1/users/${who.id}`, { token: by.token, body: { disabled: true } });
      await check(await race([disable(b, a), disable(a, b)]), 200);
    });

    it('one deleting, the other demoting: only one goes through', async () => {
      const [a, b] = await lastTwo();
      const statuses = await race([
        () => t.api('DELETE', `/api/v1/users/${b.id}`, { token: a.token }),
        () => t.api('PATCH', `/api/v1/users/${a.id}`, { token: b.token, body: { role: 'node_admin' } }),
      ]);
      assert.equal(statuses.filter((s) => s === 200 || s === 204).length, 1, statuses.join(', '));
      assert.equal(await t.server.ctx.repos.users.count('super_admin'), 1);
    });
  });
}
