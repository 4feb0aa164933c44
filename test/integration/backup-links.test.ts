import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, lchownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resultOf, runCli } from '../helpers/cli.ts';
import { TEST_HOME } from '../helpers/services.ts';
import { createFixtureSite, type FixtureSite } from '../helpers/wp-fixture.ts';
import { ownerIds } from '../helpers/owner.ts';

// A site's owner controls every file under the site, links included, and the backup runs as
// root: nothing outside the site may reach the archive through a link (issue 7, section 1).

/** A root-only (0600) file outside every site, holding a marker that must never reach an archive. */
function secretFile(dir: string, name: string): { path: string; marker: string } {
  const marker = `SECRET-${randomBytes(12).toString('hex')}`;
  const path = join(dir, name);
  writeFileSync(path, `${marker}\n`, { mode: 0o600 });
  return { path, marker };
}

/** The decompressed archive, raw, and its listing with link targets. */
function archive(file: string): { raw: Buffer; listing: string } {
  const raw = execFileSync('zstd', ['-q', '-d', '-c', file], { maxBuffer: 1 << 30 });
  const listing = execFileSync('tar', ['-tvf', '-'], { input: raw, encoding: 'utf8', maxBuffer: 1 << 30 });
  return { raw, listing };
}

describe('backups never read through links the site controls', () => {
  let site: FixtureSite;
  let work: string;
  let outside: string;
  let secret: { path: string; marker: string };
  const shadowLine = readFileSync('/etc/shadow', 'utf8').split('\n')[0] as string;

  before(async () => {
    site = await createFixtureSite({ name: 'links' });
    work = mkdtempSync(join(TEST_HOME, 'links-'));
    outside = join(work, 'outside');
    mkdirSync(outside, { mode: 0o700 });
    secret = secretFile(outside, 'secret.key');
  });
  after(async () => {
    await site.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  async function backup(name: string): Promise<{ run: Awaited<ReturnType<typeof runCli>>; file?: string; manifest?: Record<string, unknown> }> {
    const dest = join(work, name);
    const run = await runCli(['backup', '--site', site.dir, '--to', dest, '--json', '--data-dir', join(work, 'data')]);
    if (run.code !== 0 && run.code !== 3) return { run };
    const r = resultOf(run);
    return { run, file: join(dest, r.key as string), manifest: r.manifest as Record<string, unknown> };
  }

  /** Makes the site's `rel` a link to `to` for the length of `fn`, then puts back what was there. */
  async function withLink(rel: string, to: string, fn: () => Promise<void>): Promise<void> {
    const path = join(site.dir, rel);
    const aside = `${path}.aside`;
    const had = existsSync(path);
    if (had) renameSync(path, aside);
    symlinkSync(to, path);
    try {
      await fn();
    } finally {
      unlinkSync(path);
      if (had) renameSync(aside, path);
    }
  }

  const problems = (m: Record<string, unknown> | undefined): { path: string; reason: string }[] => {
    const w = m?.wp_content as Record<'unreadable' | 'changed' | 'skipped', { path: string; reason: string }[]>;
    return [...w.unreadable, ...w.changed, ...w.skipped];
  };

  it('stores a .htaccess that links to a root-only file outside the site as a link, and says so', async () => {
    await withLink('.htaccess', secret.path, async () => {
      const b = await backup('htaccess');
      assert.equal(b.run.code, 3, b.run.stderr);
      const p = problems(b.manifest).find((x) => x.path === '.htaccess');
      assert.match(p?.reason ?? '', /link to .*secret\.key, outside the site: stored as a link, its target not read/);
      const { raw, listing } = archive(b.file as string);
      assert.ok(!raw.includes(secret.marker), 'the secret is not in the archive');
      assert.match(listing, new RegExp(`^l.* \\.htaccess -> ${secret.path}$`, 'm'));
      const text = await runCli(['backup', '--site', site.dir, '--to', join(work, 'htaccess-text'), '--data-dir', join(work, 'data')]);
      assert.equal(text.code, 3);
      assert.match(text.stdout, /\.htaccess: \.htaccess is a link to .*secret\.key, outside the site: stored as a link, its target not read/);
    });
  });

  it("follows a .htaccess link into /etc/wordpress (Debian's layout) and stores the file", async () => {
    await withLink('.htaccess', '/etc/wordpress/htaccess', async () => {
      const b = await backup('debian');
      assert.equal(b.run.code, 0, b.run.stdout + b.run.stderr);
      const { raw, listing } = archive(b.file as string);
      assert.match(listing, /^-.* \.htaccess$/m);
      assert.ok(raw.includes(readFileSync('/etc/wordpress/htaccess')), "the allowed target's content is stored");
    });
  });

  for (const target of ['/etc/shadow', 'a copy of the real wp-config.php outside the site']) {
    it(`refuses a wp-config.php that links to ${target}, without reading it`, async () => {
      const config = join(site.dir, 'wp-config.php');
      const real = join(site.dir, 'wp-config.real.php');
      renameSync(config, real);
      let marker = shadowLine;
      let to = '/etc/shadow';
      if (!target.startsWith('/')) {
        // A config that would work: were it read, the backup would succeed.
        marker = `MARKER-${randomBytes(8).toString('hex')}`;
        to = join(outside, 'wp-config.php');
        writeFileSync(to, `${readFileSync(real, 'utf8')}\n// ${marker}\n`, { mode: 0o600 });
      }
      symlinkSync(to, config);
      try {
        const b = await backup(`config-${to.length}`);
        assert.equal(b.run.code, 2, b.run.stdout + b.run.stderr);
        assert.match(b.run.stderr + b.run.stdout, new RegExp(`wp-config\\.php is a link to ${to}, outside the site: not read`));
        assert.ok(!(b.run.stdout + b.run.stderr).includes(marker), 'nothing of the target is shown');
        assert.ok(!existsSync(join(work, `config-${to.length}`)) || readdirSync(join(work, `config-${to.length}`)).length === 0, 'nothing was stored');
      } finally {
        unlinkSync(config);
        renameSync(real, config);
      }
    });
  }

  it('follows a wp-config.php link that stays inside the site', async () => {
    const config = join(site.dir, 'wp-config.php');
    mkdirSync(join(site.dir, 'private'));
    renameSync(config, join(site.dir, 'private', 'wp-config.php'));
    symlinkSync('private/wp-config.php', config);
    try {
      const b = await backup('inside');
      assert.equal(b.run.code, 0, b.run.stdout + b.run.stderr);
      const { raw, listing } = archive(b.file as string);
      assert.match(listing, /^-.* wp-config\.php$/m);
      assert.ok(raw.includes(readFileSync(join(site.dir, 'private', 'wp-config.php'))));
    } finally {
      unlinkSync(config);
      renameSync(join(site.dir, 'private', 'wp-config.php'), config);
      rmSync(join(site.dir, 'private'), { recursive: true });
    }
  });

  it('stores links inside wp-content to / and to a secret as links, never their targets', async () => {
    const toRoot = join(site.dir, 'wp-content', 'uploads', 'root-link');
    const toSecret = join(site.dir, 'wp-content', 'uploads', 'key-link');
    symlinkSync('/', toRoot);
    symlinkSync(secret.path, toSecret);
    try {
      const b = await backup('wp-content-links');
      assert.equal(b.run.code, 0, b.run.stdout + b.run.stderr);
      const { raw, listing } = archive(b.file as string);
      assert.match(listing, /^l.* wp-content\/uploads\/root-link -> \/$/m);
      assert.match(listing, /^l.* wp-content\/uploads\/key-link -> /m);
      assert.ok(!raw.includes(secret.marker));
      assert.ok(!raw.includes(shadowLine));
      assert.ok(!listing.includes('wp-content/uploads/root-link/'), 'nothing below the link');
    } finally {
      unlinkSync(toRoot);
      unlinkSync(toSecret);
    }
  });

  it("refuses a site path through a user's link to a directory someone else owns", async () => {
    const { uid, gid } = ownerIds();
    const home = join(work, 'home');
    mkdirSync(home);
    chownSync(home, uid, gid);
    const link = join(home, 'public_html');
    symlinkSync(site.dir, link);
    lchownSync(link, uid, gid);
    const run = await runCli(['backup', '--site', link, '--to', join(work, 'via-link'), '--data-dir', join(work, 'data')]);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, new RegExp(`${link} is a link owned by uid ${uid} to ${site.dir}, which belongs to uid 0`));
    assert.ok(!existsSync(join(work, 'via-link')) || readdirSync(join(work, 'via-link'), { recursive: true, withFileTypes: true }).every((d) => d.isDirectory()), 'nothing was stored');
  });

  it("reads the site as its owner: a root-only file in wp-content is reported unreadable and left out", async () => {
    const { uid, gid } = ownerIds();
    const rootOnly = secretFile(join(site.dir, 'wp-content', 'uploads'), 'root-only.bin');
    execFileSync('chown', ['-R', `${uid}:${gid}`, site.dir]);
    chownSync(rootOnly.path, 0, 0);
    // The reader must be able to reach the site, as on a real host.
    for (let d = site.dir; d !== '/'; d = join(d, '..')) if ((statSync(d).mode & 0o005) !== 0o005) chmodSync(d, statSync(d).mode | 0o005);
    try {
      const b = await backup('owner');
      assert.equal(b.run.code, 3, b.run.stdout + b.run.stderr);
      const unreadable = (b.manifest?.wp_content as { unreadable: { path: string; reason: string }[] }).unreadable;
      assert.deepEqual(unreadable.map((u) => u.path).sort(), ['wp-content/uploads/root-only.bin', site.files.unreadable].sort());
      assert.match(unreadable[0]?.reason ?? '', /EACCES/);
      const { raw, listing } = archive(b.file as string);
      assert.ok(!raw.includes(rootOnly.marker), 'the root-only file is not in the archive');
      assert.ok(listing.includes(site.files.unicode), 'the rest of wp-content is');
      assert.match(listing, /^-.* database\.sql$/m);
      assert.match(listing, /^-.* wp-config\.php$/m);
      assert.equal(listing.trim().split('\n').at(-1)?.endsWith(' manifest.json'), true, 'the manifest is last');
    } finally {
      unlinkSync(rootOnly.path);
      execFileSync('chown', ['-R', '0:0', site.dir]);
    }
  });
});
