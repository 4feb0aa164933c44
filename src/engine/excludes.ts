// Which wp-content paths a backup leaves out. Patterns follow .gitignore's rules, relative to
// wp-content: a leading '/' (or any inner '/') anchors to wp-content's top level, a bare name
// matches at any depth, '*' and '?' stay inside a path segment, '**' spans segments, and a
// trailing '/' matches directories only.

/** Caches and other backup plugins' archives: anchored, so plugins/x/cache/ is kept. */
export const DEFAULT_EXCLUDES = [
  '/cache/',
  '/wflogs/',
  '/et-cache/',
  '/updraft/',
  '/ai1wm-backups/',
  '/backups-dup-lite/',
  '/backups-dup-pro/',
  '/backup-guard/',
  '/wpvividbackups/',
  '/uploads/backupbuddy_backups/',
  '/uploads/backwpup-*/',
];

interface Rule {
  re: RegExp;
  dirOnly: boolean;
  pattern: string;
}

function globToRegex(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      out += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return out;
}

function compile(pattern: string): Rule {
  let p = pattern.trim();
  const dirOnly = p.endsWith('/');
  if (dirOnly) p = p.slice(0, -1);
  const anchored = p.includes('/');
  if (p.startsWith('/')) p = p.slice(1);
  const body = globToRegex(p);
  return { re: new RegExp(anchored ? `^${body}$` : `(^|/)${body}$`), dirOnly, pattern };
}

export class ExcludeMatcher {
  private readonly rules: Rule[];

  constructor(patterns: string[]) {
    this.rules = patterns.filter((p) => p.trim() && !p.trim().startsWith('#')).map(compile);
  }

  /** The pattern that excludes relPath (relative to wp-content), if any. */
  match(relPath: string, isDir: boolean): string | undefined {
    for (const r of this.rules) {
      if (r.dirOnly && !isDir) continue;
      if (r.re.test(relPath)) return r.pattern;
    }
    return undefined;
  }
}
