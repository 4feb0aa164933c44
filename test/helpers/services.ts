import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// What scripts/test-services.sh started, read from the 0600 file it writes. `npm test`
// runs that script first, so a missing file means the tests were started some other way.

export interface TestServices {
  mysql: {
    host: string; // 127.0.0.1
    port: number;
    socket: string;
    /** An admin account that may create databases and users. */
    user: string;
    password: string;
  };
  minio: { endpoint: string; accessKey: string; secretKey: string; region: string };
  postgres: { url: string };
  /** Mailpit: an SMTP server that keeps every message, and its HTTP API (the alert tests). */
  mailpit: { smtpHost: string; smtpPort: number; api: string };
  /** Path of Debian's chromium binary. */
  chromium: string;
  /** Debian's WordPress core, /usr/share/wordpress. */
  wordpressCore: string;
}

export const TEST_HOME = process.env.WPBACKUP_TEST_HOME ?? '/var/tmp/wpbackup-test';

let cached: TestServices | undefined;

export function services(): TestServices {
  if (cached) return cached;
  const file = join(TEST_HOME, 'services.json');
  try {
    cached = JSON.parse(readFileSync(file, 'utf8')) as TestServices;
  } catch (err) {
    throw new Error(`${file} is missing: run 'bash scripts/test-services.sh' (npm test does) to start MariaDB, PostgreSQL, MinIO and Mailpit`, { cause: err });
  }
  return cached;
}
