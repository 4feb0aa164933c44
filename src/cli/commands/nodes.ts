import { badInput } from '../../errors.ts';
import type { Command } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { DATA_DIR_HELP, withServerContext } from '../server-context.ts';
import { str } from '../values.ts';

// `wpbackup nodes join-code`: the CLI twin of POST /api/v1/nodes/join-codes, for the first
// agent before anyone has a token. Only the code's hash is stored; the code is printed once.

const MAX_TTL_MINUTES = 7 * 24 * 60;

export const nodesJoinCode: Command = {
  path: ['nodes', 'join-code'],
  summary: 'Create a one-time code an agent joins with',
  usage: 'nodes join-code [--ttl MINUTES] [--data-dir DIR]',
  help: `Prints a one-time join code (valid 60 minutes unless --ttl says otherwise). On the web server:
  WPBACKUP_JOIN_CODE=<code> wpbackup agent --server https://your-server
(an environment variable, so the code never shows in ps).

Options:
  --ttl MINUTES        how long the code stays valid (1 to ${MAX_TTL_MINUTES}, default 60)
${DATA_DIR_HELP}`,
  options: { ttl: { type: 'string' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    const ttl = Number(str(v.ttl) ?? '60');
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_MINUTES) throw badInput(`--ttl must be a whole number of minutes from 1 to ${MAX_TTL_MINUTES}, not ${str(v.ttl)}`);
    const { generateToken, hashToken } = await import('../../server/auth/tokens.ts');
    const code = generateToken('join');
    const expires = new Date(Date.now() + ttl * 60_000);
    await withServerContext(str(v['data-dir']), ctx.env, async (server) => {
      await server.repos.joinCodes.create({ codeHash: hashToken(code), expiresAt: expires.getTime(), createdBy: null });
      await server.repos.audit.record({ action: 'node.join_code.create', targetType: 'join_code', detail: { expires_at: expires.toISOString(), via: 'cli' } });
    });
    if (v.json) ctx.stdout.write(JSON.stringify({ code, expires_at: expires.toISOString() }) + '\n');
    else ctx.stdout.write(`${code}\n  valid until ${expires.toISOString()}; on the web server: WPBACKUP_JOIN_CODE=<code> wpbackup agent --server <server url>\n`);
    return EXIT.ok;
  },
};
