import type { PolicyFields, PolicyRow, RetentionRepo } from '../db/retention.ts';
import type { Policy } from './policy.ts';

// Which policy applies to a site: its own when it has one (the whole policy, not field by
// field), else the fleet's, else none (keep everything). Buckets use the fleet's time zone.

export const DEFAULT_TIME_ZONE = 'UTC';

export type PolicySource = 'site' | 'fleet' | 'none';

export interface EffectivePolicy {
  source: PolicySource;
  policy: Policy;
  timeZone: string;
}

export function toPolicy(row: PolicyFields | undefined): Policy {
  if (!row) return {};
  return { last: row.keepLast, hourly: row.keepHourly, daily: row.keepDaily, weekly: row.keepWeekly, monthly: row.keepMonthly, yearly: row.keepYearly };
}

export async function effectivePolicy(repo: Pick<RetentionRepo, 'getPolicy'>, siteId: string): Promise<EffectivePolicy & { own?: PolicyRow; fleet?: PolicyRow }> {
  const [own, fleet] = await Promise.all([repo.getPolicy(siteId), repo.getPolicy(null)]);
  const timeZone = fleet?.timeZone ?? DEFAULT_TIME_ZONE;
  if (own) return { source: 'site', policy: toPolicy(own), timeZone, own, fleet };
  if (fleet) return { source: 'fleet', policy: toPolicy(fleet), timeZone, fleet };
  return { source: 'none', policy: {}, timeZone };
}

/** "keep_last 3, keep_daily 7" (or "nothing set"), for reasons and audit entries. */
export function describePolicy(p: Policy): string {
  const parts = Object.entries(p).filter(([, n]) => n).map(([rule, n]) => `keep_${rule} ${n === -1 ? 'all' : String(n)}`);
  return parts.length > 0 ? parts.join(', ') : 'nothing set';
}
