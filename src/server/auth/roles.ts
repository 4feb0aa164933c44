// The permission model, as data: every action, the resource it is about, and what each kind of principal may
// do with it. authorize() only reads MATRIX, so a test (and the HTTP route matrix test) can walk the same table.

import { badInput } from '../../errors.ts';

export const ROLES = ['super_admin', 'node_admin', 'site_admin'] as const;
export type Role = (typeof ROLES)[number];

export type Principal =
  | { kind: 'user'; userId: string; role: Role; nodeIds: ReadonlySet<string>; siteIds: ReadonlySet<string> }
  /** keyHash: of the key the request came with (a progress write is conditional on it: services/job-progress.ts). */
  | { kind: 'node'; nodeId: string; keyHash?: string };

/** What an action is about, i.e. which ids a route must put in the resource it passes to authorize(). */
export type Scope = 'site' | 'node' | 'global';

/** Every action with its scope. A site-scoped resource carries the site's nodeId too (from the database). */
export const ACTIONS = {
  'site.read': 'site',
  'site.write': 'site', // create (resource: the node only), edit
  'site.backup': 'site', // start a backup
  'site.stop': 'site', // stop a running backup
  'site.delete': 'site',
  'backup.read': 'site',
  'backup.download': 'site',
  'backup.delete': 'site',
  'daemon.reset': 'site', // reset a stuck backup to idle and clean its temp files
  'retention.write': 'site', // set or clear a retention policy, pin or unpin a backup, prune (the fleet's: no site, so super_admin only)
  'node.read': 'node',
  'node.write': 'node', // create (resource: none, so super_admin only), edit, delete
  'node.join_code': 'node',
  'agent.poll': 'node',
  'agent.report': 'node', // about the node itself or one of its sites
  'storage.read': 'global',
  'storage.write': 'global',
  'user.manage': 'global',
  'audit.read': 'global',
  'alerts.manage': 'global', // alert channels (their SMTP servers, webhooks, delivery logs) and fleet alert settings
  'site.schedule': 'site', // set or clear a site's backup schedule
  'schedule.default.read': 'global', // the fleet's default schedule
  'schedule.default.write': 'global',
} as const satisfies Record<string, Scope>;
export type Action = keyof typeof ACTIONS;
export const ACTION_NAMES = Object.keys(ACTIONS) as Action[];

/** any: whatever the resource; own: only resources in the principal's nodes/sites (see owns()); none: never. */
export type Grant = 'any' | 'own' | 'none';
export type Subject = Role | 'node';
export type Decision = 'allow' | 'forbidden';

const AGENT: Action[] = ['agent.poll', 'agent.report'];
// Whoever may start a site's backups may also say when they run by themselves (site.schedule).
const SITE_VIEWER: Action[] = ['site.read', 'site.backup', 'site.stop', 'backup.read', 'backup.download', 'site.schedule'];
const NODE_ADMIN_OWN: Action[] = [
  ...SITE_VIEWER, 'site.write', 'site.delete', 'backup.delete', 'daemon.reset', 'retention.write', 'node.read', 'node.write', 'node.join_code',
];

// Agent actions are for agents alone, super_admin included: they act as "this node", and a user is no node.
const GRANTS: Record<Subject, { any: Action[]; own: Action[] }> = {
  super_admin: { any: ACTION_NAMES.filter((a) => !AGENT.includes(a)), own: [] },
  node_admin: { any: ['storage.read', 'schedule.default.read'], own: NODE_ADMIN_OWN },
  site_admin: { any: [], own: SITE_VIEWER },
  node: { any: [], own: AGENT },
};

function expand(g: { any: Action[]; own: Action[] }): Readonly<Record<Action, Grant>> {
  const row = Object.fromEntries(ACTION_NAMES.map((a) => [a, g.any.includes(a) ? 'any' : g.own.includes(a) ? 'own' : 'none']));
  return Object.freeze(row as Record<Action, Grant>);
}

/** The whole matrix: MATRIX[subject][action]. */
export const MATRIX: Readonly<Record<Subject, Readonly<Record<Action, Grant>>>> = Object.freeze({
  super_admin: expand(GRANTS.super_admin),
  node_admin: expand(GRANTS.node_admin),
  site_admin: expand(GRANTS.site_admin),
  node: expand(GRANTS.node),
});

