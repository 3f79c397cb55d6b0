// Checking a value against a JSON schema: compiling a schema once with ajv, and turning ajv's
// errors into issues a person reads, each with its config path (`routes[0].upstream.nodes: must
// have at least 1 entry`). Config validation, the extension registry and extension loading all
// check through here, with Gatehouse's own keyword: `x-sent-to-client` (no secret reference in a
// field whose value goes back to clients).
import Ajv, { type ErrorObject, type SchemaValidateFunction, type ValidateFunction } from 'ajv';
import { SENT_TO_CLIENT, type JsonSchema } from '../contracts';
import type { ConfigIssue } from '../errors';
import { looksLikeReference } from '../secrets/reference';
import { joinPath } from './paths';

/**
 * A compiled validator that applies defaults and reports path-prefixed issues. With
 * `allowReferences`, checks that a reference string cannot meet (pattern, length, enum, format)
 * are skipped for it: they apply to the resolved value instead (under the listed pointer prefixes
 * only, when `allowReferences` is an array).
 */
export type SchemaCheck = (data: unknown, basePath: string, allowReferences?: boolean | readonly string[]) => ConfigIssue[];

const SENT_TO_CLIENT_MESSAGE = 'is sent back to clients, so it cannot be a secret reference: write the value itself';

/**
 * The `x-sent-to-client` keyword: no reference anywhere in the field. Every string of its subtree
 * is looked at, whatever the rest of the schema says (a header map, a list, a oneOf), because the
 * resolved value would be served to whoever asks; each one found is an issue at its own path.
 * Object keys are names, never resolved, so they are not looked at.
 */
const noReferenceSentToClient: SchemaValidateFunction = (marked, data, _parent, cxt) => {
  if (marked !== true) return true;
  const errors: Partial<ErrorObject>[] = [];
  const walk = (v: unknown, pointer: string): void => {
    if (typeof v === 'string') {
      if (looksLikeReference(v)) errors.push({ keyword: SENT_TO_CLIENT, instancePath: pointer, params: {}, message: SENT_TO_CLIENT_MESSAGE });
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${pointer}/${i}`));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`);
  };
  walk(data, cxt?.instancePath ?? '');
  noReferenceSentToClient.errors = errors;
  return errors.length === 0;
};

/**
 * A schema compiler. Each registry has its own (ajv caches what it compiled, so a shared one would
 * be state every gateway of the process adds to and none can drop).
 * verbose: errors carry their schema (to name a oneOf's alternatives); their data is never printed
 */
export function schemaCompiler(): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, allowUnionTypes: true, verbose: true });
  // a boolean: a schema that says anything else is refused when it is compiled (an extension at load)
  ajv.addKeyword({ keyword: SENT_TO_CLIENT, schemaType: 'boolean', errors: true, validate: noReferenceSentToClient });
  return ajv;
}

/** Keywords a reference string cannot be expected to satisfy before it is resolved. */
const VALUE_KEYWORDS = new Set(['pattern', 'format', 'minLength', 'maxLength', 'enum', 'const']);

