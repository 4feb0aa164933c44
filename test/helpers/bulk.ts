import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from './mysql.ts';

// Makes a fixture heavy enough that each stage lasts long enough to be stopped in.

export async function addBulk(site: { dir: string; dbName: string }, o: { dbMb: number; files: number; mediaMb: number }): Promise<void> {
  const rows = Math.ceil((o.dbMb * 1e6) / 4096);
  await sql(`CREATE TABLE bulk_rows (id INT AUTO_INCREMENT PRIMARY KEY, body LONGTEXT) ENGINE=InnoDB`, site.dbName);
  // Random-looking text so the dump is as large as the data.
  await sql(`INSERT INTO bulk_rows (body) SELECT REPEAT(MD5(RAND()), 128) FROM seq_1_to_${rows}`, site.dbName);
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
