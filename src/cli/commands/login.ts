import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import type { ApiErrorBody, LoginMfaResponse, LoginResult, MfaEnrollment } from '../../api/types.ts';
import type { CreateTokenResponse } from '../../api/admin-types.ts';
import { badInput, failure } from '../../errors.ts';
import type { Command, CommandContext } from '../command.ts';
import { EXIT } from '../exit-codes.ts';
import { str } from '../values.ts';
import { promptHidden } from './users.ts';

// `wpbackup login`: signs in with email and password, and the second factor when the account has
// one (or must enroll one), then trades the short session for an API token for WPBACKUP_TOKEN
// (the way every other remote command authenticates) and signs the session out. Secrets come from
// stdin or unechoed prompts, never the command line.

type Lines = () => Promise<string>;

/**
 * Reads stdin line by line as it arrives (a script may answer after reading our stderr). Opened on
 * first use, so an unechoed password prompt on a terminal has stdin to itself.
 */
function stdinLines(): { next: Lines; close(): void } {
  let rl: ReturnType<typeof createInterface> | undefined;
  let it: AsyncIterator<string> | undefined;
  return {
    next: async () => {
      rl ??= createInterface({ input: process.stdin, crlfDelay: Infinity });
      it ??= rl[Symbol.asyncIterator]();
      const r = await it.next();
      if (r.done) throw badInput('stdin ended before the sign-in was complete', 'Give the password on the first line and the code on the second');
      return r.value;
    },
    close: () => rl?.close(),
  };
}

async function call<T>(base: string, method: string, path: string, body?: unknown, token?: string): Promise<T> {
  let res: Response;
  try {
    const headers: Record<string, string> = { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) };
    res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw failure(`Cannot reach the wpbackup server at ${base}: ${(err as Error).message}`, err, 'Is it running? Check --url or WPBACKUP_URL');
  }
  const text = await res.text();
  const json = (text ? JSON.parse(text) : undefined) as unknown;
  if (res.ok) return json as T;
  const msg = (json as ApiErrorBody | undefined)?.error?.message ?? `HTTP ${res.status}`;
  throw res.status < 500 ? badInput(msg) : failure(msg);
}

async function ask(ctx: CommandContext, lines: Lines, prompt: string, hidden: boolean): Promise<string> {
  if (!process.stdin.isTTY) return lines();
  if (hidden) return promptHidden(prompt, ctx.stderr);
  ctx.stderr.write(prompt);
  return lines();
}

/** The second step: an existing factor's code, or a new factor's enrollment and first code. */
async function secondStep(ctx: CommandContext, base: string, r: LoginResult, lines: Lines): Promise<LoginMfaResponse> {
  if ('token' in r) return r;
  if (r.mfa_enrollment_required) {
    const e = await call<MfaEnrollment>(base, 'POST', '/api/v1/auth/login/mfa/enroll', { challenge: r.challenge });
    ctx.stderr.write(`This account must have a second factor. Add this key to an authenticator app\n(or make a QR code of the URI):\n  key: ${e.secret}\n  uri: ${e.otpauth_uri}\n`);
  }
  const code = (await ask(ctx, lines, 'Code from your authenticator app (or a recovery code): ', false)).trim();
  const done = await call<LoginMfaResponse>(base, 'POST', '/api/v1/auth/login/mfa', { challenge: r.challenge, code });
  if (done.recovery_codes) ctx.stderr.write(`Recovery codes, each usable once if the app is lost. Keep them safe; they are not shown again:\n${done.recovery_codes.map((c) => `  ${c}`).join('\n')}\n`);
  return done;
}

export const loginCommand: Command = {
  path: ['login'],
  summary: 'Sign in to a wpbackup server (with the second factor if any) and get an API token',
  usage: 'login --email EMAIL [--url URL] [--name NAME] [--expires-days N]',
  help: `Signs in and prints an API token as "export WPBACKUP_TOKEN=...", for the commands that talk to
the server (backup start, backup watch, ...). The session used to make it is signed out again.
On a terminal the password (and the code, when the account has a second factor) are asked for;
otherwise they are the first and second lines of stdin:
  printf '%s\\n%s\\n' "$PASSWORD" "$CODE" | wpbackup login --email you@example.com
An account whose role must have a second factor but has none is shown a key (and otpauth:// URI)
for an authenticator app, then asked for its first code; its recovery codes are shown once.

Options:
  --email EMAIL        the sign-in email
  --url URL            the server (default $WPBACKUP_URL)
  --name NAME          the token's name (default "cli on <host name>")
  --expires-days N     the token expires after N days (default: never; revoke it with DELETE /api/v1/tokens/{id})`,
  options: { email: { type: 'string' }, url: { type: 'string' }, name: { type: 'string' }, 'expires-days': { type: 'string' } },
  allowPositionals: false,
  async run(v, _pos, ctx) {
    const base = (str(v.url) ?? ctx.env.WPBACKUP_URL)?.replace(/\/+$/, '');
    if (!base) throw badInput('No server given', 'Pass --url http://HOST:PORT or set WPBACKUP_URL');
    const email = str(v.email)?.trim();
    if (!email) throw badInput('--email is required', "See 'wpbackup login --help'");
    const days = str(v['expires-days']);
    if (days !== undefined && !/^[1-9]\d{0,3}$/.test(days)) throw badInput('--expires-days must be a whole number of days (1 to 3650)');
    const input = stdinLines();
    try {
      const password = await ask(ctx, input.next, 'Password: ', true);
      const first = await call<LoginResult>(base, 'POST', '/api/v1/auth/login', { email, password });
      const session = await secondStep(ctx, base, first, input.next);
      const name = str(v.name) ?? `cli on ${hostname()}`;
      const api = await call<CreateTokenResponse>(base, 'POST', '/api/v1/tokens', { name, expires_in_days: days === undefined ? null : Number(days) }, session.token);
      await call(base, 'POST', '/api/v1/auth/logout', undefined, session.token).catch(() => undefined);
      ctx.stdout.write(`export WPBACKUP_URL=${base}\nexport WPBACKUP_TOKEN=${api.token}\n`);
      return EXIT.ok;
    } finally {
      input.close();
    }
  },
};
