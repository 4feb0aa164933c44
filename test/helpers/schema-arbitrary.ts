import fc from 'fast-check';

// Values a JSON schema (as the OpenAPI document prints it) accepts, as fast-check arbitraries,
// for the keywords the API's schemas use: type (or a list of types), nullable, enum, const,
// anyOf/oneOf, pattern, min/maxLength, minimum/maximum, items, min/maxItems, uniqueItems,
// properties, required, additionalProperties, min/maxProperties, and an object's oneOf of
// `required` lists (send exactly one of these). Anything else throws: a schema the fuzzer cannot
// read must be taught here, not skipped.

export interface Schema {
  type?: string | string[];
  nullable?: boolean;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  minProperties?: number;
  maxProperties?: number;
  [k: string]: unknown;
}

/** Strings for named things: a pool of fixed values mixed into every string of that name. */
export type Hints = (name: string | undefined, schema: Schema) => fc.Arbitrary<unknown> | undefined;

const KNOWN = new Set([
  'type', 'nullable', 'enum', 'const', 'anyOf', 'oneOf', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'items', 'minItems', 'maxItems',
  'uniqueItems', 'properties', 'required', 'additionalProperties', 'minProperties', 'maxProperties', 'description', 'title', 'default', 'examples',
  // TypeBox's marks, ignored by validators.
  'kind', 'static', 'params',
]);

const MAX_ITEMS = 3;
const MAX_STRING = 40;

function lengthCapped(a: fc.Arbitrary<string>, s: Schema): fc.Arbitrary<string> {
  const min = s.minLength ?? 0;
  const max = s.maxLength ?? Infinity;
  return a.filter((v) => [...v].length >= min && [...v].length <= max);
}

function stringArb(s: Schema): fc.Arbitrary<string> {
  if (s.pattern !== undefined) return lengthCapped(fc.stringMatching(new RegExp(s.pattern, 'u')), s);
  const min = s.minLength ?? 0;
  const max = Math.max(min, Math.min(s.maxLength ?? MAX_STRING, MAX_STRING));
  return fc.string({ minLength: min, maxLength: max, unit: 'grapheme' }).filter((v) => [...v].length >= min && [...v].length <= (s.maxLength ?? Infinity));
}

function numberArb(s: Schema, integer: boolean): fc.Arbitrary<number> {
  const min = s.minimum ?? -1e9;
  const max = s.maximum ?? 1e9;
  const edges = fc.constantFrom(...new Set([min, max, Math.max(min, Math.min(max, 0)), Math.max(min, Math.min(max, 1))]));
  return fc.oneof(edges, integer ? fc.integer({ min: Math.max(min, Number.MIN_SAFE_INTEGER), max: Math.min(max, Number.MAX_SAFE_INTEGER) }) : fc.double({ min, max, noNaN: true }));
}

/** The object's keys chosen: required ones always, optional ones or not; oneOf lists of required: exactly one list. */
function objectArb(s: Schema, hints: Hints): fc.Arbitrary<Record<string, unknown>> {
  const props = s.properties ?? {};
  // Each property's arbitrary made once (making one, a pattern's above all, costs more than drawing from it).
  const values = Object.fromEntries(Object.entries(props).map(([k, p]) => [k, valueOf(p, hints, k)]));
  const branches = (s.oneOf ?? []).map((b) => b.required ?? []);
  const variant = (b: number): fc.Arbitrary<Record<string, unknown>> => {
    const required = new Set([...(s.required ?? []), ...(b >= 0 ? (branches[b] ?? []) : [])]);
    const banned = new Set(branches.flatMap((r, i) => (i === b ? [] : r)).filter((k) => !required.has(k)));
    const model = Object.fromEntries(Object.entries(values).filter(([k]) => !banned.has(k)));
    return fc.record(model, { requiredKeys: Object.keys(model).filter((k) => required.has(k)) }).filter((o) => {
      const n = Object.keys(o).length;
      return n >= (s.minProperties ?? 0) && n <= (s.maxProperties ?? Infinity);
    });
  };
  return branches.length > 0 ? fc.oneof(...branches.map((_b, i) => variant(i))) : variant(-1);
}

function typed(type: string, s: Schema, hints: Hints, name: string | undefined): fc.Arbitrary<unknown> {
  switch (type) {
    case 'null': return fc.constant(null);
    case 'boolean': return fc.boolean();
    case 'integer': return numberArb(s, true);
    case 'number': return numberArb(s, false);
    case 'string': return stringArb(s);
    case 'array': {
      const item = s.items ? valueOf(s.items, hints, name) : fc.jsonValue();
      const minLength = s.minItems ?? 0;
      const maxLength = Math.max(minLength, Math.min(s.maxItems ?? MAX_ITEMS, MAX_ITEMS));
      return s.uniqueItems ? fc.uniqueArray(item, { minLength, maxLength, selector: (v) => JSON.stringify(v) }) : fc.array(item, { minLength, maxLength });
    }
    case 'object': return objectArb(s, hints);
    default: throw new Error(`schema-arbitrary: unknown type ${type}`);
  }
}

/** Values the schema accepts. */
export function valueOf(s: Schema, hints: Hints, name?: string): fc.Arbitrary<unknown> {
  const unknown = Object.keys(s).filter((k) => !KNOWN.has(k));
  if (unknown.length > 0) throw new Error(`schema-arbitrary: teach me ${unknown.join(', ')} (in ${JSON.stringify(s).slice(0, 200)})`);
  const base = plain(s, hints, name);
  const hinted = hints(name, s);
  const value = hinted ? fc.oneof({ arbitrary: hinted, weight: 3 }, { arbitrary: base, weight: 1 }) : base;
  return s.nullable ? fc.oneof(fc.constant(null), value) : value;
}

function plain(s: Schema, hints: Hints, name: string | undefined): fc.Arbitrary<unknown> {
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  if (s.anyOf) return fc.oneof(...s.anyOf.map((b) => valueOf(b, hints, name)));
  if (s.oneOf && s.type !== 'object') return fc.oneof(...s.oneOf.map((b) => valueOf(b, hints, name)));
  if (Array.isArray(s.type)) return fc.oneof(...s.type.map((t) => typed(t, s, hints, name)));
  if (s.type !== undefined) return typed(s.type, s, hints, name);
  if (s.properties) return objectArb(s, hints);
  return fc.jsonValue();
}
