// Route matching on find-my-way: uri (exact, `/prefix/*`, `:param`), methods and hosts, built once
// per snapshot. Host first, then uri, as APISIX's default `radixtree_host_uri` router: routes
// naming the request's host are searched first (exact host, then `*.` wildcards, most specific
// first), then routes without hosts. Routes sharing method, uri and host are ordered by priority.
import FindMyWay from 'find-my-way';
import { HTTP_METHODS } from './config/schema';

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
// With per-method trees, the routes without methods also go under this stand-in, which every unlisted
// method looks up: a PROPFIND must not stop matching because some other route lists methods. It is
// itself a method no route can list.
const UNLISTED = 'ACL';
const ANY_METHOD: readonly string[] = [...HTTP_METHODS, UNLISTED];

/** One find-my-way tree over the routes of one host table entry. */
class UriTable<R extends RoutableRoute> {
  private readonly groups = new Map<string, { method: string; entries: { route: R; uri: string }[] }>();
  add(route: R, uri: string, method: string): void {
    const key = `${method} ${uriShape(uri)}`;
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = { method, entries: [] }));
    g.entries.push({ route, uri });
  }
  build(): Fmw {
    const fmw = FindMyWay({ ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, caseSensitive: true, maxParamLength: 1000 });
    for (const g of this.groups.values()) {
      // stable sort: equal priority keeps config order; the winner's own uri names the params
      const best = [...g.entries].sort((a, b) => b.route.priority - a.route.priority)[0];
      try {
        fmw.on(g.method as any, best.uri, noop, best.route);
      } catch (err) {
        throw new RouteUriError(best.route.id, best.uri, err as Error);
      }
    }
    return fmw;
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
  // When no route restricts methods, every method sees the same routes: one tree (under GET)
  // answers for all of them, instead of ten identical trees (10x less memory and build time).
  const byMethod = routes.some((r) => r.methods !== undefined);
  const ONE_TREE: readonly string[] = ['GET'];
  for (const r of routes) {
    for (const uri of r.uris) {
      for (const method of byMethod ? (r.methods ?? ANY_METHOD) : ONE_TREE) {
        if (r.hosts === undefined) {
          any.add(r, uri, method);
          continue;
        }
        for (const host of r.hosts) {
          const [map, key] = host.startsWith('*.') ? [wild, host.slice(1)] : [exact, host];
          let t = map.get(key);
          if (!t) map.set(key, (t = new UriTable<R>()));
          t.add(r, uri, method);
        }
      }
    }
  }
  const anyTree = any.build();
  const exactTrees = new Map<string, Fmw>();
  for (const [h, t] of exact) exactTrees.set(h, t.build());
  // longest suffix first: "*.a.example.com" is more specific than "*.example.com"
  const wildTrees = [...wild.entries()].sort((a, b) => b[0].length - a[0].length).map(([suffix, t]) => ({ suffix, tree: t.build() }));
  const hasHosts = exactTrees.size > 0 || wildTrees.length > 0;

  function lookup(tree: Fmw, method: string, path: string): RouteMatch<R> | null {
    const m = tree.find(method as any, path);
    return m ? { route: m.store as R, params: m.params } : null;
  }

  return {
    find(requestMethod, host, path) {
      const method = byMethod ? (LISTED.has(requestMethod) ? requestMethod : UNLISTED) : 'GET';
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
            const m = lookup(w.tree, method, path);
            if (m !== null) return m;
          }
        }
      }
      return lookup(anyTree, method, path);
    },
  };
}

function noop(): void {}
