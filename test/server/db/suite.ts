import { randomBytes } from 'node:crypto';
import { after, before, describe } from 'node:test';
import type { Db } from '../../../src/server/db/db.ts';
import type { NodeRow } from '../../../src/server/db/nodes.ts';
import { createRepos } from '../../../src/server/db/repos.ts';
import type { RepoOptions, Repos } from '../../../src/server/db/repos.ts';
import { SecretBox } from '../../../src/server/db/secrets.ts';
import type { SiteRow } from '../../../src/server/db/sites.ts';
import { accessCases } from './cases-access.ts';
import { authCases } from './cases-auth.ts';
import { dbCases } from './cases-db.ts';
import { fleetCases } from './cases-fleet.ts';
import { jobCases } from './cases-jobs.ts';
import { retentionCases } from './cases-retention.ts';
import { scheduleCases } from './cases-schedules.ts';
import type { Target } from './targets.ts';

// The one suite every database runs: sqlite.test.ts and postgres.test.ts each call dbSuite
// with their own target. Tests share one database per run and make their own rows.

export class TestClock {
  t = Date.UTC(2026, 0, 1);
  now = (): number => this.t;
  advance(ms: number): number {
    this.t += ms;
    return this.t;
  }
}

export interface SuiteContext {
  target: Target;
  db: Db;
  repos: Repos;
  clock: TestClock;
  secrets: SecretBox;
  /** Repositories over another handle: another server process on PostgreSQL. */
  /** Repositories over db, as the suite's own (opts: a server's extra options, such as batching). */
  reposOn(db: Db, opts?: Partial<RepoOptions>): Repos;
}

export const unique = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`;

export async function makeNode(r: Repos, status: NodeRow['status'] = 'active'): Promise<NodeRow> {
  return r.nodes.create({ hostname: unique('web'), status });
}

export async function makeSite(r: Repos, nodeId?: string): Promise<SiteRow> {
  const node = nodeId ?? (await makeNode(r)).id;
  return r.sites.create({ nodeId: node, name: unique('example.com'), wpPath: `/var/www/${unique('site')}` });
}

export function dbSuite(name: string, makeTarget: () => Promise<Target>): void {
  describe(name, () => {
    const ctx = {} as SuiteContext;
    before(async () => {
      ctx.target = await makeTarget();
      ctx.db = await ctx.target.open();
      ctx.clock = new TestClock();
      ctx.secrets = new SecretBox(randomBytes(32));
      ctx.reposOn = (db, opts) => createRepos(db, { ...opts, secrets: ctx.secrets, now: ctx.clock.now });
      ctx.repos = ctx.reposOn(ctx.db);
    });
    after(async () => {
      await ctx.db?.close();
      await ctx.target?.cleanup();
    });
    dbCases(ctx);
    fleetCases(ctx);
    authCases(ctx);
    accessCases(ctx);
    jobCases(ctx);
    retentionCases(ctx);
    scheduleCases(ctx);
  });
}
