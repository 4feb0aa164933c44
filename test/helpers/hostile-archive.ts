import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';

// Hand-made archives for restore tests: any tar type, name, mode and owner, in the layout a
// wpbackup archive has (database.sql, manifest.json, wp-content/) unless a test changes it.

export interface RawMember {
  name: string;
  /** tar typeflag: '0' file, '1' hard link, '2' symlink, '3' char device, '5' dir, '6' FIFO. */
  type: '0' | '1' | '2' | '3' | '4' | '5' | '6';
  data?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A ustar header exactly as given: no checks, no cleaning. */
export function rawHeader(m: RawMember, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(m.name, 0, 100, 'utf8');
  h.write(octal(m.mode ?? (m.type === '5' ? 0o755 : 0o644), 8), 100, 'ascii');
  h.write(octal(m.uid ?? 0, 8), 108, 'ascii');
  h.write(octal(m.gid ?? 0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(Math.floor(Date.now() / 1000), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(m.type, 156, 'ascii');
  h.write(m.linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\0' + '00', 257, 'ascii');
  if (m.type === '3' || m.type === '4') {
    h.write(octal(1, 8), 329, 'ascii'); // major 1, minor 3: /dev/null's numbers
    h.write(octal(3, 8), 337, 'ascii');
  }
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7), 148, 'ascii');
  return h;
}

export function tarOf(members: RawMember[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
    parts.push(rawHeader(m, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const CLEAN_DUMP = [
  '/*M!999999\\- enable the sandbox mode */ ',
  'DROP TABLE IF EXISTS `wp_options`;',
  'CREATE TABLE `wp_options` (`option_id` int NOT NULL AUTO_INCREMENT, `option_name` varchar(191) NOT NULL, `option_value` longtext NOT NULL, PRIMARY KEY (`option_id`));',
  "INSERT INTO `wp_options` VALUES (1,'siteurl','https://source.example'),(2,'blurb','data may say \\\\! touch /tmp/x; system ls; source /etc/passwd');",
  '',
].join('\n');

/** What an attacker writes: no sandbox line on top (which would have saved the old client). */
export const BARE_DUMP = CLEAN_DUMP.slice(CLEAN_DUMP.indexOf('\n') + 1);

/** The members every archive has, around `extra`; `dump` replaces database.sql's text. */
export function layout(extra: RawMember[], o: { dump?: string; wpConfig?: string } = {}): RawMember[] {
  const dump = o.dump ?? CLEAN_DUMP;
  const manifest = {
    format: 1,
    created_at: '2026-01-01T00:00:00Z',
    site: { name: 'source.example', table_prefix: 'wp_' },
    database: { file: 'database.sql', bytes: Buffer.byteLength(dump), sha256: createHash('sha256').update(dump).digest('hex'), dump_tool: 'mariadb-dump' },
  };
  const members: RawMember[] = [
    { name: 'wp-content/', type: '5' },
    { name: 'wp-content/uploads/', type: '5' },
    { name: 'wp-content/uploads/hello.txt', type: '0', data: 'hello\n' },
    ...extra,
    { name: 'database.sql', type: '0', data: dump },
  ];
  if (o.wpConfig) members.push({ name: 'wp-config.php', type: '0', data: o.wpConfig, mode: 0o640 });
  members.push({ name: 'manifest.json', type: '0', data: JSON.stringify(manifest) });
  return members;
}

/** Writes members as a .tar.zst; returns the file's sha256. */
export function writeArchive(path: string, members: RawMember[]): string {
  const zst = execFileSync('zstd', ['-q', '-c'], { input: tarOf(members), maxBuffer: 1 << 30 });
  writeFileSync(path, zst);
  return createHash('sha256').update(zst).digest('hex');
}
