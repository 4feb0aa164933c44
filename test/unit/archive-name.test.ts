import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { archiveFileName, archiveKey, safeSiteName } from '../../src/engine/archive-name.ts';

describe('archive names', () => {
  it("follow the spec's {site_name}_{YYYYMMDD}_{HHMMSS}.tar.zst in UTC", () => {
    assert.equal(archiveFileName('zimpricecheck.com', new Date('2025-12-28T07:51:28Z')), 'zimpricecheck.com_20251228_075128.tar.zst');
  });

  it('make hostile site names safe as one path segment', () => {
    for (const [raw, safe] of [
      ['../../etc/passwd', 'etc-passwd'],
      ['..', 'site'],
      ['a/b\\c', 'a-b-c'],
      ['evil\u0000name\n', 'evil-name'],
      ['https://example.com/blog', 'example.com-blog'],
      ['.hidden', 'hidden'],
      ['', 'site'],
      ['x'.repeat(300), 'x'.repeat(100)],
    ] as const) {
      assert.equal(safeSiteName(raw), safe, JSON.stringify(raw));
    }
  });

  it('build <node_uuid>/<site_uuid>/<file> keys and refuse non-uuids', () => {
    const n = '3d298266-633b-48b6-9662-07a1d9ee1c44';
    const s = 'a840cad8-9322-4ed1-a2ea-f65b1b14afa7';
    assert.equal(archiveKey(n, s, 'x.tar.zst'), `${n}/${s}/x.tar.zst`);
    assert.throws(() => archiveKey('../x', s, 'x.tar.zst'));
  });
});
