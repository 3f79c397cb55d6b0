// Route matching on find-my-way: uri (exact, `/prefix/*`, `:param`), methods and hosts, built once
// per snapshot. Host first, then uri, as APISIX's default `radixtree_host_uri` router: routes
// naming the request's host are searched first (exact host, then `*.` wildcards, most specific
// first), then routes without hosts. Routes sharing method, uri and host are ordered by priority.
import { maxHeaderSize } from 'node:http';
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
  /** @param host the request's host as {@link hostForMatching} gives it */
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

/**
 * find-my-way skips a `:param` node whose value is longer than `maxParamLength` and goes on to the
 * next candidate, so a long value would leave `/users/:id` (and its auth plugins) for a public
 * `/*`. nginx and APISIX have no such limit: the request line's is the only one. The whole request
 * head, request line included, is bounded by Node's header limit (431 beyond it), so a parameter
 * can never be longer than that, and no request reaches a less specific route for its length.
 */
const MAX_PARAM_LENGTH = Math.max(maxHeaderSize, 16 * 1024);

function newTree(): Fmw {
  return FindMyWay({ ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, caseSensitive: true, maxParamLength: MAX_PARAM_LENGTH });
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
        for (const h of r.hosts) {
          // as the request's host is compared: lowercase, without a trailing dot
          const host = h.toLowerCase().replace(/\.$/, '');
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

/**
 * The request's host as routes are matched on it, as nginx reads the Host header: without the
 * port, lowercased, without one trailing dot (`API.Example.COM.:80` is `api.example.com`, the
 * same name in DNS), an IPv6 literal kept in its brackets (`[::1]`). So no spelling of a host
 * reaches its routes' fallbacks rather than the routes (and plugins) it names. '' when there is
 * no Host (HTTP/1.0) or it is empty: only routes without hosts match.
 * @returns undefined for a host nginx refuses with 400: two dots in a row, a path separator, a
 * control character or space, nothing before the port
 */
export function hostForMatching(h: string | undefined): string | undefined {
  if (h === undefined || h === '') return '';
  let end = h.length;
  let dot = -2;
  // 0: the name; 1: inside an IPv6 literal's brackets; 2: the port
  let state = 0;
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c === 46 /* . */) {
      if (dot === i - 1) return undefined;
      dot = i;
    } else if (c === 58 /* : */) {
      if (state === 0) {
        end = i;
        state = 2;
      }
    } else if (c === 91 /* [ */) {
      if (i === 0) state = 1;
    } else if (c === 93 /* ] */) {
      if (state === 1) {
        end = i + 1;
        state = 2;
      }
    } else if (c === 47 /* / */ || c === 92 /* \ */ || c <= 0x20 || c === 0x7f) return undefined;
  }
  if (dot === end - 1) end--;
  if (end === 0) return undefined;
  return (end === h.length ? h : h.slice(0, end)).toLowerCase();
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
