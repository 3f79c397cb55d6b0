// Checking an OpenAPI document from outside: the third-party validator, JSON Schema 2020-12
// compilation of its component schemas (ajv, strict), and matching a request to its paths.
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import { SENT_TO_CLIENT } from '../../core/contracts';

type Json = Record<string, unknown>;

/** The base under which each component schema is registered with ajv (never fetched). */
const BASE = 'https://gatehouse.test/components/schemas/';

/** A copy of `schema` whose `#/components/schemas/<name>…` references point at ajv's copies. */
function rebase(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(rebase);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) {
    const m = k === '$ref' && typeof v === 'string' ? /^#\/components\/schemas\/([^/]+)(.*)$/.exec(v) : null;
    out[k] = m ? `${BASE}${decodeURIComponent(m[1])}#${m[2]}` : rebase(v);
  }
  return out;
}

/**
 * Draft-07 keywords ajv's 2020 class still knows (for old schemas): removed, so that strict mode
 * refuses them. (`definitions` cannot be removed; a left-over one shows as a `$ref` to `$defs` that
 * does not resolve.)
 */
const DRAFT7_ONLY = ['dependencies', 'additionalItems'];

/**
 * An ajv 2020-12 instance holding every component schema of `doc`, in strict schema mode (an
 * unknown keyword, draft-07's `dependencies` and `additionalItems` included, is an
 * error; each schema is checked against the 2020-12 meta-schema, which refuses a tuple `items`
 * array). @throws when a component is not valid JSON Schema 2020-12
 */
export function componentsAjv(doc: Json): { names: string[]; compile(schema: unknown): ValidateFunction } {
  const ajv = new Ajv2020({ strict: true, strictTypes: false, strictTuples: false, strictRequired: false, allowUnionTypes: true, allErrors: true });
  for (const k of DRAFT7_ONLY) if (ajv.getKeyword(k)) ajv.removeKeyword(k);
  // Gatehouse's own annotation, an OpenAPI specification extension (`x-`): known, so strict mode
  // still refuses any other keyword
  ajv.addKeyword({ keyword: SENT_TO_CLIENT, schemaType: 'boolean' });
  const schemas = ((doc.components as Json).schemas ?? {}) as Json;
  for (const [name, s] of Object.entries(schemas)) ajv.addSchema({ ...(rebase(s) as Json), $id: `${BASE}${name}` });
  return { names: Object.keys(schemas), compile: (schema) => ajv.compile(rebase(schema) as Json) };
}

/** `{ $ref }` to one component, for compiling it. */
export const componentRef = (name: string) => ({ $ref: `#/components/schemas/${encodeURIComponent(name)}` });

/**
 * The path item of `doc` a request path falls under, as OpenAPI matches them: concrete paths before
 * templated ones (`…/{id}/refresh` before `…/{id}/{path}`). A parameter is one segment, except
 * `{path}` (the sub-path of a SubPath PATCH), which the document says may be several.
 */
export function matchPath(doc: Json, path: string): { template: string; item: Json } | undefined {
  const candidates: Array<{ template: string; item: Json; params: number }> = [];
  for (const [template, item] of Object.entries(doc.paths as Json)) {
    const re = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([^}]+)\}/g, (_, name: string) => (name === 'path' ? '.+' : '[^/]+'));
    if (new RegExp(`^${re}$`).test(path)) candidates.push({ template, item: item as Json, params: (template.match(/\{/g) ?? []).length });
  }
  candidates.sort((a, b) => a.params - b.params);
  return candidates[0];
}

/** A draft-07 schema with every keyword the translation rewrites, as an older extension may have. */
export const legacySchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  definitions: { port: { type: 'integer', minimum: 1, maximum: 65535 }, name: { type: 'string', minLength: 1 } },
  properties: {
    port: { $ref: '#/definitions/port' },
    pair: { type: 'array', items: [{ $ref: '#/definitions/name' }, { $ref: '#/definitions/port' }], additionalItems: false },
    list: { type: 'array', items: { $ref: '#/definitions/name' }, additionalItems: false },
    user: { type: 'string' },
    pass: { type: 'string' },
    // a property named like a keyword is a name, not a keyword
    dependencies: { type: 'array', items: [{ type: 'string' }] },
    self: { $ref: '#' },
  },
  dependencies: { user: ['pass'], pass: { required: ['user'] } },
  additionalProperties: false,
};

/** Configs that {@link legacySchema} accepts and refuses, each for one of its keywords. */
export const legacySamples: readonly unknown[] = [
  {},
  { port: 80 },
  { port: 0 },
  { port: '80' },
  { pair: ['a', 80] },
  { pair: ['a', 80, 'extra'] },
  { pair: ['', 80] },
  { pair: ['a', 0] },
  { list: ['a', 'b'] },
  { list: ['a', ''] },
  { user: 'u' },
  { pass: 'p' },
  { user: 'u', pass: 'p' },
  { dependencies: ['x', 1] },
  { dependencies: [1] },
  { self: { port: 80 } },
  { self: { port: 0 } },
  { self: { self: { user: 'u' } } },
  { other: 1 },
];
