import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toDollarParams } from '../../../src/server/db/placeholders.ts';

describe('toDollarParams', () => {
  it('numbers ? placeholders in order', () => {
    assert.equal(toDollarParams('UPDATE t SET a = ?, b = ? WHERE id = ?'), 'UPDATE t SET a = $1, b = $2 WHERE id = $3');
  });

  it('leaves ? alone in string literals, quoted identifiers and comments', () => {
    const sql = `SELECT 'a?''b?', "we?ird" FROM t -- why?\nWHERE x = ? /* and ? */ AND y = ?`;
    assert.equal(toDollarParams(sql), `SELECT 'a?''b?', "we?ird" FROM t -- why?\nWHERE x = $1 /* and ? */ AND y = $2`);
  });

  it('survives unterminated quotes and comments', () => {
    assert.equal(toDollarParams("SELECT ? 'open ?"), "SELECT $1 'open ?");
    assert.equal(toDollarParams('SELECT ? /* open ?'), 'SELECT $1 /* open ?');
  });
});
