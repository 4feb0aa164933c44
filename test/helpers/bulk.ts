import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from './mysql.ts';

// Makes a fixture heavy enough that each stage lasts long enough to be stopped in.

/**
 * dbMb of rows in a bulk_rows table, `files` tiny text files and mediaMb of .mp4 (stored as
 * is). With randomDb the rows are hex of random bytes, so the compressed dump stays about
 * half its size and the last stages, which carry it, take a while too.
 */
export async function addBulk(site: { dir: string; dbName: string }, o: { dbMb: number; files: number; mediaMb: number; randomDb?: boolean }): Promise<void> {
  const rows = Math.ceil((o.dbMb * 1e6) / 4096);
  await sql(`CREATE TABLE bulk_rows (id INT AUTO_INCREMENT PRIMARY KEY, body LONGTEXT) ENGINE=InnoDB`, site.dbName);
  // Random-looking text so the dump is as large as the data.
  const body = o.randomDb ? 'CONCAT(HEX(RANDOM_BYTES(1024)), HEX(RANDOM_BYTES(1024)))' : 'REPEAT(MD5(RAND()), 128)';
  await sql(`INSERT INTO bulk_rows (body) SELECT ${body} FROM seq_1_to_${rows}`, site.dbName);
  const many = join(site.dir, 'wp-content', 'uploads', 'many');
  for (let d = 0; d < Math.ceil(o.files / 500); d++) {
    const dir = join(many, `d${d}`);
    await mkdir(dir, { recursive: true });
    await Promise.all(Array.from({ length: Math.min(500, o.files - d * 500) }, (_, i) => writeFile(join(dir, `f${i}.txt`), `file ${d}/${i}\n`)));
  }
  const media = join(site.dir, 'wp-content', 'uploads', 'media');
  await mkdir(media, { recursive: true });
  for (let i = 0; i < o.mediaMb / 4; i++) await writeFile(join(media, `clip${i}.mp4`), randomBytes(4 << 20));
}
