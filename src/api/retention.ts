import { Type, type Static } from '@sinclair/typebox';

// Retention's request and response bodies (routes/retention.ts), shared with the CLI.

const count = Type.Union([Type.Integer({ minimum: -1, maximum: 1_000_000 }), Type.Null()], {
  description: 'How many to keep: a positive number, -1 for no limit, 0 or null for off',
});

export const RETENTION_FIELDS = ['keep_last', 'keep_hourly', 'keep_daily', 'keep_weekly', 'keep_monthly', 'keep_yearly'] as const;
export type RetentionField = (typeof RETENTION_FIELDS)[number];

export const PolicyInput = Type.Object({
  keep_last: Type.Optional(count),
  keep_hourly: Type.Optional(count),
  keep_daily: Type.Optional(count),
  keep_weekly: Type.Optional(count),
  keep_monthly: Type.Optional(count),
  keep_yearly: Type.Optional(count),
}, { additionalProperties: false });
export type PolicyInput = Static<typeof PolicyInput>;

export const FleetPolicyInput = Type.Object({
  ...PolicyInput.properties,
  time_zone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_+\\-/]+$', description: 'IANA time zone the buckets use (default UTC)' })),
}, { additionalProperties: false });
export type FleetPolicyInput = Static<typeof FleetPolicyInput>;

export const PolicyBody = Type.Object({
  keep_last: Type.Union([Type.Integer(), Type.Null()]),
  keep_hourly: Type.Union([Type.Integer(), Type.Null()]),
  keep_daily: Type.Union([Type.Integer(), Type.Null()]),
  keep_weekly: Type.Union([Type.Integer(), Type.Null()]),
  keep_monthly: Type.Union([Type.Integer(), Type.Null()]),
  keep_yearly: Type.Union([Type.Integer(), Type.Null()]),
});
export type PolicyBody = Static<typeof PolicyBody>;

export const FleetPolicyBody = Type.Object({ ...PolicyBody.properties, time_zone: Type.String(), updated_at: Type.Union([Type.String(), Type.Null()]) });
export type FleetPolicyBody = Static<typeof FleetPolicyBody>;

export const PendingDeletion = Type.Object({
  backup_id: Type.String(),
  site_id: Type.String(),
  key: Type.String(),
  attempts: Type.Integer(),
  error: Type.Union([Type.String(), Type.Null()]),
  retry_at: Type.Union([Type.String(), Type.Null()]),
});
export type PendingDeletion = Static<typeof PendingDeletion>;

export const SiteRetentionBody = Type.Object({
  site_id: Type.String(),
  source: Type.Union([Type.Literal('site'), Type.Literal('fleet'), Type.Literal('none')], { description: 'Whose policy applies: the site\'s own, the fleet default, or none (keep everything)' }),
  own: Type.Union([PolicyBody, Type.Null()]),
  fleet: FleetPolicyBody,
  effective: PolicyBody,
  time_zone: Type.String(),
  pending_deletions: Type.Array(PendingDeletion, { description: 'Backups whose deletion failed and is retried (not downloadable)' }),
});
export type SiteRetentionBody = Static<typeof SiteRetentionBody>;

// Optional bodies: nullable, as the other routes' (a POST without a body is an empty request).
export const PruneInput = Type.Object({ dry_run: Type.Optional(Type.Boolean({ description: 'List what would go and why, delete nothing' })) }, { additionalProperties: false, nullable: true });
export type PruneInput = Static<typeof PruneInput> | null | undefined;

export const PruneSiteBody = Type.Object({
  site_id: Type.String(),
  dry_run: Type.Boolean(),
  source: Type.String(),
  policy: Type.String({ description: 'The policy applied, e.g. "keep_last 3, keep_daily 7"' }),
  time_zone: Type.String(),
  skipped: Type.Union([Type.String(), Type.Null()], { description: 'Why nothing was done (a backup of the site is queued or running)' }),
  keep: Type.Array(Type.Object({ backup_id: Type.String(), created_at: Type.String(), kept_by: Type.Array(Type.String()) })),
  remove: Type.Array(Type.Object({
    backup_id: Type.String(), created_at: Type.String(), key: Type.String(), reason: Type.String(),
    deleted: Type.Union([Type.Boolean(), Type.Null()], { description: 'true: deleted; false: the deletion failed and is retried (see error); null: a dry run, or left alone after all (see error)' }),
    error: Type.Union([Type.String(), Type.Null()]),
  })),
});
export type PruneSiteBody = Static<typeof PruneSiteBody>;

export const PruneFleetBody = Type.Object({ dry_run: Type.Boolean(), sites: Type.Array(PruneSiteBody) });
export type PruneFleetBody = Static<typeof PruneFleetBody>;

export const ReconcileInput = Type.Object({
  delete: Type.Optional(Type.Boolean({ description: 'Remove the orphans found (default: only list them)' })),
  grace_minutes: Type.Optional(Type.Integer({ minimum: 0, maximum: 525_600, description: 'Objects younger than this are never orphans (default 360)' })),
}, { additionalProperties: false, nullable: true });
export type ReconcileInput = Static<typeof ReconcileInput> | null | undefined;

export const ReconcileBody = Type.Object({
  provider_id: Type.String(),
  location: Type.String(),
  objects_scanned: Type.Integer(),
  orphan_objects: Type.Array(Type.Object({ key: Type.String(), size: Type.Integer(), modified: Type.String() }), { description: 'Objects at a backup\'s place that no row knows' }),
  orphan_rows: Type.Array(Type.Object({ backup_id: Type.String(), site_id: Type.String(), key: Type.String(), status: Type.String() }), { description: 'Rows whose object is missing' }),
  skipped: Type.Object({ in_progress: Type.Integer(), recent: Type.Integer() }),
  removed: Type.Union([Type.Object({ objects: Type.Integer(), rows: Type.Integer(), errors: Type.Array(Type.String()) }), Type.Null()]),
});
export type ReconcileBody = Static<typeof ReconcileBody>;
