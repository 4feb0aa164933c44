import { apiClient, type ApiClient } from './api-client.ts';
import type { Command, CommandContext, OptionsConfig } from './command.ts';
import { siteId } from './commands/backup-remote.ts';
import { EXIT } from './exit-codes.ts';
import { str } from './values.ts';

// The settings commands (schedules, retention) act on one site with --site, on the fleet default
// without it. One place resolves --site (an id or a name, as `backup start` takes it) and prints
// the answer as JSON or as text, so each command only says which call and which text.

export interface SiteOrFleetCalls<S, F> {
  site(api: ApiClient, id: string): Promise<S>;
  fleet(api: ApiClient): Promise<F>;
}

export interface SiteOrFleetText<S, F> {
  siteText(body: S): string;
  fleetText(body: F): string;
}

async function runSiteOrFleet<S, F>(v: Record<string, unknown>, ctx: CommandContext, op: SiteOrFleetCalls<S, F> & SiteOrFleetText<S, F>): Promise<void> {
  const api = apiClient(ctx.env);
  const ref = str(v.site as string | undefined);
  let body: S | F;
  let text: string;
  if (ref === undefined) {
    const b = await op.fleet(api);
    [body, text] = [b, op.fleetText(b)];
  } else {
    const b = await op.site(api, await siteId(api, ref));
    [body, text] = [b, op.siteText(b)];
  }
  ctx.stdout.write(v.json === true ? `${JSON.stringify(body)}\n` : text);
}

export interface SiteOrFleetSpec<S, F> extends Omit<Command, 'run' | 'options' | 'allowPositionals'> {
  /** Options beyond --site and --json. */
  options?: OptionsConfig;
  allowPositionals?: boolean;
  text: SiteOrFleetText<S, F>;
  /** The calls the flags ask for; bad flags throw here, before anything is sent. */
  calls(v: Record<string, unknown>, pos: string[]): SiteOrFleetCalls<S, F>;
}

/** A `... show|set|clear [--site SITE] [--json]` command. */
export function siteOrFleetCommand<S, F>(spec: SiteOrFleetSpec<S, F>): Command {
  const { text, calls, options, allowPositionals, ...described } = spec;
  return {
    ...described,
    options: { site: { type: 'string' }, json: { type: 'boolean' }, ...options },
    allowPositionals: allowPositionals ?? false,
    async run(v, pos, ctx) {
      await runSiteOrFleet(v, ctx, { ...text, ...calls(v, pos) });
      return EXIT.ok;
    },
  };
}
