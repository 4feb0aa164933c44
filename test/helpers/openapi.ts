import { createRequire } from 'node:module';

// Calling the API the way the document-driven tests (openapi-fuzz, route-matrix) do, and holding
// each answer to the OpenAPI document: its status documented, its media type the documented one,
// and a JSON body valid against the documented schema, closed (a property the document does not
// list is an error). Ajv is Fastify's own (v8, through @fastify/ajv-compiler): no dependency of ours.

type AjvValidate = ((data: unknown) => boolean) & { errors?: { instancePath: string; message?: string; params?: unknown }[] | null };
interface AjvLike {
  compile(schema: object): AjvValidate;
}
const requireFromFastify = createRequire(createRequire(import.meta.url).resolve('@fastify/ajv-compiler'));
const AjvModule = requireFromFastify('ajv') as { default: new (opts: object) => AjvLike };

export type Schema = Record<string, unknown>;

export interface Answer {
  status: number;
  /** The media type without parameters ('' when none). */
  contentType: string;
  /** Parsed JSON, the text if not JSON, or undefined (no body, or an event stream left unread). */
  body: unknown;
}

/** One request; an event stream is read up to its headers, then dropped. */
export async function call(url: string, init: { method: string; headers?: Record<string, string>; body?: string }): Promise<Answer> {
  const ac = new AbortController();
  const res = await fetch(url, { method: init.method, headers: init.headers, body: init.method === 'GET' ? undefined : init.body, signal: ac.signal });
  const contentType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
  if (contentType === 'text/event-stream') {
    ac.abort();
    return { status: res.status, contentType, body: undefined };
  }
  const text = await res.text();
  try {
    return { status: res.status, contentType, body: text ? JSON.parse(text) : undefined };
  } catch {
    return { status: res.status, contentType, body: text };
  }
}

/** The schema with every object that does not say otherwise closed (additionalProperties: false). */
export function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Schema = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, k === 'enum' ? v : closed(v)]));
  if ((out.type === 'object' || out.properties) && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema?: Schema }> }> }>>;
}

/** Holds answers to the document: check(method, path, answer) says what is wrong, or undefined. */
export function answerChecker(doc: Doc): (method: string, path: string, answer: Answer) => string | undefined {
  const ajv = new AjvModule.default({ strict: false, allErrors: true, validateFormats: false });
  const compiled = new Map<string, AjvValidate>();
  return (method, path, answer) => {
    const responses = doc.paths[path]?.[method.toLowerCase()]?.responses;
    if (!responses) return `${method} ${path} is not in the document`;
    const documented = responses[String(answer.status)];
    if (!documented) return `answered ${answer.status}, which it does not document (${Object.keys(responses).join(', ')})`;
    const content = documented.content ?? {};
    if (Object.keys(content).length === 0) return answer.body === undefined ? undefined : `answered ${answer.status} with a body, documented as none: ${JSON.stringify(answer.body).slice(0, 200)}`;
    if (!(answer.contentType in content)) return `answered ${answer.status} as ${answer.contentType || 'no media type'}, documented as ${Object.keys(content).join(', ')}`;
    if (answer.contentType !== 'application/json') return undefined;
    const key = `${method} ${path} ${answer.status}`;
    let validate = compiled.get(key);
    if (!validate) {
      validate = ajv.compile(closed(content['application/json']?.schema ?? {}) as object);
      compiled.set(key, validate);
    }
    if (validate(answer.body)) return undefined;
    const why = (validate.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`).join('; ');
    return `answered ${answer.status} with a body its schema refuses (${why}): ${JSON.stringify(answer.body).slice(0, 300)}`;
  };
}
