import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { phpString } from '../../src/wordpress/demo-site.ts';
import { createDatabase, createDbUser, dropDatabase, dropDbUser, uniqueName } from './mysql.ts';
import { services, TEST_HOME } from './services.ts';

// A fresh, empty place to restore into: a new database with its own user, and a new
// directory holding only a wp-config.php that points at that database.

export interface RestoreTarget {
  dir: string;
  dbName: string;
  dbUser: string;
  dbPassword: string;
  cleanup(): Promise<void>;
}

export async function createRestoreTarget(tablePrefix: string, opts: { withConfig?: boolean } = {}): Promise<RestoreTarget> {
  const name = uniqueName('restore');
  const password = `r'"$\\${randomBytes(4).toString('hex')}`;
  await createDatabase(name);
  await createDbUser(name, password, name);
  const dir = join(TEST_HOME, 'sites', name);
  await mkdir(dir, { recursive: true });
  const m = services().mysql;
  if (opts.withConfig !== false) {
    const php = `<?php\ndefine( 'DB_NAME', ${phpString(name)} );\ndefine( 'DB_USER', ${phpString(name)} );\ndefine( 'DB_PASSWORD', ${phpString(password)} );\ndefine( 'DB_HOST', ${phpString(`${m.host}:${m.port}`)} );\ndefine( 'DB_CHARSET', 'utf8mb4' );\n$table_prefix = ${phpString(tablePrefix)};\n`;
    await writeFile(join(dir, 'wp-config.php'), php, { mode: 0o640 });
  }
  return {
    dir,
    dbName: name,
    dbUser: name,
    dbPassword: password,
    cleanup: async () => {
      await dropDatabase(name);
      await dropDbUser(name);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
