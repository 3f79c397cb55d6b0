// Redaction for Admin API responses: fields a schema marks `writeOnly` (plaintext secrets: a Vault
// token, a literal API key) are shown as "******"; references are shown as written.
import type { JsonSchema } from '../contracts';
import { looksLikeReference } from '../secrets/reference';

export const MASK = '******';

/** Dotted paths of every writeOnly property in a schema (through properties, items, and/or/one/any/if-then-else). */
export function writeOnlyPaths(schema: JsonSchema | undefined): string[] {
  const out = new Set<string>();
  const walk = (s: unknown, prefix: string): void => {
    if (!s || typeof s !== 'object') return;
    const o = s as Record<string, unknown>;
    if (o.writeOnly === true && prefix) out.add(prefix);
    const props = o.properties as Record<string, unknown> | undefined;
    if (props) for (const [k, v] of Object.entries(props)) walk(v, prefix ? `${prefix}.${k}` : k);
    if (o.items) walk(o.items, prefix ? `${prefix}[]` : '[]');
    for (const key of ['allOf', 'anyOf', 'oneOf']) if (Array.isArray(o[key])) for (const b of o[key] as unknown[]) walk(b, prefix);
    for (const key of ['if', 'then', 'else']) if (o[key]) walk(o[key], prefix);
  };
  walk(schema, '');
  return [...out];
}

/** A copy of `value` with the strings at `paths` masked, unless they are references. */
export function redact<T>(value: T, paths: readonly string[]): T {
  if (paths.length === 0 || value === null || typeof value !== 'object') return value;
  const copy = structuredClone(value) as unknown;
  for (const p of paths) maskAt(copy, p.split('.'));
  return copy as T;
}

function maskAt(v: unknown, segs: string[]): void {
  if (v === null || typeof v !== 'object') return;
  const [head, ...rest] = segs;
  if (head.endsWith('[]')) {
    const key = head.slice(0, -2);
    const arr = key ? (v as Record<string, unknown>)[key] : v;
    if (Array.isArray(arr)) arr.forEach((x, i) => (rest.length ? maskAt(x, rest) : maskValue(arr as unknown[], i)));
    return;
  }
  const o = v as Record<string, unknown>;
  if (!(head in o)) return;
  if (rest.length) maskAt(o[head], rest);
  else maskValue(o, head);
}

function maskValue(container: Record<string, unknown> | unknown[], key: string | number): void {
  const x = (container as Record<string | number, unknown>)[key];
  if (typeof x === 'string' && !looksLikeReference(x)) (container as Record<string | number, unknown>)[key] = MASK;
}
