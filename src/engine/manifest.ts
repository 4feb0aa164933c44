import { readFileSync } from 'node:fs';
import type { TarStats } from './tar-stream.ts';

// manifest.json, the archive's last entry: what was backed up, from where, with which
// tool, and the checks a restore makes (database.sql's sha256, counts).

export const MANIFEST_FORMAT = 'wpbackup/1';

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  tool: { name: 'wpbackup'; version: string };
  created_at: string;
  site: {
    name: string;
    uuid: string;
    node_uuid: string;
    path: string;
    siteurl: string | null;
    home: string | null;
    wp_version: string | null;
    table_prefix: string;
    db_name: string;
    charset: string;
    collate: string;
  };
  database: { file: 'database.sql'; bytes: number; sha256: string; dump_tool: string };
  wp_content: {
    files: number;
    dirs: number;
    symlinks: number;
    bytes: number;
    /** Already-compressed media stored as is, not run through zstd (counted in files and bytes too). */
    stored_as_is: { files: number; bytes: number };
    excluded_patterns: string[];
    excluded_entries: number;
    unreadable: { path: string; reason: string }[];
    changed: { path: string; reason: string }[];
    skipped: { path: string; reason: string }[];
  };
  config_files: string[];
}

let cachedVersion: string | undefined;

export function toolVersion(): string {
  if (!cachedVersion) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    cachedVersion = pkg.version;
  }
  return cachedVersion;
}

export function wpContentSummary(stats: TarStats, patterns: string[]): Manifest['wp_content'] {
  const toPath = (p: { rel: string; reason: string }): { path: string; reason: string } => ({ path: p.rel, reason: p.reason });
  return {
    files: stats.files,
    dirs: stats.dirs,
    symlinks: stats.symlinks,
    bytes: stats.bytes,
    stored_as_is: { files: stats.storedFiles, bytes: stats.storedBytes },
    excluded_patterns: patterns,
    excluded_entries: stats.excluded,
    unreadable: stats.unreadable.map(toPath),
    changed: stats.changed.map(toPath),
    skipped: stats.skipped.map(toPath),
  };
}
