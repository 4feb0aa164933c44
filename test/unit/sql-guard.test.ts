import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { importFlags } from '../../src/engine/restore-db.ts';
import { SqlScanner, sqlGuard } from '../../src/engine/sql-guard.ts';

// What mariadb-dump 10.11 writes (sandbox line, versioned comments, rows on their own lines,
// DELIMITER ;; around a trigger and a procedure), with data that looks like client commands.
const DUMP = [
  '/*M!999999\\- enable the sandbox mode */ ',
  '-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)',
  '--',
  '/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;',
  "/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;",
  'DROP TABLE IF EXISTS `wp_posts`;',
  'CREATE TABLE `wp_posts` (',
  '  `ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT,',
  "  `source` varchar(20) NOT NULL DEFAULT 'system',",
  '  PRIMARY KEY (`ID`)',
  ') ENGINE=InnoDB;',
  'INSERT INTO `wp_posts` VALUES',
  "(1,'run \\\\! touch /tmp/x, or \\\\. /etc/passwd'),",
  "(2,'it\\'s a \\\"quote\\\"; system ls; source /etc/passwd\\nuse other;'),",
  "(3,'/* not a comment */ -- nor this # nor this'),",
  "(4,'C:\\\\Users\\\\T\\\\P'),",
  '(5,"double \\" quoted; \\\\! still data"),',
  "(6,'`backquote` in data'),(7,''''),(8,'a''b');",
  'SELECT 1; SELECT 2;SELECT 3;',
  '/*!40000 ALTER TABLE `wp_posts` ENABLE KEYS */;',
  'DELIMITER ;;',
  '/*!50003 CREATE*/ /*!50003 TRIGGER `t` BEFORE INSERT ON `wp_posts` FOR EACH ROW BEGIN',
  "  SET NEW.source = 'system'; SET @x = 1;",
  'END */;;',
  'CREATE PROCEDURE `p`()',
  "BEGIN SELECT 'use x'; SELECT \\N; END ;;",
  'DELIMITER ;',
  'SELECT `system` FROM `wp_posts` WHERE `source` = 1;',
  '/* system ls */ SELECT 1;',
  '',
].join('\n');

function scan(text: string, chunks: number[] = []): void {
  const s = new SqlScanner();
  const buf = Buffer.from(text, 'utf8');
  let at = 0;
  for (const end of [...chunks, buf.length]) {
    s.push(buf.subarray(at, end));
    at = end;
  }
  s.end();
}

function refusal(text: string): string {
  try {
    scan(text);
  } catch (err) {
    return (err as Error).message;
  }
  return 'not refused';
}

