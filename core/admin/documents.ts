// The Admin API's writes as operations on a data document (`{ routes: [...], upstreams: [...], ...}`,
// as the config store holds it, edited one resource at a time through a ResourceEdit): create or replace, JSON merge patch, APISIX's SubPath PATCH,
// delete, and the rules on ids. No HTTP and no gateway here: each function edits the document it
// is given or throws an AdminError carrying the status the Admin API answers with. The server runs
// them inside the gateway's change(), which validates, persists and swaps in the result.
import { randomBytes } from 'node:crypto';
import { MASK } from './redact';

/** The data sections of a config, by kind: `doc.routes`, `doc.upstreams`, … */
export type DataDocument = Record<string, unknown[]>;

/**
 * What an operation edits: the store's document as the gateway keeps it, read and written one
 * resource at a time by id (the gateway's edit finds a resource without a pass over the others,
 * and records what changed for the write pipeline; the document itself is left as it was).
 */
export interface ResourceEdit {
  /** The resource `id` of `kind` as edited so far, or undefined. */
  get(kind: string, id: string): Readonly<Record<string, unknown>> | undefined;
  /** Replace the resource `id`, or create it (appended to its section). */
  set(kind: string, id: string, item: Readonly<Record<string, unknown>>): void;
  /** Delete the resource `id`. */
  remove(kind: string, id: string): void;
  /** How many resources the section holds as edited. */
  count(kind: string): number;
  /** The section as edited, for the operations that look through every resource (a deletion's users). */
  list(kind: string): readonly unknown[];
}

/** A refused operation, with the HTTP status the Admin API answers (read by the gateway's change()). */
export class AdminError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'AdminError';
  }
}

/** The field naming a resource: `username` for consumers (APISIX), `id` for the rest. */
export function idField(kind: string): 'id' | 'username' {
  return kind === 'consumers' ? 'username' : 'id';
}

/** writeOnly paths of an item of the kind written (its plugins' or provider's plaintext secret fields). */
export type WriteOnlyPaths = (item: unknown) => readonly string[];

// ---------------------------------------------------------------------------------------------
// ids

/**
 * The id a PUT, PATCH or DELETE writes: the path's, or for `PUT /consumers` the body's username
 * (APISIX). An id the body gives must be the same one.
 * @param pathId undefined when the path names none (the collection, or a secret manager alone)
 * @param body the parsed body; undefined for DELETE and for a sub-path PATCH, whose body is one attribute's value
 */
export function writeTarget(kind: string, method: 'PUT' | 'PATCH' | 'DELETE', pathId: string | undefined, body: unknown): string {
  const field = idField(kind);
  const fromBody = pathId === undefined && kind === 'consumers' && method === 'PUT';
  const named = isObject(body) ? body[field] : undefined;
  const id = fromBody ? (typeof named === 'string' ? named : undefined) : pathId;
  if (id === undefined) throw new AdminError(400, fromBody ? 'the username is missing from the body' : `the ${field} is missing from the path`);
  if (named !== undefined && String(named) !== id) throw new AdminError(400, `${field} "${String(named)}" in the body does not match "${id}" in the path`);
  return id;
}

