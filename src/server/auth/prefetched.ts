import type { JobRow } from '../db/job-rows.ts';
import type { SiteRow } from '../db/sites.ts';
import type { Principal } from './roles.ts';

// Rows read together with the caller's credentials (route.ts: a route's prefetch option), so
// the hottest routes make one round trip to the database where they made two. Kept by
// principal (a new object per request) and only for the id they were read for; the handler's
// usual loader (nodesJob, siteFor) takes the row from here instead of reading it again.

export class Prefetched<T> {
  readonly #rows = new WeakMap<Principal, { id: string; row: T | undefined }>();

  set(p: Principal, id: string, row: T | undefined): void {
    this.#rows.set(p, { id, row });
  }

  /** { row } when it was read for this id (row undefined: there is none); undefined when not read. */
  get(p: Principal | undefined, id: string): { row: T | undefined } | undefined {
    const found = p && this.#rows.get(p);
    return found?.id === id ? { row: found.row } : undefined;
  }
}

export const prefetchedJobs = new Prefetched<JobRow>();
export const prefetchedSites = new Prefetched<SiteRow>();
