// Redaction for Admin API responses: fields a schema marks `writeOnly` (plaintext secrets: a Vault
// token, a literal API key) are shown as "******"; references are shown as written.
import type { JsonSchema, SecretFieldPaths } from '../contracts';
import type { Registry } from '../config/registry';
import { mapStringsAt } from '../config/paths';
import { sslSchema, upstreamSchema } from '../config/schema';
import { looksLikeReference } from '../secrets/reference';

export const MASK = '******';

/** An SSL resource's secret fields: its private keys (`key`, `keys[*]`). */
export const SSL_SECRET_PATHS: readonly string[] = Object.freeze(writeOnlyPaths(sslSchema));

/** An upstream's secret fields: its TLS client key (`tls.client_key`). */
export const UPSTREAM_SECRET_PATHS: readonly string[] = Object.freeze(writeOnlyPaths(upstreamSchema));

/** The secret fields of a route's own upstream (`upstream.tls.client_key`). */
const ROUTE_UPSTREAM_SECRET_PATHS: readonly string[] = Object.freeze(UPSTREAM_SECRET_PATHS.map((p) => `upstream.${p}`));

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
  mapStringsAt(copy, paths, (x) => (looksLikeReference(x) ? x : MASK));
  return copy as T;
}

/**
 * The writeOnly field paths of one resource, from the schemas of its plugins (routes, consumers)
 * or its provider (secret resources), and the keys of SSL resources and of upstreams' TLS (a
 * route's own upstream too): what is masked in responses and encrypted at rest.
 */
export function secretFieldPaths(reg: Registry): SecretFieldPaths {
  return (kind, item) => {
    const o = (item ?? {}) as Record<string, unknown>;
    if (kind === 'secrets') {
      const id = typeof o.id === 'string' ? o.id : '';
      return writeOnlyPaths(reg.providers.get(id.slice(0, id.indexOf('/')))?.schema);
    }
    if (kind === 'ssls') return SSL_SECRET_PATHS;
    if (kind === 'upstreams') return UPSTREAM_SECRET_PATHS;
    if (kind !== 'consumers' && kind !== 'routes') return [];
    const plugins = o.plugins !== null && typeof o.plugins === 'object' ? (o.plugins as Record<string, unknown>) : {};
    const out: string[] = kind === 'routes' ? [...ROUTE_UPSTREAM_SECRET_PATHS] : [];
    for (const name of Object.keys(plugins)) {
      const p = reg.plugins.get(name);
      for (const w of writeOnlyPaths(kind === 'consumers' ? p?.consumerSchema : p?.schema)) out.push(`plugins.${name}.${w}`);
    }
    return out;
  };
}
