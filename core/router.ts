// Route matching on find-my-way: uri (exact, `/prefix/*`, `:param`), methods and hosts, built once
// per snapshot. Routes sharing method, uri and host are ordered by priority (higher first).
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

function hostConstraint(h: string): string | RegExp {
  if (!h.startsWith('*.')) return h;
  // "*.example.com" matches any subdomain depth, as in APISIX
  const rest = h.slice(2).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^.+\\.${rest}$`);
}

/** Build a router. Routes later in `routes` lose ties of equal priority. */
export function buildRouter<R extends RoutableRoute>(routes: readonly R[]): Router<R> {
  const fmw = FindMyWay({ ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, caseSensitive: true, maxParamLength: 1000 });
  const groups = new Map<string, { method: string; uri: string; host?: string | RegExp; routes: R[] }>();
  for (const r of routes) {
    for (const uri of r.uris) {
      for (const method of r.methods ?? HTTP_METHODS) {
        for (const host of r.hosts ?? [undefined]) {
          const key = `${method} ${uri} ${host ?? ''}`;
          let g = groups.get(key);
          if (!g) groups.set(key, (g = { method, uri, host: host === undefined ? undefined : hostConstraint(host), routes: [] }));
          g.routes.push(r);
        }
      }
    }
  }
  for (const g of groups.values()) {
    // stable sort: equal priority keeps config order
    const best = [...g.routes].sort((a, b) => b.priority - a.priority)[0];
    const opts = g.host === undefined ? {} : { constraints: { host: g.host } };
    fmw.on(g.method as any, g.uri, opts, noop, best);
  }
  return {
    find(method, host, path) {
      const m = fmw.find(method as any, path, { host });
      if (!m) return null;
      return { route: m.store as R, params: m.params };
    },
  };
}

function noop(): void {}