/** The id of a POST (APISIX-style generated: time-ordered and unique); the body must not name one. */
export function postedId(body: Record<string, unknown>, now: number = Date.now(), random: Buffer = randomBytes(4)): string {
  if (body.id !== undefined) throw new AdminError(400, 'POST generates the id: remove "id" from the body, or PUT to the id');
  return `${now.toString(36)}${random.toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// operations

/**
 * PUT (and POST, with a generated id): replace the resource `id`, or create it when there is none
 * and `admin.limits` leaves room.
 * @param limit the kind's `admin.limits` entry, counted on this document, or `stored` when the store counted more (in etcd mode, every node's writes)
 */
export function putResource(doc: ResourceEdit, kind: string, id: string, body: Record<string, unknown>, o: { writeOnly: WriteOnlyPaths; limit?: number; stored?: number }): { created: boolean } {
  const was = doc.get(kind, id);
  const next = withId(structuredClone(body), kind, id, body);
  restoreMasked(next, was, o.writeOnly(body), `${kind}/${id}`);
  if (was !== undefined) {
    doc.set(kind, id, next);
    return { created: false };
  }
  // what the store holds when it can count every writer's resources (etcd), else this document
  const stored = o.stored ?? doc.count(kind);
  if (o.limit !== undefined && stored >= o.limit) {
    throw new AdminError(400, `the ${kind} limit is reached (admin.limits.${kind}: ${o.limit}, stored: ${stored}): delete ${kind}, or raise admin.limits.${kind} in the config file`);
  }
  doc.set(kind, id, next);
  return { created: true };
}

/** PATCH: an RFC 7386 merge of `patch` into the stored resource; a field set drops its other spelling. */
export function patchResource(doc: ResourceEdit, kind: string, id: string, patch: Record<string, unknown>, writeOnly: WriteOnlyPaths): void {
  const stored = existing(doc, kind, id);
  const next = withId(mergePatch(withoutAliases(stored, patch), patch) as Record<string, unknown>, kind, id, patch);
  restoreMasked(next, stored, writeOnly(patch), `${kind}/${id}`);
  doc.set(kind, id, next);
}

/** Sub-path segments refused outright: as a key, JS reads and writes it as the prototype. */
const FORBIDDEN_SEGMENT = '__proto__';

/**
 * APISIX's SubPath PATCH: the attribute `sub` names (one or more segments) becomes `value`; null
 * deletes it. "******" anywhere in the new value keeps what is stored there, as a full PATCH does.
 */
export function subPatchResource(doc: ResourceEdit, kind: string, id: string, sub: readonly string[], value: unknown, writeOnly: WriteOnlyPaths): void {
  const stored = existing(doc, kind, id);
  const field = idField(kind);
  if (sub.includes('')) throw new AdminError(400, `the sub-path "${sub.join('/')}" has an empty segment`);
  if (sub.includes(FORBIDDEN_SEGMENT)) throw new AdminError(400, `the sub-path segment "${FORBIDDEN_SEGMENT}" is not allowed`);
  if (sub[0] === field) throw new AdminError(400, `the ${field} cannot be changed through a sub-path: PUT the resource to its new ${field}`);
  const next = subPatch(sub.length === 1 ? (withoutAliases(stored, { [sub[0]]: value }) as Record<string, unknown>) : stored, sub, value);
  restoreMasked(next, stored, writeOnly(next), `${kind}/${id}`);
  doc.set(kind, id, next);
}

/** DELETE, refused while something still uses the resource (naming every user). */
export function deleteResource(doc: ResourceEdit, kind: string, id: string): void {
  existing(doc, kind, id);
  const users = usersOf(doc, kind, id);
  if (users.length) {
    throw new AdminError(400, kind === 'upstreams' ? `upstream "${id}" is still used by routes: ${users.join(', ')}` : `secret resource "${id}" is still referenced by ${users.join(', ')}`);
  }
  doc.remove(kind, id);
}

/** What refers to the resource: routes by `upstream_id`; routes, consumers and other secret resources by `$secret://` reference. */
function usersOf(doc: ResourceEdit, kind: string, id: string): string[] {
  const all = (k: string) => doc.list(k) as Array<Record<string, unknown>>;
  if (kind === 'upstreams') return all('routes').filter((r) => String(r.upstream_id) === id).map((r) => String(r.id));
  if (kind !== 'secrets') return [];
  const uses = (x: unknown) => JSON.stringify(x ?? null).includes(`"$secret://${id}/`);
  return [
    ...all('routes').filter(uses).map((r) => `route ${String(r.id)}`),
    ...all('consumers').filter(uses).map((c) => `consumer ${String(c.username)}`),
    ...all('secrets').filter((x) => String(x.id) !== id && uses(x)).map((x) => `secret ${String(x.id)}`),
  ];
}

// ---------------------------------------------------------------------------------------------
// the pieces

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The stored resource; 404 when there is none. */
function existing(doc: ResourceEdit, kind: string, id: string): Record<string, unknown> {
  const stored = doc.get(kind, id);
  if (stored === undefined) throw new AdminError(404, `${kind}/${id} not found`);
  return stored as Record<string, unknown>;
}

/** `next` named `id`; a route or upstream keeps a numeric id as the body gave it (APISIX takes both). */
function withId(next: Record<string, unknown>, kind: string, id: string, body: Record<string, unknown>): Record<string, unknown> {
  const given = body[idField(kind)];
  next[idField(kind)] = (kind === 'routes' || kind === 'upstreams') && typeof given === 'number' ? given : id;
  return next;
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Fields that are two spellings of one setting: a PATCH setting one drops the other from the stored value. */
const ALIASES: ReadonlyArray<readonly [string, string]> = [['uri', 'uris'], ['host', 'hosts'], ['remote_addr', 'remote_addrs']];

function withoutAliases(stored: unknown, patch: unknown): unknown {
  if (stored === null || typeof stored !== 'object' || patch === null || typeof patch !== 'object') return stored;
  const out = { ...(stored as Record<string, unknown>) };
  for (const [a, b] of ALIASES) {
    if (a in (patch as object) && (patch as Record<string, unknown>)[a] !== null) delete out[b];
    if (b in (patch as object) && (patch as Record<string, unknown>)[b] !== null) delete out[a];
  }
  return out;
}

/**
 * Put back stored values where a write sends "******" for a writeOnly field. A path through a list
 * (`keys[]`, `a[].b`) matches by position: "******" at `keys[1]` keeps the stored `keys[1]`.
 */
function restoreMasked(incoming: unknown, stored: unknown, paths: readonly string[], what: string): void {
  for (const p of paths) restoreAt(incoming, stored, p.split('.'), what);
}

function restoreAt(inc: any, old: any, segs: readonly string[], at: string): void {
  const [seg, ...rest] = segs;
  const list = seg.endsWith('[]');
  const name = list ? seg.slice(0, -2) : seg;
  const here = name === '' ? at : `${at}.${name}`;
  const incAt = name === '' ? inc : inc !== null && typeof inc === 'object' ? inc[name] : undefined;
  const oldAt = name === '' ? old : old !== null && typeof old === 'object' ? old[name] : undefined;
  if (list) {
    if (!Array.isArray(incAt)) return;
    incAt.forEach((item, i) => {
      const oldItem = Array.isArray(oldAt) ? oldAt[i] : undefined;
      if (rest.length) restoreAt(item, oldItem, rest, `${here}[${i}]`);
      else if (item === MASK) incAt[i] = keep(oldItem, `${here}[${i}]`);
    });
  } else if (rest.length) restoreAt(incAt, oldAt, rest, here);
  else if (inc !== null && typeof inc === 'object' && incAt === MASK) inc[name] = keep(oldAt, here);
}

/** The stored value a "******" keeps; refused when there is none. */
function keep(old: unknown, path: string): string {
  if (typeof old === 'string') return old;
  throw new AdminError(400, `${path} is "******" but no value is stored to keep`);
}

function describeValue(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`;
}

/**
 * A copy of `stored` whose attribute at `path` is `value` (null deletes it). Missing objects on the
 * way are created, as APISIX does; crossing anything but an object is refused. Own properties
 * only, so "constructor" or "prototype" are plain keys, never inherited ones.
 */
function subPatch(stored: Record<string, unknown>, path: readonly string[], value: unknown): Record<string, unknown> {
  const out = structuredClone(stored);
  let cur: Record<string, unknown> = out;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i];
    let next = Object.hasOwn(cur, seg) ? cur[seg] : undefined;
    if (next === undefined) {
      if (value === null) return out;
      next = {};
      Object.defineProperty(cur, seg, { value: next, writable: true, enumerable: true, configurable: true });
    }
    if (!isObject(next)) {
      throw new AdminError(400, `invalid sub-path "${path.join('/')}": "${path.slice(0, i + 1).join('/')}" is ${describeValue(next)}, not an object`);
    }
    cur = next;
  }
  const last = path[path.length - 1];
  if (value === null) {
    if (Object.hasOwn(cur, last)) delete cur[last];
  } else Object.defineProperty(cur, last, { value, writable: true, enumerable: true, configurable: true });
  return out;
}
