import { spawn, type ChildProcess } from 'node:child_process';
import { MAIN } from './cli.ts';

/**
 * `wpbackup agent` for a test server, in a clean environment (PATH and HOME only, plus `env`),
 * with every line it prints handed to onOutput for failure messages.
 */
export function spawnAgent(o: { serverUrl: string; dataDir: string; args?: string[]; env?: NodeJS.ProcessEnv; onOutput: (s: string) => void }): ChildProcess {
  const child = spawn(process.execPath, [MAIN, 'agent', '--server', o.serverUrl, '--data-dir', o.dataDir, '--no-nice', ...(o.args ?? [])], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.setEncoding('utf8').on('data', o.onOutput);
  child.stderr?.setEncoding('utf8').on('data', o.onOutput);
  return child;
}
