import type { RestoreOptions, RestoreResult } from '../engine/restore.ts';

// Heavy entry points for commands whose code should not change shape: each loads its module
// on the first call, so `wpbackup --help` and every other command start without it.

export async function runRestore(o: RestoreOptions): Promise<RestoreResult> {
  const { runRestore: run } = await import('../engine/restore.ts');
  return run(o);
}
