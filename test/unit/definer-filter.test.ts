import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { DefinerFilter } from '../../src/engine/definer-filter.ts';

// What mariadb-dump 10.11 writes for a trigger, a view, a procedure and an event.
const DUMP = [
  "INSERT INTO `wp_posts` VALUES (1,'/*!50003 CREATE*/ DEFINER=`x`@`y` is data, not DDL');",
  '/*!50003 CREATE*/ /*!50017 DEFINER=`site``user`@`localhost`*/ /*!50003 TRIGGER `t` BEFORE INSERT ON `wp_posts` FOR EACH ROW SET NEW.post_title = TRIM(NEW.post_title) */;;',
  '/*!50001 CREATE ALGORITHM=UNDEFINED */',
  "/*!50013 DEFINER='u'@'%' SQL SECURITY DEFINER */",
  '/*!50001 VIEW `v` AS select 1 AS `one` */;',
  'DELIMITER ;;',
  'CREATE DEFINER=`site`@`127.0.0.1` PROCEDURE `p`()',
  "BEGIN SELECT 'DEFINER=`a`@`b`'; END ;;",
  '/*!50106 CREATE*/ /*!50117 DEFINER=`site`@`localhost`*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1 */ ;;',
  '',
].join('\n');

const EXPECTED = [
  "INSERT INTO `wp_posts` VALUES (1,'/*!50003 CREATE*/ DEFINER=`x`@`y` is data, not DDL');",
  '/*!50003 CREATE*/ /*!50017 */ /*!50003 TRIGGER `t` BEFORE INSERT ON `wp_posts` FOR EACH ROW SET NEW.post_title = TRIM(NEW.post_title) */;;',
  '/*!50001 CREATE ALGORITHM=UNDEFINED */',
  '/*!50013 SQL SECURITY DEFINER */',
  '/*!50001 VIEW `v` AS select 1 AS `one` */;',
  'DELIMITER ;;',
  'CREATE PROCEDURE `p`()',
  "BEGIN SELECT 'DEFINER=`a`@`b`'; END ;;",
  '/*!50106 CREATE*/ /*!50117 */ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1 */ ;;',
  '',
].join('\n');

async function filter(chunks: Buffer[]): Promise<string> {
  return (await buffer(Readable.from(chunks).pipe(new DefinerFilter()))).toString('utf8');
}

describe('DEFINER filter', () => {
  it('removes definers from DDL lines and leaves data and bodies alone', async () => {
    assert.equal(await filter([Buffer.from(DUMP)]), EXPECTED);
  });

  it('gives the same result however the stream is cut', async () => {
    const all = Buffer.from(DUMP);
    for (let cut = 1; cut < all.length; cut += 7) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < all.length; i += cut) chunks.push(all.subarray(i, i + cut));
      assert.equal(await filter(chunks), EXPECTED, `chunks of ${cut}`);
    }
  });

  it('streams a huge data line through without holding it', async () => {
    const line = Buffer.concat([Buffer.from('INSERT INTO t VALUES '), Buffer.alloc(5 << 20, 0x61), Buffer.from(';\n')]);
    assert.equal((await filter([line.subarray(0, 100), line.subarray(100)])).length, line.length);
  });
});