/**
 * Ids of the thing acted on. They must come from the database (the site's real node), never from the request,
 * or a caller could claim a foreign site sits on their node. A missing id counts as "not yours".
 */
export interface Resource {
  nodeId?: string;
  siteId?: string;
}

export function isAction(s: string): s is Action {
  return Object.hasOwn(ACTIONS, s);
}

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export function subjectOf(p: Principal): Subject {
  return p.kind === 'node' ? 'node' : p.role;
}

/** node_admin and agents own what is on their nodes; site_admin owns their sites. */
function owns(p: Principal, r: Resource): boolean {
  if (p.kind === 'node') return !!r.nodeId && r.nodeId === p.nodeId;
  if (p.role === 'node_admin') return !!r.nodeId && p.nodeIds.has(r.nodeId);
  if (p.role === 'site_admin') return !!r.siteId && p.siteIds.has(r.siteId);
  return false;
}

function grantFor(p: Principal, action: Action): Grant {
  // Routes may hand us strings from elsewhere: an unknown role or action is refused, not crashed on.
  const subject = subjectOf(p);
  return Object.hasOwn(MATRIX, subject) && isAction(action) ? MATRIX[subject][action] : 'none';
}

export function authorize(p: Principal, action: Action, resource: Resource): Decision {
  const grant = grantFor(p, action);
  if (grant === 'any') return 'allow';
  return grant === 'own' && owns(p, resource) ? 'allow' : 'forbidden';
}

/** Which sites a principal may list (site.read), as a filter a query can use: site.node_id IN nodeIds OR id IN siteIds. */
export type SiteFilter = { all: true } | { all: false; nodeIds: string[]; siteIds: string[] };

export function siteFilter(p: Principal): SiteFilter {
  const grant = grantFor(p, 'site.read');
  if (grant === 'any') return { all: true };
  if (grant === 'none' || p.kind === 'node') return { all: false, nodeIds: [], siteIds: [] };
  return p.role === 'node_admin'
    ? { all: false, nodeIds: [...p.nodeIds], siteIds: [] }
    : { all: false, nodeIds: [], siteIds: [...p.siteIds] };
}

/**
 * What a user who may edit a node (node.write) may change on it, beyond that grant. A
 * super_admin may change anything. A node_admin may, on its own nodes:
 * - rename it (hostname: a label, audited);
 * - disable it, and re-enable it only if no super_admin disabled it;
 * - set or lower its quota, never raise or remove it (quotas are the super_admin's budget).
 * Returns why the change is refused, or undefined when it is allowed.
 */
export function nodeChangeRefusal(
  p: Principal,
  node: { status: string; quotaBytes: number | null; disabledByRole: string | null },
  patch: { status?: string; quota_bytes?: number | null },
): string | undefined {
  if (p.kind !== 'user' || p.role === 'super_admin') return undefined;
  if (patch.status !== undefined && patch.status !== 'disabled' && node.status === 'disabled' && node.disabledByRole === 'super_admin') {
    return 'A super_admin disabled this node; only a super_admin may enable it again';
  }
  if (patch.quota_bytes !== undefined) {
    if (patch.quota_bytes === null) return "Only a super_admin may remove a node's quota";
    if (node.quotaBytes !== null && patch.quota_bytes > node.quotaBytes) return `Only a super_admin may raise a node's quota (now ${node.quotaBytes} bytes); you may lower it`;
  }
  return undefined;
}

/** Whether a principal sees storage providers' settings (paths, endpoints, buckets, key ids) or only their names and types. */
export function seesStorageSettings(p: Principal): boolean {
  return authorize(p, 'storage.write', {}) === 'allow';
}

/** A comma-separated list of roles; empty or unset is none. */
export function parseRoles(text: string | undefined, source: string): Role[] {
  const roles = (text ?? '').split(',').map((r) => r.trim()).filter((r) => r !== '');
  const bad = roles.filter((r) => !isRole(r));
  if (bad.length > 0) throw badInput(`${source}: ${bad.join(', ')} is not a role`, `Use roles from: ${ROLES.join(', ')}`);
  return [...new Set(roles)] as Role[];
}
