import { parseRate } from '../../engine/throttle.ts';
import { resolveDataDir } from '../../datadir.ts';
import { badInput } from '../../errors.ts';
import type { Command, CommandContext } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { str, strs } from '../values.ts';

// wpbackup agent: joins a control server once with a one-time code, then runs the jobs the
// server hands out. Only the agent's data dir holds the node key (0600).

async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    if (text.length > 1000) break;
  }
  return text.trim();
}

/** The join code from --join-code (or "-" for stdin) or WPBACKUP_JOIN_CODE; undefined when none. */
async function joinCodeFrom(flag: string | undefined, env: NodeJS.ProcessEnv, stdin: NodeJS.ReadableStream): Promise<string | undefined> {
  if (flag === '-') {
    const code = await readStdin(stdin);
    if (!code) throw badInput('--join-code - read nothing from stdin', 'Pipe the code in: echo "$CODE" | wpbackup agent --server URL --join-code -');
    return code;
  }
  return flag ?? (env.WPBACKUP_JOIN_CODE?.trim() || undefined);
}

export const agentCommand: Command = {
  path: ['agent'],
  summary: 'Run the backup agent on a web server: join a control server once, then run its jobs',
  usage: 'agent --server URL [--data-dir DIR] (first run: join code in WPBACKUP_JOIN_CODE or on stdin with --join-code -)',
  help: `Runs backups the control server asks for, with the same engine as 'wpbackup backup', and
uploads through URLs the server signs: the agent never holds storage credentials.

First run, with a one-time join code from the server's admin:
  WPBACKUP_JOIN_CODE=wpb_j_... wpbackup agent --server https://backup.example.com
  echo "$CODE" | wpbackup agent --server https://backup.example.com --join-code -
The node id and key are stored in DATA_DIR/agent.json (mode 0600); later runs need no code,
and --server may be left out. Prefer the variable or stdin to --join-code CODE: anything on a
command line is visible to every user of the machine (ps, /proc).

Options:
  --server URL         the control server (required on the first run)
  --join-code CODE     a one-time join code; "-" reads it from stdin (else $WPBACKUP_JOIN_CODE)
  --data-dir DIR       identity and temp dirs (default $WPBACKUP_DATA_DIR or /var/lib/wpbackup)
  --hostname NAME      the name the server shows for this node (default: the host name)
  --once               exit after one job
  --no-nice            run children at normal priority (default: nice 10)
  --limit-upload RATE  cap the upload bandwidth, e.g. 10M (bytes per second; K, M, G suffixes)
  --log-level LEVEL    fatal, error, warn, info (default), debug, trace or silent ($WPBACKUP_LOG_LEVEL)
  --log-format FORMAT  json (default: one JSON object per line on stdout) or pretty ($WPBACKUP_LOG_FORMAT)
  --scan-root DIR      where to look for WordPress sites to offer for adoption (repeatable;
                       default /var/www); scanned at start and every 6 hours, DB passwords are
                       never sent

On start, temp dirs left by runs that were killed are removed; the server aborts their uploads.
SIGINT/SIGTERM stop a running backup cleanly and tell the server.`,
  options: {
    server: { type: 'string' },
    'join-code': { type: 'string' },
    'data-dir': { type: 'string' },
    hostname: { type: 'string' },
    once: { type: 'boolean' },
    'no-nice': { type: 'boolean' },
    'limit-upload': { type: 'string' },
    'scan-root': { type: 'string', multiple: true },
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
  },
  allowPositionals: false,
  async run(v, _pos, ctx: CommandContext & { stdin?: NodeJS.ReadableStream }) {
    const limit = str(v['limit-upload']);
    const limitUploadBytesPerSec = limit ? parseRate(limit) : undefined;
    const dataDir = resolveDataDir(str(v['data-dir']), ctx.env);
    const joinCode = await joinCodeFrom(str(v['join-code']), ctx.env, ctx.stdin ?? process.stdin);
    const [{ runAgent }, { AgentClient }, { ensureIdentity, identityPath }, { createLogger, parseLogOptions }] = await Promise.all([
      import('../../agent/agent.ts'),
      import('../../agent/client.ts'),
      import('../../agent/identity.ts'),
      import('../../log.ts'),
    ]);
    const logger = createLogger({ ...parseLogOptions({ level: str(v['log-level']), format: str(v['log-format']) }, ctx.env), stream: ctx.stdout });
    const { identity, joined } = await ensureIdentity({ dataDir, server: str(v.server), joinCode, hostname: str(v.hostname) });
    const ids = { node: identity.node_id, server: identity.server };
    if (joined) logger.info({ ...ids, identity: identityPath(dataDir) }, `joined ${identity.server} as node ${identity.node_id}; identity saved in ${identityPath(dataDir)}`);
    else logger.info(ids, `node ${identity.node_id} of ${identity.server}`);
    const client = new AgentClient(identity.server, identity.node_key);
    const scanRoots = strs(v['scan-root']);
    await runAgent({ client, dataDir, signal: ctx.signal, logger: logger.child({ node: identity.node_id }), once: v.once === true, nice: v['no-nice'] === true ? 0 : 10, limitUploadBytesPerSec, scanRoots: scanRoots.length ? scanRoots : ['/var/www'] });
    return EXIT.ok;
  },
};
