// The Admin API's route table: every method × path it answers under a prefix (/admin/ or
// /apisix/admin/), matched by find-my-way, and the answer to everything else. The server reads the
// table after its access checks (admin.allow, then the key); /metrics, outside the prefixes and
// without a key, is not in it.
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import { ADMIN_KINDS, OPENAPI_DOCUMENT } from './paths';

/** What answers a route (server.ts holds one handler per action). */
export type AdminAction = 'openapi' | 'plugins' | 'plugin' | 'list' | 'get' | 'put' | 'patch' | 'delete' | 'subpatch' | 'post' | 'refresh' | 'refuse';

/** An answer without a handler: status and error_msg. */
export interface Refusal {
  readonly status: number;
  readonly message: string;
  /** The body is read and checked first (its 413 or 400 comes before this answer), as for any PUT. */
  readonly readsBody?: boolean;
}

export interface AdminRoute {
  readonly method: HTTPMethod;
  /** Relative to each prefix, in find-my-way's syntax (`/secrets/:manager/:id`). */
  readonly path: string;
  readonly action: AdminAction;
  /** The resource kind: the first segment. */
  readonly kind: string;
  /** For action `refuse`. */
  readonly refusal?: Refusal;
}

const NOT_ALLOWED: Refusal = { status: 405, message: 'method not allowed' };

/** The kinds stored in the data document (every kind but plugins, which the registry holds). */
const RESOURCE_KINDS = ADMIN_KINDS.filter((k) => k !== 'plugins');

/** The path of one resource: secrets are named by their manager and an id (`secrets/vault/prod`). */
function itemPath(kind: string): string {
  return kind === 'secrets' ? '/secrets/:manager/:id' : `/${kind}/:id`;
}

function resourceRoutes(kind: string): AdminRoute[] {
  const row = (method: HTTPMethod, path: string, action: AdminAction, refusal?: Refusal): AdminRoute => ({ method, path, action, kind, refusal });
  const item = itemPath(kind);
  // writes to the collection (and to a secret manager alone) too: PUT /consumers takes the username
  // from the body (APISIX); the others answer that the id is missing
  const writable = [`/${kind}`, ...(kind === 'secrets' ? ['/secrets/:manager'] : []), item];
  return [
    row('GET', `/${kind}`, 'list'),
    row('GET', item, 'get'),
    ...writable.flatMap((p) => [row('PUT', p, 'put'), row('PATCH', p, 'patch'), row('DELETE', p, 'delete')]),
    // APISIX's SubPath PATCH: the segments after the id name one attribute
    row('PATCH', `${item}/*`, 'subpatch'),
    // APISIX: POST creates a route, upstream or SSL resource with a generated id
    kind === 'routes' || kind === 'upstreams' || kind === 'ssls' ? row('POST', `/${kind}`, 'post') : row('POST', `/${kind}`, 'refuse', { status: 405, message: `POST is not supported for ${kind}: use PUT` }),
  ];
}

/** The table. */
export const ADMIN_ROUTES: readonly AdminRoute[] = [
  { method: 'GET', path: `/${OPENAPI_DOCUMENT}`, action: 'openapi', kind: OPENAPI_DOCUMENT },
  { method: 'GET', path: '/plugins', action: 'plugins', kind: 'plugins' },
  { method: 'GET', path: '/plugins/:name', action: 'plugin', kind: 'plugins' },
  ...RESOURCE_KINDS.flatMap(resourceRoutes),
  { method: 'POST', path: '/secrets/:manager/:id/refresh', action: 'refresh', kind: 'secrets' },
  ...(['GET', 'PUT', 'PATCH', 'DELETE'] as const).map((method): AdminRoute => ({ method, path: '/secrets/:manager/:id/refresh', action: 'refuse', kind: 'secrets', refusal: NOT_ALLOWED })),
];

const KINDS: ReadonlySet<string> = new Set(ADMIN_KINDS);
const WRITES: ReadonlySet<string> = new Set(['PUT', 'PATCH', 'DELETE', 'POST']);

/**
 * The answer to a call no route takes, by what the path starts with: an unknown kind is 404; a
 * write to plugins or an unknown method, 405; a POST to an id, 405 pointing to PUT; segments after
 * an id, 404 (a PUT's body is checked first).
 */
function unrouted(method: string, segs: readonly string[]): Refusal {
  const kind = segs[0];
  if (segs.length === 1 && kind === OPENAPI_DOCUMENT) return NOT_ALLOWED;
  if (!KINDS.has(kind)) return { status: 404, message: `unknown resource "${kind ?? ''}"` };
  if (WRITES.has(method)) {
    if (kind === 'plugins') return NOT_ALLOWED;
    if (method === 'POST') return { status: 405, message: 'POST creates with a generated id: use PUT to write a given id' };
    return { status: 404, message: 'not found', readsBody: method !== 'DELETE' };
  }
  return method === 'GET' ? { status: 404, message: 'not found' } : NOT_ALLOWED;
}

export type AdminMatch = { route: AdminRoute; params: Record<string, string | undefined> } | { refusal: Refusal };

/** The router over {@link ADMIN_ROUTES}. */
export function adminRouter(): (method: string, segs: readonly string[]) => AdminMatch {
  // the path is rebuilt from decoded segments, so find-my-way sees no empty segment, and a `/`
  // escaped in an id stays inside its parameter
  const fmw = FindMyWay({ caseSensitive: true, ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, maxParamLength: 65536 });
  for (const route of ADMIN_ROUTES) fmw.on(route.method, route.path, noop, route);
  return (method, segs) => {
    const m = fmw.find(method as HTTPMethod, `/${segs.map(encodeURIComponent).join('/')}`);
    return m ? { route: m.store as AdminRoute, params: m.params } : { refusal: unrouted(method, segs) };
  };
}

function noop(): void {}