function valueAt(data: unknown, pointer: string): unknown {
  let v: unknown = data;
  if (!pointer) return v;
  for (const raw of pointer.slice(1).split('/')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return v;
}

/**
 * Compile a JSON schema once; the returned check mutates `data` to apply defaults.
 * @param ajv the compiler to use (a registry's own; default a fresh one, for a one-off check)
 */
export function compileSchema(schema: JsonSchema, ajv: Ajv = schemaCompiler()): SchemaCheck {
  const validate: ValidateFunction = ajv.compile(schema);
  return (data, basePath, allowReferences = false) => {
    if (validate(data)) return [];
    let errors = validate.errors ?? [];
    if (allowReferences) {
      errors = errors.filter((e) => {
        if (!VALUE_KEYWORDS.has(e.keyword)) return true;
        if (Array.isArray(allowReferences) && !allowReferences.some((p) => e.instancePath === p || e.instancePath.startsWith(`${p}/`))) return true;
        const v = valueAt(data, e.instancePath);
        return !(typeof v === 'string' && looksLikeReference(v));
      });
      if (errors.length === 0) return [];
    }
    return toIssues(errors, basePath, data);
  };
}

/** A JSON pointer into `data` as a config path; the data tells array indexes from digit keys. */
function pointerToPath(base: string, pointer: string, data: unknown): string {
  if (!pointer) return base;
  let p = base;
  let v = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    p = joinPath(p, Array.isArray(v) && /^[0-9]+$/.test(seg) ? Number(seg) : seg);
    v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[seg] : undefined;
  }
  return p;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

function describe(e: ErrorObject): { extra?: string; message: string } {
  const p = e.params as Record<string, any>;
  switch (e.keyword) {
    case 'required':
      return { extra: p.missingProperty, message: 'is required' };
    case 'additionalProperties':
      return { extra: p.additionalProperty, message: 'is not a known field' };
    case 'minProperties':
      return { message: `must have at least ${plural(p.limit, 'entry', 'entries')}` };
    case 'minItems':
      return { message: `must have at least ${plural(p.limit, 'entry', 'entries')}` };
    case 'maxItems':
      return { message: `must have at most ${plural(p.limit, 'entry', 'entries')}` };
    case 'type': {
      const t = String(p.type).split(',');
      return { message: `must be ${t.map((x) => (x === 'integer' ? 'an integer' : x === 'object' ? 'an object' : x === 'array' ? 'an array' : `a ${x}`)).join(' or ')}` };
    }
    case 'enum':
      return { message: `must be one of: ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'const':
      return { message: `must be ${JSON.stringify(p.allowedValue)}` };
    case 'dependencies':
    case 'dependentRequired':
      return { message: `needs ${p.missingProperty} when ${p.property} is set` };
    case 'pattern':
      return { message: `has an invalid format (must match ${p.pattern})` };
    case 'propertyNames':
      return { message: `has an invalid key ${JSON.stringify(p.propertyName)}` };
    case 'minLength':
      return { message: p.limit === 1 ? 'must not be empty' : `must be at least ${p.limit} characters long` };
    case 'uniqueItems':
      return { message: 'must not contain duplicates' };
    default:
      return { message: e.message ?? `fails ${e.keyword}` };
  }
}

/** Names the alternatives of a oneOf/anyOf from what each branch requires: "token, auth". */
function alternatives(e: ErrorObject): string {
  const branches = Array.isArray(e.schema) ? (e.schema as Array<{ required?: string[] }>) : [];
  const names = branches.map((b) => (Array.isArray(b?.required) && b.required.length ? b.required.join(' + ') : '')).filter((n) => n !== '');
  return names.length === branches.length && names.length > 0 ? names.join(', ') : '';
}

function toIssues(errors: ErrorObject[], basePath: string, data: unknown): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seen = new Set<string>();
  // anyOf/oneOf report each failed branch too: keep the summary only
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const fromBranch = (e: ErrorObject) => unions.some((u) => u !== e && e.schemaPath.startsWith(`${u.schemaPath}/`) && e.instancePath.startsWith(u.instancePath));
  for (const e of errors) {
    // an if/then failure is explained by the "then" branch's own errors
    if (e.keyword === 'if' || fromBranch(e)) continue;
    let d: { extra?: string; message: string };
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf') {
      const alts = alternatives(e);
      const passing = (e.params as { passingSchemas?: number[] | null }).passingSchemas;
      if (!alts) d = { message: 'has an invalid value' };
      else if (Array.isArray(passing)) d = { message: `must set only one of: ${alts}` };
      else d = { message: `must set one of: ${alts}` };
    } else d = describe(e);
    let path = pointerToPath(basePath, e.instancePath, data);
    if (d.extra !== undefined) path = joinPath(path, d.extra);
    const line = `${path}\0${d.message}`;
    if (seen.has(line)) continue;
    seen.add(line);
    out.push({ path, message: d.message });
  }
  return out;
}
