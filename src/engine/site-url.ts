import { WpbError } from '../errors.ts';
import { queryAs, sqlIdent, writeDefaultsFile, type ClientRun } from './mysql.ts';
import { clientRunFor, readerFor } from './privileges.ts';
import { createRunDir, type RunDir } from './run-dir.ts';
import { loadSite, type SiteInfo } from './site.ts';

// A site's siteurl and home, from its options table: what names a backup (the host of
// siteurl) and what the manifest records. Read by the backup, and by the agent's scan so a
// site adopted from it is named the same way.

/** siteurl and home; nulls when the options table or its rows are missing. */
export async function siteUrls(client: ClientRun, site: SiteInfo, signal?: AbortSignal): Promise<{ siteurl: string | null; home: string | null }> {
  const table = sqlIdent(`${site.config.tablePrefix}options`);
  try {
    const rows = await queryAs(client, site.db, `SELECT option_name, option_value FROM ${table} WHERE option_name IN ('siteurl', 'home');`, signal);
    const get = (k: string): string | null => rows.find((r) => r[0] === k)?.[1] ?? null;
    return { siteurl: get('siteurl'), home: get('home') };
  } catch (err) {
    if (err instanceof WpbError && err.kind === 'failed') return { siteurl: null, home: null };
    throw err;
  }
}

/** How long one site's lookup may take: a database that does not answer must not hold up a scan. */
const LOOKUP_MS = 15_000;

/**
 * The site's siteurl, read as a backup reads it: the site checked as loadSite checks it, the
 * credentials in a 0600 file in a fresh run dir under tempBase, the client run as the site's
 * owner. Best effort: null when anything is in the way (unreadable config, database down,
 * wrong password, no options table).
 */
export async function lookUpSiteUrl(sitePath: string, tempBase: string, signal?: AbortSignal): Promise<string | null> {
  let runDir: RunDir | undefined;
  try {
    const site = await loadSite(sitePath);
    runDir = await createRunDir(tempBase);
    const client = await clientRunFor(await writeDefaultsFile(runDir.path, site.db), readerFor(site.owner));
    try {
      const bounded = AbortSignal.any([AbortSignal.timeout(LOOKUP_MS), ...(signal ? [signal] : [])]);
      return (await siteUrls(client.run, site, bounded)).siteurl;
    } finally {
      await client.close();
    }
  } catch {
    return null;
  } finally {
    await runDir?.remove();
  }
}
