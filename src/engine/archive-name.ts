// Names and keys from the spec: <node_uuid>/<site_uuid>/<site_name>_<YYYYMMDD>_<HHMMSS>.tar.zst.

import { isUuid } from '../api/formats.ts';

const MAX_NAME = 100;

/**
 * A site name safe as one path segment anywhere: letters, digits, '.', '_', '-' only, no
 * leading dot (so never '.' or '..'), never empty.
 */
export function safeSiteName(raw: string): string {
  const cleaned = raw
    .normalize('NFKC')
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/\.{2,}/g, '.')
    .replace(/^[.-]+/, '')
    .replace(/[.-]+$/, '')
    .slice(0, MAX_NAME);
  return cleaned || 'site';
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** UTC, so names sort by time whatever the server's zone. */
export function archiveFileName(siteName: string, at: Date): string {
  const d = `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}`;
  const t = `${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}`;
  return `${safeSiteName(siteName)}_${d}_${t}.tar.zst`;
}

/** Keys use lowercase uuids only, so one site's objects never sit under two prefixes. */
const lowerUuid = (s: string): boolean => isUuid(s) && s === s.toLowerCase();

export function archiveKey(nodeUuid: string, siteUuid: string, fileName: string): string {
  if (!lowerUuid(nodeUuid) || !lowerUuid(siteUuid)) throw new Error(`node and site ids must be uuids, got ${nodeUuid} and ${siteUuid}`);
  return `${nodeUuid}/${siteUuid}/${fileName}`;
}
