import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closed, type Schema } from '../../helpers/openapi.ts';
import { DIALECTS, startTestServer, type TestServer } from '../../helpers/server.ts';

// The OpenAPI document describes every answer: each success it lists has the schema of its body
// (204: none), each error the error body. Clients and the dashboard are generated from it; the
// fuzzer and the route matrix hold the real answers to these schemas (helpers/openapi.ts).

interface Response {
  description?: string;
  content?: Record<string, { schema?: Schema }>;
}
type Doc = { paths: Record<string, Record<string, { responses: Record<string, Response> }>> };

/** A schema that says something about a body (not just a description). */
const describes = (s: Schema | undefined): boolean => s !== undefined && ['type', 'anyOf', 'oneOf', 'allOf', '$ref'].some((k) => k in s);

function operations(doc: Doc): [string, Record<string, Response>][] {
  return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([m, op]): [string, Record<string, Response>] => [`${m.toUpperCase()} ${path}`, op.responses]));
}

/** The properties a JSON body of this operation and status may have, at a dotted path ('' is the top). */
function propertiesOf(doc: Doc, method: string, path: string, status: string, at = ''): string[] {
  let s = doc.paths[path]?.[method]?.responses[status]?.content?.['application/json']?.schema;
  for (const key of at ? at.split('.') : []) s = (s?.properties as Record<string, Schema> | undefined)?.[key];
  const branches = (s?.anyOf as Schema[] | undefined) ?? (s ? [s] : []);
  return branches.flatMap((b) => Object.keys((b.properties as Record<string, unknown> | undefined) ?? {}));
}

for (const dialect of DIALECTS) {
  describe(`OpenAPI document (${dialect})`, () => {
    let t: TestServer;
    let doc: Doc;
    before(async () => {
      t = await startTestServer(dialect);
      doc = (await t.api('GET', '/api/openapi.json', { token: null })).body as Doc;
    });
    after(() => t.close());

    it('gives every success of every operation the schema of its body (204: no body)', () => {
      const missing: string[] = [];
      const ops = operations(doc);
      assert.ok(ops.length > 50, `only ${ops.length} operations`);
      for (const [name, responses] of ops) {
        const successes = Object.entries(responses).filter(([s]) => s.startsWith('2'));
        if (successes.length === 0) missing.push(`${name}: no success documented`);
        for (const [status, r] of successes) {
          const media = Object.entries(r.content ?? {});
          if (status === '204') {
            if (media.length > 0) missing.push(`${name} 204: documents a body`);
            continue;
          }
          if (media.length === 0) missing.push(`${name} ${status}: no body documented`);
          for (const [type, m] of media) if (!describes(m.schema)) missing.push(`${name} ${status} ${type}: no schema, only ${JSON.stringify(m.schema)}`);
          if (!r.description || /^(Success|Default Response)$/.test(r.description)) missing.push(`${name} ${status}: no description of its own`);
        }
      }
      assert.deepEqual(missing, []);
    });

    it('gives every error the error body, with detail on the routes the original system calls', () => {
      const wrong: string[] = [];
      for (const [name, responses] of operations(doc)) {
        for (const [status, r] of Object.entries(responses).filter(([s]) => /^[45]/.test(s))) {
          const schema = r.content?.['application/json']?.schema;
          const error = (schema?.properties as Record<string, Schema> | undefined)?.error;
          if (!error || !(error.required as string[] | undefined)?.includes('message')) wrong.push(`${name} ${status}: no { error: { code, message } } body`);
        }
      }
      assert.deepEqual(wrong, []);
      for (const [method, path] of [['post', '/api/v1/auth/login'], ['get', '/api/v1/sites/{id}'], ['post', '/api/v1/sites/{id}/backup/start'], ['get', '/api/v1/sites/{id}/backup/status'], ['post', '/api/v1/daemon/backup/reset/{site_id}']] as const) {
        for (const status of ['400', '401', '403']) assert.ok(propertiesOf(doc, method, path, status).includes('detail'), `${method} ${path} ${status} documents detail`);
      }
    });

    it("documents the fields the original system's shell clients read", () => {
      const has = (method: string, path: string, status: string, fields: string[], at = ''): void => {
        const props = propertiesOf(doc, method, path, status, at);
        for (const f of fields) assert.ok(props.includes(f), `${method.toUpperCase()} ${path} ${status} documents ${at ? `${at}.` : ''}${f} (has ${props.join(', ')})`);
      };
      has('post', '/api/v1/auth/login', '200', ['access_token', 'token', 'token_type']);
      has('get', '/api/v1/sites/{id}', '200', ['name', 'wp_path']);
      has('post', '/api/v1/sites/{id}/backup/start', '202', ['success']);
      has('get', '/api/v1/sites/{id}/backup/status', '200', ['status', 'progress', 'message', 'error']);
      has('post', '/api/v1/daemon/backup/reset/{site_id}', '200', ['success', 'message', 'cleanup']);
      has('post', '/api/v1/daemon/backup/reset/{site_id}', '200', ['dirs_removed', 'space_freed_mb'], 'cleanup');
      has('get', '/api/v1/backups/backups/{id}/download', '200', ['download_url', 'url']);
    });

    it('closes objects for the tests without changing anything else', () => {
      const s = { type: 'object', properties: { a: { type: 'object', additionalProperties: true }, b: { type: 'string', enum: ['object'] } } };
      assert.deepEqual(closed(s), { type: 'object', additionalProperties: false, properties: { a: { type: 'object', additionalProperties: true }, b: { type: 'string', enum: ['object'] } } });
    });
  });
}
