import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ACTIONS,
  ACTION_NAMES,
  MATRIX,
  authorize,
  siteFilter,
  type Action,
  type Principal,
  type Resource,
} from '../../../src/server/auth/roles.ts';

// Site s1 and s3 are on node n1, s2 on node n2. The node_admin has n1, the site_admin s1, the agent is n1.
const PRINCIPALS: Record<string, Principal> = {
  super_admin: { kind: 'user', userId: 'u0', role: 'super_admin', nodeIds: new Set(), siteIds: new Set() },
  node_admin: { kind: 'user', userId: 'u1', role: 'node_admin', nodeIds: new Set(['n1']), siteIds: new Set() },
  site_admin: { kind: 'user', userId: 'u2', role: 'site_admin', nodeIds: new Set(), siteIds: new Set(['s1']) },
  node: { kind: 'node', nodeId: 'n1' },
};

// One column per resource, in this order.
const RESOURCES: [string, Resource][] = [
  ['none', {}],
  ['own site', { siteId: 's1', nodeId: 'n1' }],
  ['other site on own node', { siteId: 's3', nodeId: 'n1' }],
  ['foreign site', { siteId: 's2', nodeId: 'n2' }],
  ['own node', { nodeId: 'n1' }],
  ['foreign node', { nodeId: 'n2' }],
  ['own site, node unknown', { siteId: 's1' }],
];

// The expected decisions, written out by hand from the rules (Y = allow, - = forbidden). Columns as RESOURCES.
//                              super_admin  node_admin  site_admin  node
const EXPECTED: Record<Action, [string, string, string, string]> = {
  'site.read':                 ['YYYYYYY', '-YY-Y--', '-Y----Y', '-------'],
  'site.write':                ['YYYYYYY', '-YY-Y--', '-------', '-------'],
  'site.backup':               ['YYYYYYY', '-YY-Y--', '-Y----Y', '-------'],
  'site.stop':                 ['YYYYYYY', '-YY-Y--', '-Y----Y', '-------'],
  'site.delete':               ['YYYYYYY', '-YY-Y--', '-------', '-------'],
  'backup.read':               ['YYYYYYY', '-YY-Y--', '-Y----Y', '-------'],
  'backup.download':           ['YYYYYYY', '-YY-Y--', '-Y----Y', '-------'],
  'backup.delete':             ['YYYYYYY', '-YY-Y--', '-------', '-------'],
  'daemon.reset':              ['YYYYYYY', '-YY-Y--', '-------', '-------'],
  'retention.write':           ['YYYYYYY', '-YY-Y--', '-------', '-------'],
  'node.read':                 ['YYYYYYY', '-YY-Y--', '-------', '-------'],
  'node.write':                ['YYYYYYY', '-YY-Y--', '-------', '-------'],
  'node.join_code':            ['YYYYYYY', '-YY-Y--', '-------', '-------'],
  'agent.poll':                ['-------', '-------', '-------', '-YY-Y--'],
  'agent.report':              ['-------', '-------', '-------', '-YY-Y--'],
  'storage.read':              ['YYYYYYY', 'YYYYYYY', '-------', '-------'],
  'storage.write':             ['YYYYYYY', '-------', '-------', '-------'],
  'user.manage':               ['YYYYYYY', '-------', '-------', '-------'],
  'audit.read':                ['YYYYYYY', '-------', '-------', '-------'],
  'alerts.manage':             ['YYYYYYY', '-------', '-------', '-------'],
  'site.schedule':             ['YYYYYYY', '-YY-Y--', '-Y----Y', '-------'],
  'schedule.default.read':     ['YYYYYYY', 'YYYYYYY', '-------', '-------'],
  'schedule.default.write':    ['YYYYYYY', '-------', '-------', '-------'],
};
const COLUMNS = ['super_admin', 'node_admin', 'site_admin', 'node'] as const;

describe('authorize', () => {
  it('the expectation table covers exactly the exported actions', () => {
    assert.deepEqual(Object.keys(EXPECTED).sort(), [...ACTION_NAMES].sort());
    assert.deepEqual(Object.keys(MATRIX).sort(), [...COLUMNS].sort());
  });

  it('decides every principal × action × resource as the table says', () => {
    const wrong: string[] = [];
    let checked = 0;
    for (const action of ACTION_NAMES) {
      COLUMNS.forEach((who, col) => {
        RESOURCES.forEach(([what, resource], i) => {
          const want = EXPECTED[action][col]?.[i] === 'Y' ? 'allow' : 'forbidden';
          const got = authorize(PRINCIPALS[who]!, action, resource);
          checked++;
          if (got !== want) wrong.push(`${who} ${action} on ${what}: got ${got}, want ${want}`);
        });
      });
    }
    assert.deepEqual(wrong, []);
    assert.equal(checked, ACTION_NAMES.length * 4 * 7);
  });

  it('gives nothing to a node_admin without nodes or a site_admin without sites', () => {
    const lonely: Principal[] = [
      { kind: 'user', userId: 'u3', role: 'node_admin', nodeIds: new Set(), siteIds: new Set(['s1']) },
      { kind: 'user', userId: 'u4', role: 'site_admin', nodeIds: new Set(['n1']), siteIds: new Set() },
    ];
    for (const p of lonely) {
      for (const action of ACTION_NAMES) {
        if ((action === 'storage.read' || action === 'schedule.default.read') && p.kind === 'user' && p.role === 'node_admin') continue;
        for (const [, r] of RESOURCES) assert.equal(authorize(p, action, r), 'forbidden', `${action} ${JSON.stringify(r)}`);
      }
    }
  });

  it('refuses unknown actions and roles, and empty ids, instead of throwing', () => {
    const own = { siteId: 's1', nodeId: 'n1' };
    assert.equal(authorize(PRINCIPALS.super_admin!, 'site.nuke' as Action, own), 'forbidden');
    assert.equal(authorize(PRINCIPALS.super_admin!, '__proto__' as Action, own), 'forbidden');
    const odd = { kind: 'user', userId: 'u5', role: 'root', nodeIds: new Set(['n1']), siteIds: new Set(['s1']) };
    assert.equal(authorize(odd as unknown as Principal, 'site.read', own), 'forbidden');
    assert.equal(authorize({ kind: 'node', nodeId: '' }, 'agent.poll', { nodeId: '' }), 'forbidden');
  });

  it('exports the matrix as frozen data with a scope per action', () => {
    assert.ok(Object.isFrozen(MATRIX) && Object.isFrozen(MATRIX.node_admin));
    assert.equal(MATRIX.site_admin['site.backup'], 'own');
    assert.equal(MATRIX.node_admin['storage.read'], 'any');
    assert.equal(MATRIX.node_admin['storage.write'], 'none');
    for (const scope of Object.values(ACTIONS)) assert.ok(['site', 'node', 'global'].includes(scope));
  });
});

describe('siteFilter', () => {
  it('says which sites a principal may list', () => {
    assert.deepEqual(siteFilter(PRINCIPALS.super_admin!), { all: true });
    assert.deepEqual(siteFilter(PRINCIPALS.node_admin!), { all: false, nodeIds: ['n1'], siteIds: [] });
    assert.deepEqual(siteFilter(PRINCIPALS.site_admin!), { all: false, nodeIds: [], siteIds: ['s1'] });
    assert.deepEqual(siteFilter(PRINCIPALS.node!), { all: false, nodeIds: [], siteIds: [] });
  });
});
