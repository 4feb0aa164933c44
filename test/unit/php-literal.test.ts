import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { WpbError } from '../../src/errors.ts';
import { parsePhpLiterals, tokenize, type PhpDefinition } from '../../src/wordpress/php-literal.ts';

// php-cli is installed by scripts/test-services.sh (npm test): these tests never skip.
const dir = mkdtempSync(join(tmpdir(), 'wpb-php-literal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function constant(src: string, name: string): PhpDefinition {
  const def = parsePhpLiterals(src).constants.get(name);
  assert.ok(def, `${name} not found`);
  return def;
}

function valueOf(src: string, name: string): unknown {
  const def = constant(src, name);
  assert.ok(def.ok, `${name} unevaluable: ${def.ok ? '' : def.reason}`);
  return def.value;
}

function reasonOf(src: string, name: string): string {
  const def = constant(src, name);
  assert.ok(!def.ok, `${name} should be unevaluable`);
  return def.reason;
}

const PHP_TYPE = { string: 'string', integer: 'number', double: 'number', boolean: 'boolean', NULL: 'null' } as const;

/**
 * Defines V0..Vn from the PHP expressions, lets PHP print each value's type and bytes, and
 * checks that parsePhpLiterals reads the same file to the same type and bytes.
 */
function assertSameAsPhp(exprs: string[]): void {
  const defs = exprs.map((e, i) => `define('V${i}', ${e});`).join('\n');
  const file = join(dir, `exprs-${Math.random().toString(36).slice(2)}.php`);
  writeFileSync(file, `<?php\n${defs}\n`);
  const code = `include $argv[1]; $o = []; for ($i = 0; $i < ${exprs.length}; $i++) { $v = constant("V$i"); $o[] = [gettype($v), bin2hex((string) $v)]; } echo json_encode($o);`;
  const php = JSON.parse(execFileSync('php', ['-r', code, '--', file], { encoding: 'utf8' })) as [keyof typeof PHP_TYPE, string][];
  const ours = parsePhpLiterals(readFileSync(file), file).constants;
  exprs.forEach((expr, i) => {
    const def = ours.get(`V${i}`);
    const [type, hex] = php[i] ?? [];
    assert.ok(def?.ok, `${expr}: ${def && !def.ok ? def.reason : 'missing'}`);
    assert.equal(Buffer.from(def.text, 'utf8').toString('hex'), hex, `bytes of ${expr}`);
    assert.equal(def.value === null ? 'null' : typeof def.value, PHP_TYPE[type as keyof typeof PHP_TYPE], `type of ${expr}`);
  });
}

describe('strings compared with PHP', () => {
  test('single-quoted: only \\\\ and \\\' are escapes', () => {
    assertSameAsPhp([
      `'plain'`,
      `'it\\'s'`,
      `'back\\\\slash'`,
      `'trailing backslash\\\\'`,
      `'lone\\ backslash \\n \\t \\x41 \\u{41}'`,
      `'\\\\\\''`, // \\\' -> \'
      `'a\\\\\\\\b'`, // two backslashes
      `'$notvar {$x} \${y}'`,
      `'"double" quotes'`,
      `'ünïcødé 🔑 пароль 密码'`,
      `'real\nnewline'`,
      `'# not // a /* comment */'`,
      `''`,
      `b'binary prefix'`,
    ]);
  });

  test('double-quoted escapes', () => {
    assertSameAsPhp([
      `"\\n\\t\\r\\v\\e\\f\\\\\\$\\""`,
      `"\\0\\7\\101\\1011\\08"`,
      `"\\400\\501"`, // octal overflow wraps, as PHP does (with a warning)
      `"\\x41\\x4\\x4a\\xg\\x"`,
      `"\\u{41}\\u{1F511}\\u{0}\\u{00e9}\\u{10FFFF}"`,
      `"\\u without brace"`,
      `"\\q\\'\\{\\[ unknown escapes stay"`,
      `"$ 1 {\\$ $1 \\$x {} \\{ $"`,
      `"it's"`,
      `"ünï 🔑"`,
      `"ends with backslash\\\\"`,
      `"#hash //slashes"`,
    ]);
  });

  test('heredoc and nowdoc', () => {
    assertSameAsPhp([
      `<<<EOT\nline1\n  line2 \\n \\$ \\"q\\" \\'\nEOT`,
      `<<<"EOT"\nquoted id \\x41\nEOT`,
      `<<<'EOT'\nraw \\n $x {$y} \\\\ \\'\nEOT`,
      `<<<EOT\n    a\n      b\n\n    c\n    EOT`,
      `<<<'EOT'\n\t\ttabbed\n\t\t  more\n\t\tEOT`,
      `<<<EOT\nEOT`,
      `<<<EOT\n\nEOT`,
      `<<<EOT\nEOTX is not the end\nEOT`,
      `<<<EOT\n  a\n \n   \n  b\n  EOT`,
      `<<<EOT\r\nwindows\r\nlines\r\nEOT`,
      `<<<   EOT\nspaces before id\nEOT . ' joined'`,
    ]);
  });

  test('concatenation, numbers, booleans and null', () => {
    assertSameAsPhp([
      `'a' . "b" . 'c'`,
      `'a'.'b'`,
      `('a' . ('b')) . 'c'`,
      `'pass' . 123`,
      `'x' . true . false . null . 'y'`,
      `12345`,
      `-5`,
      `- 5`,
      `+7`,
      `0x1F`,
      `0b101`,
      `0o17`,
      `017`,
      `1_000_000`,
      `9223372036854775807`,
      `9223372036854775808`,
      `-9223372036854775808`,
      `0xFFFFFFFFFFFFFFFF`,
      `1.5`,
      `.5`,
      `1.`,
      `1e3`,
      `1E-5`,
      `-0.0`,
      `1e14`,
      `1e15`,
      `12345678901234.0`,
      `123456789012345.0`,
      `0.30000000000000004`,
      `0.00012345678901234567`,
      `1e100`,
      `'v' . 1.0`,
      `TRUE`,
      `False`,
      `NULL`,
    ]);
  });
});

describe('definitions', () => {
  test('define() with any spacing and case, double or single quoted name', () => {
    const src = `<?php\nDEFINE('A', 'a');\n  define  (  "B"  ,  'b'  )  ;\nDefine(\n  'C',\n  'c'\n);\ndefine('D','d');`;
    assert.equal(valueOf(src, 'A'), 'a');
    assert.equal(valueOf(src, 'B'), 'b');
    assert.equal(valueOf(src, 'C'), 'c');
    assert.equal(valueOf(src, 'D'), 'd');
    assert.equal(constant(src, 'C').line, 4);
  });

  test('define() with a third argument, a leading backslash, or named arguments', () => {
    const src = `<?php\ndefine('A', 'a', true);\n\\define('B', 'b');\ndefine(value: 'c', constant_name: 'C');`;
    assert.equal(valueOf(src, 'A'), 'a');
    assert.equal(valueOf(src, 'B'), 'b');
    assert.equal(valueOf(src, 'C'), 'c');
  });

  test('const, including lists', () => {
    const src = `<?php\nconst A = 'a';\nCONST B = 1, C = 'c' . 'd';`;
    assert.equal(valueOf(src, 'A'), 'a');
    assert.equal(valueOf(src, 'B'), 1);
    assert.equal(valueOf(src, 'C'), 'cd');
    assert.equal(constant(src, 'C').kind, 'const');
  });

  test('variables: the last assignment wins, .= appends', () => {
    const lit = parsePhpLiterals(`<?php\n$table_prefix  = 'wp_';\n$table_prefix = 'site2_';\n$x = 'a';\n$x .= 'b';`);
    const prefix = lit.variables.get('table_prefix');
    assert.ok(prefix?.ok);
    assert.equal(prefix.value, 'site2_');
    assert.equal(prefix.line, 3);
    const x = lit.variables.get('x');
    assert.ok(x?.ok);
    assert.equal(x.value, 'ab');
  });

  test('the first define() wins, as in PHP', () => {
    const src = `<?php\ndefine('A', 'first');\ndefine('A', 'second');`;
    assert.equal(valueOf(src, 'A'), 'first');
  });

  test('comments hide defines: //, #, /* */ and up to ?>', () => {
    const src = [
      '<?php',
      "// define('A', 'line comment');",
      "# define('A', 'hash comment');",
      "/* define('A', 'block');",
      "   define('B', 'block'); */",
      "/** define('C', 'doc'); */",
      "// comment ends at the tag ?>html define('A', 'html') <?php",
      "define('A', 'real'); // define('B', 'trailing')",
      "define('B', /* inline */ 'b' # hash",
      ");",
    ].join('\n');
    const lit = parsePhpLiterals(src);
    assert.deepEqual([...lit.constants.keys()], ['A', 'B']);
    assert.equal(valueOf(src, 'A'), 'real');
    assert.equal(valueOf(src, 'B'), 'b');
  });

  test('text outside <?php ?> is ignored, and ?> ends a statement', () => {
    const src = "define('X', 'html');\n<?php define('A', 'a') ?>\ndefine('Y', 'html')\n<?PHP\ndefine('B', 'b');";
    assert.deepEqual([...parsePhpLiterals(src).constants.keys()], ['A', 'B']);
  });

  test('comment markers inside strings are not comments', () => {
    const src = `<?php\ndefine('AUTH_KEY', 'ab/*cd#ef');\ndefine('SALT', "x*/y//z");\ndefine('A', 'a');`;
    assert.equal(valueOf(src, 'AUTH_KEY'), 'ab/*cd#ef');
    assert.equal(valueOf(src, 'SALT'), 'x*/y//z');
    assert.equal(valueOf(src, 'A'), 'a');
  });

  test('method calls, static calls and function declarations named define are not defines', () => {
    const src = `<?php\n$o->define('A', 'x');\nFoo::define('B', 'x');\nfunction define2() {}\n`;
    assert.equal(parsePhpLiterals(src).constants.size, 0);
  });

  test('strings may hold the bytes of any encoding; invalid UTF-8 is reported', () => {
    const src = Buffer.concat([Buffer.from("<?php\ndefine('A', '"), Buffer.from([0xe9]), Buffer.from("');\ndefine('B', \"\\xC3\\xA9\");")]);
    const lit = parsePhpLiterals(src);
    const a = lit.constants.get('A');
    assert.ok(a && !a.ok);
    assert.match(a.reason, /not valid UTF-8/);
    const c = parsePhpLiterals(`<?php define('C', "\\400\\777");`).constants.get('C');
    assert.ok(c && !c.ok, 'bytes 00 ff');
    const b = lit.constants.get('B');
    assert.ok(b?.ok);
    assert.equal(b.value, 'é');
  });
});

describe('values wpbackup cannot evaluate', () => {
  const cases: [string, string][] = [
    [`getenv('DB_PASSWORD')`, 'getenv()'],
    [`$_ENV['DB_PASSWORD']`, "$_ENV['DB_PASSWORD']"],
    [`$_SERVER["DB_PASS"] ?? 'x'`, "$_SERVER['DB_PASS']"],
    [`'prefix' . getenv('X')`, 'getenv()'],
    [`SOME_CONSTANT`, 'the constant SOME_CONSTANT'],
    [`__DIR__ . '/'`, '__DIR__'],
    [`"pw-$secret"`, 'the variable $secret inside a double-quoted string'],
    [`"pw-{$cfg['pw']}"`, 'the variable $cfg inside a double-quoted string'],
    [`"pw-\${x}"`, 'the variable ${...} inside a double-quoted string'],
    [`<<<EOT\npw $x\nEOT`, 'the variable $x inside a double-quoted string'],
    ['`cat /etc/pw`', 'a shell command in backticks'],
    [`1 + 2`, 'an expression using +'],
    [`getenv('A') ?: 'b'`, 'getenv()'],
    [`'a' ?: 'b'`, 'an expression using ?'],
    [`(string) 5`, 'a (string) cast'],
    [`['a']`, 'an array'],
    [`-'5'`, 'an expression using -'],
  ];
  for (const [expr, reason] of cases) {
    test(expr, () => assert.equal(reasonOf(`<?php\ndefine('X', ${expr});`, 'X'), reason));
  }

  test('line numbers are kept and later definitions still read', () => {
    const src = `<?php\n\ndefine( 'DB_PASSWORD', getenv( 'PW' ) );\ndefine( 'DB_NAME', 'wp' );`;
    assert.equal(constant(src, 'DB_PASSWORD').line, 3);
    assert.equal(valueOf(src, 'DB_NAME'), 'wp');
  });

  test('variables changed by other operators', () => {
    const lit = parsePhpLiterals(`<?php\n$n = 1;\n$n += 2;\n$m = 'a';\n$m .= getenv('X');`);
    const n = lit.variables.get('n');
    assert.ok(n && !n.ok);
    assert.match(n.reason, /\+= on line 3/);
    assert.ok(!lit.variables.get('m')?.ok);
  });
});

describe('conditions', () => {
  test('a define inside if (!defined(...)) is read and flagged conditional', () => {
    const src = `<?php\nif ( ! defined( 'WP_DEBUG' ) ) {\n\tdefine( 'WP_DEBUG', false );\n}\ndefine( 'A', 'a' );`;
    const d = constant(src, 'WP_DEBUG');
    assert.ok(d.ok);
    assert.equal(d.value, false);
    assert.equal(d.conditional, true);
    assert.equal(constant(src, 'A').conditional, false);
  });

  test('defined() || define() and brace-less if bodies are conditional', () => {
    const src = `<?php\ndefined('A') || define('A', 1);\nif (x()) define('B', 2);\ndefine('C', 3);\nif (x()): define('D', 4); endif;\ndefine('E', 5);`;
    assert.deepEqual(
      ['A', 'B', 'C', 'D', 'E'].map((n) => constant(src, n).conditional),
      [true, true, false, true, false],
    );
  });

  test('&&, || and ?type inside parentheses do not make what follows conditional', () => {
    const src = `<?php\nif ( isset( $a ) && $a === 'https' ) {\n  $b = 1;\n}\nfunction f(?string $x) { return $x ?? 'y'; }\nfoo($a || $b);\ndefine('A', 'a');`;
    assert.equal(constant(src, 'A').conditional, false);
  });

  test('different values in if/else branches cannot be chosen between', () => {
    const src = `<?php\nif ($_SERVER['HTTP_HOST'] === 'staging') {\n  define('DB_NAME', 'staging');\n} else {\n  define('DB_NAME', 'prod');\n}`;
    assert.match(reasonOf(src, 'DB_NAME'), /if\/else \(defined differently on lines 3 and 5/);
  });

  test('the same value in both branches is fine', () => {
    const src = `<?php\nif (a()) { define('A', 'x'); } else { define('A', 'x'); }`;
    assert.equal(valueOf(src, 'A'), 'x');
  });

  test('a conditional variable assignment that differs is ambiguous', () => {
    const lit = parsePhpLiterals(`<?php\n$table_prefix = 'wp_';\nif (is_staging()) {\n  $table_prefix = 'stg_';\n}`);
    const def = lit.variables.get('table_prefix');
    assert.ok(def && !def.ok);
    assert.match(def.reason, /lines 2 and 4/);
  });
});

describe('includes and syntax errors', () => {
  test('include and require statements are listed', () => {
    const lit = parsePhpLiterals(`<?php\nrequire_once( __DIR__ . '/db.php' );\ninclude 'x.php';\nrequire_once ABSPATH . 'wp-settings.php';`);
    assert.deepEqual(lit.includes, [
      { line: 2, text: "(__DIR__ . '/db.php')" },
      { line: 3, text: "'x.php'" },
      { line: 4, text: "ABSPATH . 'wp-settings.php'" },
    ]);
  });

  const errors: [string, RegExp][] = [
    [`<?php\n\ndefine('A', 'unterminated);`, /^wp-config\.php:3: unterminated single-quoted string$/],
    [`<?php\ndefine('A', "unterminated);`, /^wp-config\.php:2: unterminated double-quoted string$/],
    [`<?php\ndefine('A', <<<EOT\nnever closed\n);`, /^wp-config\.php:2: heredoc <<<EOT is never closed$/],
    [`<?php\ndefine('A', "\\u{110000}");`, /invalid \\u\{...\} escape/],
    [`<?php\ndefine('A', "\\u{zz}");`, /invalid \\u\{...\} escape/],
    [`<?php\ndefine('A', <<<EOT\n  a\n b\n  EOT);`, /indented less than its closing marker/],
    [`<?php\ndefine('A', <<<EOT\n\t\ta\n  EOT);`, /mixes tabs and spaces/],
    [`<?php\ndefine('A', <<<EOT\n\ta\n \tEOT);`, /mixes tabs and spaces/],
    [`<?php\ndefine('A', 08);`, /invalid numeric literal 08/],
  ];
  for (const [src, message] of errors) {
    test(`syntax error: ${message.source}`, () => {
      assert.throws(
        () => parsePhpLiterals(src, 'wp-config.php'),
        (err: unknown) => err instanceof WpbError && err.kind === 'bad_input' && message.test(err.message),
      );
    });
  }

  test('an unterminated block comment just ends the file, as in PHP', () => {
    assert.equal(parsePhpLiterals(`<?php\ndefine('A', 'a');\n/* define('B', 'b');`).constants.size, 1);
  });

  test('tokenize keeps line numbers across comments, strings and heredocs', () => {
    const tokens = tokenize(`<?php\n/* 1\n2 */ $a = 'x\ny';\n$b = <<<E\n1\n2\nE;\n$c`);
    assert.deepEqual(
      tokens.filter((t) => t.kind === 'var').map((t) => [t.kind === 'var' ? t.text : '', t.line]),
      [['a', 3], ['b', 5], ['c', 9]],
    );
  });
});
