import type { ParseArgsConfig } from 'node:util';

// One shape for every subcommand: a name, help text, parseArgs options and a run function
// that returns normally or throws a WpbError (mapped to an exit code in exit-codes.ts).

export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

export interface CommandContext {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
}

export interface Command {
  /** Words after `wpbackup`, e.g. ['sites', 'scan']. */
  path: string[];
  summary: string;
  /** Usage line(s) after `wpbackup`, e.g. 'sites scan [PATH...] [--json]'. */
  usage: string;
  /** Extra help text: options and examples. */
  help: string;
  options: OptionsConfig;
  allowPositionals: boolean;
  /** Returns the exit code for success (0, or 3 for "done with warnings"). */
  run(values: Record<string, string | boolean | string[] | boolean[] | undefined>, positionals: string[], ctx: CommandContext): Promise<number>;
}
