import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_EXCLUDES, ExcludeMatcher } from '../../src/engine/excludes.ts';

describe('exclude patterns', () => {
  const defaults = new ExcludeMatcher(DEFAULT_EXCLUDES);

  it('drops cache and wflogs only at the top of wp-content', () => {
    assert.ok(defaults.match('cache', true));
    assert.ok(defaults.match('wflogs', true));
    assert.equal(defaults.match('plugins/some-plugin/cache', true), undefined);
    assert.equal(defaults.match('uploads/cache', true), undefined);
    assert.equal(defaults.match('cache', false), undefined, 'a file named cache is not the cache dir');
  });

  it("drops other backup plugins' archives", () => {
    for (const p of ['updraft', 'ai1wm-backups', 'uploads/backupbuddy_backups', 'uploads/backwpup-abc123-backups']) assert.ok(defaults.match(p, true), p);
    assert.equal(defaults.match('uploads/2024', true), undefined);
  });

  it('follows gitignore rules for user patterns', () => {
    const m = new ExcludeMatcher(['*.log', '/uploads/big/', 'uploads/**/tmp', 'node_modules/', '# a comment', '']);
    assert.ok(m.match('debug.log', false));
    assert.ok(m.match('plugins/x/error.log', false));
    assert.ok(m.match('uploads/big', true));
    assert.equal(m.match('themes/uploads/big', true), undefined);
    assert.ok(m.match('uploads/2024/01/tmp', true));
    assert.ok(m.match('plugins/x/node_modules', true));
    assert.equal(m.match('plugins/x/node_modules', false), undefined);
  });
});
