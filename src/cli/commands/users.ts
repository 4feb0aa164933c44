import { badInput } from '../../errors.ts';
import type { Command, CommandContext } from '../command.ts';
import { DATA_DIR_HELP, withServerContext } from '../server-context.ts';
import { EXIT } from '../exit-codes.ts';
import { str } from '../values.ts';

// `wpbackup users create|list`: manage accounts straight in the database, with the server
// running or stopped (SQLite in WAL mode takes a second process; PostgreSQL from DATABASE_URL).
// The password never goes on the command line: it is read from stdin, or typed twice unechoed.

/** The first line of a piped stdin (without its line ending); at most a bit over the policy's cap is read. */
export async function firstLine(stdin: NodeJS.ReadableStream, maxLength: number): Promise<string> {
  let text = '';
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    if (text.includes('\n') || text.length > maxLength * 4 + 2) break;
  }
  return (text.split('\n')[0] ?? '').replace(/\r$/, '');
}

/** Reads one line from the terminal without echoing it. */
export function promptHidden(prompt: string, stderr: NodeJS.WritableStream): Promise<string> {
  const stdin = process.stdin;
  stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    const done = (err?: Error): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (data: Buffer): void => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') return done(badInput('Cancelled: no password given'));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else value += ch;
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

async function readPassword(ctx: CommandContext, maxLength: number): Promise<string> {
  if (!process.stdin.isTTY) return firstLine(process.stdin, maxLength);
  const first = await promptHidden('Password: ', ctx.stderr);
  const again = await promptHidden('Password (again): ', ctx.stderr);
  if (first !== again) throw badInput('The two passwords differ', 'Run the command again');
  return first;
}

export const usersCreateCommand: Command = {
  path: ['users', 'create'],
  summary: 'Create a user of the control server (password from stdin or prompted)',
  usage: 'users create --email EMAIL --role super_admin|node_admin|site_admin [--data-dir DIR]',
  help: `The password is the first line of stdin when stdin is not a terminal, e.g.
  printf '%s\\n' "$PASSWORD" | wpbackup users create --email you@example.com --role super_admin
otherwise it is asked for twice without echo. It must be at least 12 characters and not a common one.
Works whether the server is running or not.

Options:
  --email EMAIL        the sign-in email (unique, case-insensitive)
  --role ROLE          super_admin, node_admin or site_admin
${DATA_DIR_HELP}`,
  options: { email: { type: 'string' }, role: { type: 'string' }, 'data-dir': { type: 'string' } },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    // Loaded here, not at the top: the other commands never pay for the server's code.
    const [{ checkPasswordPolicy, hashPassword, MAX_PASSWORD_LENGTH }, { isRole, ROLES }] = await Promise.all([import('../../server/auth/passwords.ts'), import('../../server/auth/roles.ts')]);
    const email = str(v.email)?.trim();
    const role = str(v.role);
    if (!email || !/^[^@\s]+@[^@\s]+$/.test(email) || email.length > 254) throw badInput('--email must be an email address', "See 'wpbackup users create --help'");
    if (!role || !isRole(role)) throw badInput(`--role must be one of ${ROLES.join(', ')}`);
    const password = await readPassword(ctx, MAX_PASSWORD_LENGTH);
    const verdict = checkPasswordPolicy(password, email);
    if (!verdict.ok) throw badInput(verdict.message);
    const passwordHash = await hashPassword(password);
    const user = await withServerContext(str(v['data-dir']), ctx.env, async (sc) => {
      if (await sc.repos.users.getByEmail(email)) throw badInput(`A user with email ${email.toLowerCase()} already exists`);
      const created = await sc.repos.users.create({ email, passwordHash, role });
      await sc.repos.audit.record({ action: 'user.create', targetType: 'user', targetId: created.id, detail: { email: created.email, role: created.role, via: 'cli' } });
      return created;
    });
    ctx.stdout.write(`Created ${user.role} ${user.email} (${user.id})\n`);
    return EXIT.ok;
  },
};

export const usersListCommand: Command = {
  path: ['users', 'list'],
  summary: 'List the users of the control server',
  usage: 'users list [--json] [--data-dir DIR]',
  help: `Options:
  --json               one JSON object per line
${DATA_DIR_HELP}`,
  options: { json: { type: 'boolean' }, 'data-dir': { type: 'string' } },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    const users = await withServerContext(str(v['data-dir']), ctx.env, (sc) => sc.repos.users.list());
    if (v.json) {
      for (const u of users) ctx.stdout.write(JSON.stringify({ id: u.id, email: u.email, role: u.role, created_at: new Date(u.createdAt).toISOString() }) + '\n');
      return EXIT.ok;
    }
    if (users.length === 0) {
      ctx.stdout.write('No users yet. Create one with: wpbackup users create --email EMAIL --role super_admin\n');
      return EXIT.ok;
    }
    const width = Math.max(5, ...users.map((u) => u.email.length));
    ctx.stdout.write(`${'EMAIL'.padEnd(width)}  ${'ROLE'.padEnd(11)}  ID\n`);
    for (const u of users) ctx.stdout.write(`${u.email.padEnd(width)}  ${u.role.padEnd(11)}  ${u.id}\n`);
    return EXIT.ok;
  },
};

export const usersResetMfaCommand: Command = {
  path: ['users', 'reset-mfa'],
  summary: "Turn off a user's second factor (a lost phone); they sign in with the password and enroll again",
  usage: 'users reset-mfa --email EMAIL [--data-dir DIR]',
  help: `Removes the user's TOTP secret and recovery codes and ends their pending sign-in challenges.
Their next sign-in needs only the password (or, for a role the server requires MFA for, leads to a
new enrollment). Recorded in the audit log. The API twin is DELETE /api/v1/users/{id}/mfa.

Options:
  --email EMAIL        the user's sign-in email
${DATA_DIR_HELP}`,
  options: { email: { type: 'string' }, 'data-dir': { type: 'string' } },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    const email = str(v.email)?.trim();
    if (!email) throw badInput('--email is required', "See 'wpbackup users reset-mfa --help'");
    const had = await withServerContext(str(v['data-dir']), ctx.env, async (sc) => {
      const user = await sc.repos.users.getByEmail(email);
      if (!user) throw badInput(`No user has the email ${email.toLowerCase()}`, "See 'wpbackup users list'");
      const removed = await sc.mfa.disable(user.id);
      await sc.repos.audit.record({ action: 'user.mfa_reset', targetType: 'user', targetId: user.id, detail: { email: user.email, had_mfa: removed, via: 'cli' } });
      return removed;
    });
    ctx.stdout.write(had ? `Second factor removed for ${email.toLowerCase()}\n` : `${email.toLowerCase()} had no second factor; nothing to remove\n`);
    return EXIT.ok;
  },
};

export const usersCommands: Command[] = [usersCreateCommand, usersListCommand, usersResetMfaCommand];
