import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

// Preloaded with --import: writes the URL of every module the process loaded (imported or
// required) to $WPBACKUP_TEST_MODULE_LOG when it exits, so tests can check what a command loads.

const seen: string[] = [];
registerHooks({
  load(url, context, next) {
    seen.push(url);
    return next(url, context);
  },
});
process.on('exit', () => writeFileSync(process.env.WPBACKUP_TEST_MODULE_LOG ?? '/dev/null', seen.join('\n') + '\n'));
