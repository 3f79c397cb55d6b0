// Secret references: `$env://NAME[/field]` and `$secret://<manager>/<id>/<path...>/<field>[#version]`,
// parsed once at config load into a canonical key. Malformed references are config errors.

/** A parsed reference. `key` identifies the cached value; `text` is what the config says. */
export interface SecretRef {
  /** The reference as written (safe to log: it names a secret, it is not one). */
  readonly text: string;
  /** `env` or the manager of a `$secret://` reference. */
  readonly manager: string;
  /** The secret resource id `<manager>/<id>`; `env` for environment references. */
  readonly resource: string;
  /** Segments between the resource id and the field, joined by '/'. For env: the variable name. */
  readonly path: string;
  /** The last segment; for env, the JSON field or '' for the whole variable. */
  readonly field: string;
  readonly version?: string;
  /** Canonical cache key. */
  readonly key: string;
}

/** Thrown for a string that starts like a reference but is not a valid one. */
export class ReferenceSyntaxError extends Error {}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MANAGER = /^[a-z][a-z0-9-]*$/;
const RESOURCE_ID = /^[A-Za-z0-9_.-]+$/;
const VERSION = /^[A-Za-z0-9_.-]+$/;
// a path segment: anything printable but '/', '#', '?', whitespace
const SEGMENT = /^[^/#?\s]+$/;

/** True when `s` is meant as a reference (it may still be malformed). */
export function looksLikeReference(s: string): boolean {
  return s.length > 6 && s.charCodeAt(0) === 36 /* $ */ && (s.startsWith('$secret://') || s.startsWith('$env://') || s.startsWith('$ENV://'));
}

/**
 * Parse a reference.
 * @throws ReferenceSyntaxError naming what is wrong (never echoes anything but the reference)
 * @example parseReference('$secret://vault/gateway/jack/auth-key#3')
 *   // { manager: 'vault', resource: 'vault/gateway', path: 'jack', field: 'auth-key', version: '3', … }
 */
export function parseReference(text: string): SecretRef {
  if (text.startsWith('$env://') || text.startsWith('$ENV://')) {
    const body = text.slice(7);
    if (body === '') throw new ReferenceSyntaxError('an $env:// reference needs a variable name: $env://NAME or $env://NAME/field');
    const slash = body.indexOf('/');
    const name = slash === -1 ? body : body.slice(0, slash);
    const field = slash === -1 ? '' : body.slice(slash + 1);
    // JSON-quoted: a name with a quote or a line break stays one readable line in an issue list
    if (!ENV_NAME.test(name)) throw new ReferenceSyntaxError(`${JSON.stringify(name)} is not a valid environment variable name`);
    if (slash !== -1 && (field === '' || !SEGMENT.test(field))) throw new ReferenceSyntaxError('the field after the variable name is empty or has invalid characters');
    return { text, manager: 'env', resource: 'env', path: name, field, key: `env|${name}|${field}` };
  }
  if (!text.startsWith('$secret://')) throw new ReferenceSyntaxError('a reference starts with $secret:// or $env://');
  let body = text.slice(10);
  let version: string | undefined;
  const hash = body.indexOf('#');
  if (hash !== -1) {
    version = body.slice(hash + 1);
    body = body.slice(0, hash);
    if (!VERSION.test(version)) throw new ReferenceSyntaxError('the version after "#" is empty or has invalid characters');
  }
  const segs = body.split('/');
  const empty = segs.findIndex((s) => s === '');
  if (empty !== -1) throw new ReferenceSyntaxError(`segment ${empty + 1} is empty (expected $secret://<manager>/<id>/<path>/<field>)`);
  // <manager>/<id>/<field> (an empty path) is syntax; whether a manager accepts it is its provider's call (pathOptional)
  if (segs.length < 3) throw new ReferenceSyntaxError('missing segments: expected $secret://<manager>/<id>/<path>/<field> (the last segment is the field)');
  const [manager, id] = segs;
  if (!MANAGER.test(manager)) throw new ReferenceSyntaxError(`${JSON.stringify(manager)} is not a valid secret manager name`);
  if (!RESOURCE_ID.test(id)) throw new ReferenceSyntaxError(`${JSON.stringify(id)} is not a valid secret resource id`);
  for (const s of segs.slice(2)) if (!SEGMENT.test(s)) throw new ReferenceSyntaxError('a path segment has invalid characters');
  const path = segs.slice(2, -1).join('/');
  const field = segs[segs.length - 1];
  const resource = `${manager}/${id}`;
  // the key holds path and field as written, '/'-joined: a segment may hold '|' but never '/', so
  // "a|b/c" (path a|b, field c) and "a/b|c" (path a, field b|c) stay two cache entries
  return { text, manager, resource, path, field, version, key: `${resource}|${segs.slice(2).join('/')}|${version ?? ''}` };
}

/** A place in the config that holds a reference. */
export interface ReferenceSite {
  /** Config path, e.g. `routes[0].plugins.key-auth.key`. */
  readonly path: string;
  readonly ref: SecretRef;
}
