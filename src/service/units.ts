// The systemd units `wpbackup install-service` writes, as text. Pure functions: paths and
// names in, unit text out, so tests check them with systemd-analyze and read them as is.
//
// Both units get the sandboxing that costs Node nothing. Left out on purpose:
// MemoryDenyWriteExecute (V8's JIT needs writable code pages) and SystemCallFilter (an
// allow-list we cannot run here under systemd, and a wrong one kills backups in production).

export type ServiceKind = 'server' | 'agent';

export interface UnitSpec {
  kind: ServiceKind;
  /** The wpbackup launcher the unit runs (bin/wpbackup of this install). */
  exec: string;
  dataDir: string;
  envFile: string;
  /** The server's system user; the agent runs as root (see AGENT_CAPABILITIES). */
  user?: string;
  /** More writable paths, e.g. a local storage provider's directory. */
  writable: string[];
  /** Where Node's compile cache for this install lives (the agent may fill it). */
  compileCache: string;
  /** Arguments after `wpbackup server|agent --data-dir DIR`. */
  args: string[];
  version: string;
}

export const DEFAULTS = {
  server: { dataDir: '/var/lib/wpbackup', user: 'wpbackup' },
  agent: { dataDir: '/var/lib/wpbackup-agent' },
  unitDir: '/etc/systemd/system',
  envDir: '/etc/wpbackup',
} as const;

/**
 * What a root agent keeps of root's powers, and why:
 * - DAC_READ_SEARCH: read wp-config.php and the site's files whatever their modes (scans, the
 *   parent's config read; the reader itself reads as the owner);
 * - SETUID, SETGID: the reader and the database clients become the site's owner (privileges.ts);
 * - CHOWN: the run dir's database option file is handed to that owner;
 * - KILL: stop those children (they no longer run as root) on a stop, a failure or a timeout;
 * - SYS_NICE: renice them (nice 10), which another uid's process needs.
 * Nothing else: no DAC_OVERRIDE (nothing writes outside the data dir), no network admin, no
 * module loading, no ptrace.
 */
export const AGENT_CAPABILITIES = ['CAP_DAC_READ_SEARCH', 'CAP_SETUID', 'CAP_SETGID', 'CAP_CHOWN', 'CAP_KILL', 'CAP_SYS_NICE'] as const;

export function unitName(kind: ServiceKind): string {
  return `wpbackup-${kind}.service`;
}

/** A value systemd reads as one word: paths with spaces or specials are quoted, % escaped. */
export function unitWord(s: string): string {
  const escaped = s.replace(/%/g, '%%');
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped) ? escaped : `"${escaped.replace(/(["\\])/g, '\\$1')}"`;
}

function hardening(kind: ServiceKind): string[] {
  return [
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    // The agent must read sites that live under /home (public_html); the server has no business there.
    `ProtectHome=${kind === 'agent' ? 'read-only' : 'yes'}`,
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictSUIDSGID=yes',
    'RestrictRealtime=yes',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    `CapabilityBoundingSet=${kind === 'agent' ? AGENT_CAPABILITIES.join(' ') : ''}`,
    'UMask=0077',
  ];
}

export function unitText(s: UnitSpec): string {
  const what = s.kind === 'server' ? 'control server' : 'backup agent';
  const exec = [s.exec, s.kind, '--data-dir', s.dataDir, ...s.args].map(unitWord).join(' ');
  const writable = [s.dataDir, ...s.writable].map((p) => `ReadWritePaths=${unitWord(p)}`);
  // Root owns the install: the agent (root) may keep its reader's compile cache warm; the
  // server's user cannot write there anyway. '-': no error if the install has no cache dir.
  if (s.kind === 'agent') writable.push(`ReadWritePaths=-${unitWord(s.compileCache)}`);
  const identity = s.kind === 'server' ? [`User=${s.user ?? DEFAULTS.server.user}`, `Group=${s.user ?? DEFAULTS.server.user}`] : ['# root, reduced to CapabilityBoundingSet below: it reads every site and becomes each site\'s owner to do so', 'User=root'];
  return `# wpbackup ${what}, written by 'wpbackup install-service ${s.kind}' (wpbackup ${s.version}).
# Running install-service again rewrites this file: put local changes in a drop-in
# ('systemctl edit ${unitName(s.kind)}'). Secrets go in ${s.envFile} (mode 0600), never here:
# unit files are world-readable.
[Unit]
Description=wpbackup ${what}
Wants=network-online.target
After=network-online.target${s.kind === 'server' ? ' postgresql.service' : ''}

[Service]
Type=simple
${identity.join('\n')}
EnvironmentFile=${unitWord(s.envFile)}
ExecStart=${exec}
Restart=on-failure
RestartSec=5s
# SIGTERM stops a running backup cleanly (temp files removed, the server told).
KillMode=mixed
TimeoutStopSec=90s
${writable.join('\n')}
${hardening(s.kind).join('\n')}

[Install]
WantedBy=multi-user.target
`;
}

/** The env file's first contents: commented examples only; install-service never rewrites it. */
export function envTemplate(kind: ServiceKind): string {
  const common = '# Read by systemd as root before the service starts (mode 0600). KEY=value, one a line.\n';
  if (kind === 'server') {
    return `${common}# PostgreSQL instead of SQLite in the data dir (several servers may share one database):
#DATABASE_URL=postgres://wpbackup:PASSWORD@127.0.0.1/wpbackup
# The same on every server sharing that database (base64, 32 bytes: openssl rand -base64 32):
#WPBACKUP_SECRET_KEY=
#PORT=8080
#WPBACKUP_TRUST_PROXY=127.0.0.1
#WPBACKUP_REQUIRE_MFA=super_admin
`;
  }
  return `${common}# A proxy or a private CA for reaching the control server:
#HTTPS_PROXY=http://proxy.example.com:3128
#NODE_EXTRA_CA_CERTS=/etc/ssl/certs/my-ca.pem
# Do not leave a join code here: 'install-service agent' joins once, the key is kept in the data dir.
`;
}
