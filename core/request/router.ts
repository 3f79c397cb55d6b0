// Route matching on find-my-way: uri (exact, `/prefix/*`, `:param`), methods and hosts, built once
// per snapshot. Host first, then uri, as APISIX's default `radixtree_host_uri` router: routes
// naming the request's host are searched first (exact host, then `*.` wildcards, most specific
// first), then routes without hosts. Routes sharing method, uri and host are ordered by priority.
import FindMyWay from 'find-my-way';
import { HTTP_METHODS } from '../config/types';

/** What a route contributes to the router. */
export interface RoutableRoute {
  readonly id: string;
  readonly uris: readonly string[];
  readonly methods?: readonly string[];
  readonly hosts?: readonly string[];
  readonly priority: number;
}

export interface RouteMatch<R> {
  readonly route: R;
  readonly params: Record<string, string | undefined>;
}

/** An immutable router over a set of routes. */
export interface Router<R> {
  /** @param host Host header without port, lowercased */
  find(method: string, host: string, path: string): RouteMatch<R> | null;
}

/** A uri find-my-way refuses (e.g. an unclosed regex parameter). */
export class RouteUriError extends Error {
  constructor(readonly routeId: string, readonly uri: string, cause: Error) {
    super(`invalid uri "${uri}": ${cause.message}`);
  }
}

/** The uri as find-my-way tells routes apart: parameter names do not count (`/u/:id` = `/u/:name`). */
function uriShape(uri: string): string {
  // "::" is an escaped literal colon, not a parameter
  return uri.replace(/::|:[^/.\-(]*/g, (m) => (m === '::' ? m : ':'));
}

type Fmw = ReturnType<typeof FindMyWay>;

/** Methods a route can list; others (PROPFIND, MKCOL, …) are matched by the routes without `methods` only. */
const LISTED = new Set<string>(HTTP_METHODS);
/** The tree key of the routes without `methods`: they answer every method. */
const ANY = '*';

/** One uri of one route, as stored in a tree. */
interface Entry<R> {
  readonly route: R;
  readonly uri: string;
  readonly shape: string;
  /** Config order (routes, then their uris): the earlier wins a tie of equal priority. */
  readonly seq: number;
}

function newTree(): Fmw {
  return FindMyWay({ ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, caseSensitive: true, maxParamLength: 1000 });
}

/**
 * The trees of one host table entry: one for the routes without `methods` (key ANY) and one per
 * method that some route lists, holding only the routes that list it. Routes without methods are
 * never copied into per-method trees, so one method-restricted route does not multiply the memory
 * of all the others by ten. Every tree is registered and searched under GET.
 */
class UriTable<R extends RoutableRoute> {
  private readonly groups = new Map<string, { method: string; entries: Entry<R>[] }>();
  add(entry: Entry<R>, method: string): void {
    const key = `${method} ${entry.shape}`;
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = { method, entries: [] }));
    g.entries.push(entry);
  }
  build(): Map<string, Fmw> {
    const trees = new Map<string, Fmw>();
    for (const g of this.groups.values()) {
      // stable sort: equal priority keeps config order; the winner's own uri names the params
      const best = [...g.entries].sort((a, b) => b.route.priority - a.route.priority)[0];
      let t = trees.get(g.method);
      if (t === undefined) trees.set(g.method, (t = newTree()));
      try {
        t.on('GET', best.uri, noop, best);
      } catch (err) {
        throw new RouteUriError(best.route.id, best.uri, err as Error);
      }
    }
    return trees;
  }
}

/**
 * Build a router. Routes later in `routes` lose ties of equal priority.
 * @throws RouteUriError for a uri the router cannot take
 */
