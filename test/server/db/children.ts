import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Runs a few lines of ESM in n separate node processes started together, to test what
// happens when several servers start at once. {src} in the code is the src/ directory URL.

const SRC = new URL('../../../src/', import.meta.url).href;

export async function inProcesses(n: number, code: string, arg: string): Promise<string[]> {
  const script = code.replaceAll('{src}', SRC);
  const runs = Array.from({ length: n }, () => run(script, arg));
  return Promise.all(runs);
}

function run(script: string, arg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script, arg], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`child failed: ${stderr || err.message}`, { cause: err }));
      else resolve(stdout.trim());
    });
  });
}

export const srcDir = fileURLToPath(SRC);
