import { apiClient, type ApiClient } from './api-client.ts';
import type { CommandContext } from './command.ts';
import { siteId } from './commands/backup-remote.ts';
import { str } from './values.ts';

// The settings commands (schedules, retention) act on one site with --site, on the fleet default
// without it. One place resolves --site (an id or a name, as `backup start` takes it) and prints
// the answer as JSON or as text, so each command only says which call and which text.

export interface SiteOrFleet<S, F> {
  site(api: ApiClient, id: string): Promise<S>;
  fleet(api: ApiClient): Promise<F>;
  siteText(body: S): string;
  fleetText(body: F): string;
}

export async function runSiteOrFleet<S, F>(v: Record<string, unknown>, ctx: CommandContext, op: SiteOrFleet<S, F>): Promise<void> {
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