export function buildRouter<R extends RoutableRoute>(routes: readonly R[]): Router<R> {
  const any = new UriTable<R>();
  const exact = new Map<string, UriTable<R>>();
  const wild = new Map<string, UriTable<R>>(); // ".example.com" → table
  let seq = 0;
  for (const r of routes) {
    for (const uri of r.uris) {
      const entry: Entry<R> = { route: r, uri, shape: uriShape(uri), seq: seq++ };
      for (const method of r.methods ?? [ANY]) {
        if (r.hosts === undefined) {
          any.add(entry, method);
          continue;
        }
        for (const host of r.hosts) {
          const [map, key] = host.startsWith('*.') ? [wild, host.slice(1)] : [exact, host];
          let t = map.get(key);
          if (!t) map.set(key, (t = new UriTable<R>()));
          t.add(entry, method);
        }
      }
    }
  }
  const anyTrees = any.build();
  const exactTrees = new Map<string, Map<string, Fmw>>();
  for (const [h, t] of exact) exactTrees.set(h, t.build());
  // longest suffix first: "*.a.example.com" is more specific than "*.example.com"
  const wildTrees = [...wild.entries()].sort((a, b) => b[0].length - a[0].length).map(([suffix, t]) => ({ suffix, trees: t.build() }));
  const hasHosts = exactTrees.size > 0 || wildTrees.length > 0;

  /**
   * A method-restricted route and a route without methods both match: the one find-my-way would
   * pick if both were in one tree wins (static before parameter before wildcard), or, for the same
   * uri shape, the higher priority, then the earlier in config. The two-route tree that answers
   * this is built once per pair.
   */
  const pairs = new Map<string, Fmw>();
  function prefer(a: { store: Entry<R>; params: Record<string, string | undefined> }, b: { store: Entry<R>; params: Record<string, string | undefined> }, path: string) {
    const x = a.store;
    const y = b.store;
    // the higher priority, then the earlier in config
    const ranked = () => (x.route.priority !== y.route.priority ? (x.route.priority > y.route.priority ? a : b) : x.seq < y.seq ? a : b);
    if (x.shape === y.shape) return ranked();
    const key = x.seq < y.seq ? `${x.seq} ${y.seq}` : `${y.seq} ${x.seq}`;
    let t = pairs.get(key);
    if (t === undefined) {
      t = newTree();
      t.on('GET', x.uri, noop, x);
      try {
        t.on('GET', y.uri, noop, y);
      } catch {
        // find-my-way takes each alone but not both
        return ranked();
      }
      if (pairs.size < 10_000) pairs.set(key, t);
    }
    return t.find('GET', path)?.store === y ? b : a;
  }

  function lookup(trees: Map<string, Fmw>, method: string, path: string): RouteMatch<R> | null {
    const anyTree = trees.get(ANY);
    const listed = LISTED.has(method) ? trees.get(method) : undefined;
    const b = anyTree === undefined ? null : (anyTree.find('GET', path) as { store: Entry<R>; params: Record<string, string | undefined> } | null);
    const a = listed === undefined ? null : (listed.find('GET', path) as { store: Entry<R>; params: Record<string, string | undefined> } | null);
    const m = a === null ? b : b === null ? a : prefer(a, b, path);
    return m ? { route: m.store.route, params: m.params } : null;
  }

  function findIn(method: string, host: string, path: string): RouteMatch<R> | null {
    if (hasHosts && host !== '') {
      const t = exactTrees.get(host);
      if (t !== undefined) {
        const m = lookup(t, method, path);
        if (m !== null) return m;
      }
      for (let i = 0; i < wildTrees.length; i++) {
        const w = wildTrees[i];
        // "*.example.com" matches any depth of subdomain, not the bare domain
        if (host.length > w.suffix.length && host.endsWith(w.suffix)) {
          const m = lookup(w.trees, method, path);
          if (m !== null) return m;
        }
      }
    }
    return lookup(anyTrees, method, path);
  }

  return {
    find(method, host, path) {
      const m = findIn(method, host, path);
      if (m !== null || path.indexOf('%') === -1) return m;
      const kept = undecodableKept(path);
      return kept === undefined ? null : findIn(method, host, kept);
    },
  };
}

/** A `%` not followed by two hex digits: nginx answers such a request 400 (the data plane does too). */
const MALFORMED_ESCAPE = /%(?![0-9A-Fa-f]{2})/;

/** Whether `path` has a malformed percent-escape (`%zz`, a cut `%4`). */
export function hasMalformedEscape(path: string): boolean {
  return path.indexOf('%') !== -1 && MALFORMED_ESCAPE.test(path);
}

/**
 * find-my-way decodes the path with decodeURI and matches nothing when that throws, as it does for
 * well-formed escapes of bytes that are not UTF-8 (`%E9` of Latin-1, a cut `%E0%A4`). nginx routes
 * those as they are, so `/files/*` serves `/files/caf%E9`. For such a path this returns it with
 * each non-ASCII escape itself escaped (`%E9` → `%25E9`), which find-my-way decodes back to the
 * literal `%E9`; undefined when the path decodes (the miss was real) or is malformed.
 */
function undecodableKept(path: string): string | undefined {
  if (MALFORMED_ESCAPE.test(path)) return undefined;
  try {
    decodeURI(path);
    return undefined;
  } catch {
    return path.replace(/%([89A-Fa-f][0-9A-Fa-f])/g, '%25$1');
  }
}

function noop(): void {}