describe('database.sql guard', () => {
  it("passes a mariadb-dump file whose data holds \\!, system, source, quotes and comments", () => {
    scan(DUMP);
  });

  it('reads the same however the file is cut into chunks (strings and pairs split anywhere)', () => {
    const len = Buffer.byteLength(DUMP);
    for (let cut = 1; cut < len; cut++) scan(DUMP, [cut]);
    for (let size = 1; size <= 7; size++) {
      const cuts = [];
      for (let at = size; at < len; at += size) cuts.push(at);
      scan(DUMP, cuts);
    }
  });

  it('refuses each client command, naming the line and the command', () => {
    const cases: [string, RegExp][] = [
      ['SELECT 1;\n\\! touch /tmp/pwned\n', /line 2 holds the client command '\\!'/],
      ['SELECT 1;\nsystem touch /tmp/pwned\n', /line 2 holds the client command 'system'/],
      ['SELECT 1;\nSOURCE /etc/passwd;\n', /line 2 holds the client command 'source'/],
      ['SELECT 1;\n\\. /etc/passwd\n', /line 2 holds the client command '\\.'/],
      ['\\T /tmp/tee.log\n', /line 1 holds the client command '\\T'/],
      ['pager cat > /tmp/x\n', /client command 'pager'/],
      ['tee /tmp/x\n', /client command 'tee'/],
      ['use mysql;\n', /client command 'use'/],
      ['connect other 10.0.0.1\n', /client command 'connect'/],
      ['\\C gbk\n', /client command '\\C'/],
      ['charset gbk\n', /client command 'charset'/],
      ['\\u mysql\n', /client command '\\u'/],
      ['SELECT 1; system ls\n;\n', /line 1 holds the client command 'system'/],
      ['SELECT 1;\n/* hidden */ system ls;\n', /line 2 holds the client command 'system'/],
      ['SELECT 1;\n-- a comment\n  system ls\n', /line 3 holds the client command 'system'/],
      ['/*!40101 \\! ls */;\n', /client command '\\!'/],
      ['SELECT 1 \\! ls\n', /client command '\\!'/],
      ['DELIMITER ;;\nSELECT 1;;\nsystem ls;;\n', /line 3 holds the client command 'system'/],
      ['DELIMITER \\\\\n', /unusual DELIMITER/],
      ["DELIMITER 'x'\n", /unusual DELIMITER/],
      ["INSERT INTO t VALUES ('a\\! b');\n", /'\\!' inside a quoted value/],
      ["INSERT INTO t VALUES ('x\\' \\! touch /tmp/p');\n", /'\\!' inside a quoted value/],
      ['SELECT `a\\!b`;\n', /'\\!' inside a backquoted name/],
      ['-- \\! touch /tmp/p\n', /'\\!' inside a comment/],
      ['system', /client command 'system'/],
      ["SELECT 1;\nLOAD DATA LOCAL INFILE '/etc/shadow' INTO TABLE t;\n", /line 2 holds a LOAD statement, which reads files/],
      ["load xml local infile '/etc/shadow' into table t;\n", /LOAD statement/],
    ];
    for (const [text, re] of cases) assert.match(refusal(text), re, JSON.stringify(text));
  });

  it('finds a command however the file is cut, at the same line', () => {
    const text = "INSERT INTO t VALUES ('a;b', 'it\\'s');\nSELECT 2; \\! touch /tmp/p\n";
    const len = Buffer.byteLength(text);
    for (let cut = 1; cut < len; cut++) {
      assert.throws(() => scan(text, [cut]), /line 2 holds the client command '\\!'/, `cut at ${cut}`);
    }
  });

  it('does not take words that only start like a command, or commands in the middle of a statement', () => {
    scan('systems;\nSELECT system, source FROM t;\nINSERT INTO t VALUES (1)\n, (2);\nSELECT 1 -- system ls\n;\n');
  });

  it('as a stream, sends on nothing past a command and calls onRefuse first', async () => {
    const got: Buffer[] = [];
    let refused = false;
    const guard = sqlGuard(() => (refused = true));
    guard.on('data', (b: Buffer) => got.push(b));
    const input = Readable.from([Buffer.from('SELECT 1;\nSELECT 2;\n\\'), Buffer.from('! touch /tmp/p\n')]);
    await assert.rejects(pipeline(input, guard), /line 3 holds the client command '\\!'/);
    assert.ok(refused);
    assert.ok(!Buffer.concat(got).includes('\\'), 'the backslash was held back');
  });

  it('as a stream, passes a clean file through byte for byte', async () => {
    const chunks = [];
    const buf = Buffer.from(DUMP);
    for (let at = 0; at < buf.length; at += 13) chunks.push(buf.subarray(at, at + 13));
    const out = await buffer(Readable.from(chunks).pipe(sqlGuard()));
    assert.equal(out.toString(), DUMP);
  });

  it('imports with --binary-mode always, and --sandbox when the installed client lists it', async () => {
    const help = execFileSync('mariadb', ['--no-defaults', '--help'], { encoding: 'utf8' });
    const flags = await importFlags('mariadb');
    assert.deepEqual(flags.slice(0, 2), ['--binary-mode', '--local-infile=0']);
    assert.equal(flags.includes('--sandbox'), /^\s*--sandbox\b/m.test(help));
  });
});
