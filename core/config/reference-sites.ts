// Where a config's secret references stand: every `$secret://` and `$env://` string in the places
// that may hold one (plugin and consumer configs, secret resources, SSL resources, upstreams' TLS,
// gateway and admin settings),
// each checked against the config (a known manager, a declared resource, no resource referencing
// itself or a cycle of resources), with its path, for the build to resolve.
import type { ConfigIssue } from '../errors';
import { looksLikeReference, parseReference, ReferenceSyntaxError, type ReferenceSite } from '../secrets/reference';
import { joinPath } from './paths';
import type { Registry } from './registry';

/** The fields of an SSL resource that may hold a reference (its PEMs; `client.ca` too). */
export const SSL_PEM_FIELDS = ['cert', 'key', 'certs', 'keys'] as const;

/**
 * Walks a part of a config for references, each checked against the config: those that hold
 * become sites, the rest issues.
 * @param hasResource whether the config declares the secret resource (`vault/prod`)
 */
export function referenceWalker(registry: Registry, hasResource: (id: string) => boolean, issues: ConfigIssue[], sites: ReferenceSite[]) {
  const walk = (v: unknown, path: string, owner: string | null): void => {
    if (typeof v === 'string') {
      if (!looksLikeReference(v)) return;
      let ref;
      try {
        ref = parseReference(v);
      } catch (err) {
        if (!(err instanceof ReferenceSyntaxError)) throw err;
        issues.push({ path, message: `invalid reference: ${err.message}` });
        return;
      }
      if (ref.manager !== 'env' && !registry.providers.has(ref.manager)) issues.push({ path, message: `unknown secret manager "${ref.manager}"` });
      else if (ref.manager !== 'env' && ref.path === '' && registry.providers.get(ref.manager)?.pathOptional !== true) {
        issues.push({ path, message: 'invalid reference: missing segments: expected $secret://<manager>/<id>/<path>/<field> (the last segment is the field)' });
      } else if (ref.manager !== 'env' && !hasResource(ref.resource)) issues.push({ path, message: `refers to unknown secret resource "${ref.resource}" (add it under secrets:)` });
      else if (owner !== null && ref.resource === owner) issues.push({ path, message: 'a secret resource cannot reference itself' });
      else sites.push({ path, ref });
      return;
    }
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, joinPath(path, i), owner));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, joinPath(path, k), owner);
  };
  return {
    /** The references of one route's or consumer's plugins (`routes[3]`). */
    item(kind: 'routes' | 'consumers', item: { plugins: unknown; upstream?: { tls?: unknown } }, index: number): void {
      walk(item.plugins, joinPath(joinPath(kind, index), 'plugins'), null);
      // a route's own upstream: its TLS PEMs
      if (kind === 'routes' && item.upstream?.tls !== undefined) walk(item.upstream.tls, joinPath(joinPath(joinPath(kind, index), 'upstream'), 'tls'), null);
    },
    /** The references of one SSL resource (`ssls[2]`): its PEMs, then its client CA. */
    ssl(s: { client?: { ca?: unknown } } & Partial<Record<(typeof SSL_PEM_FIELDS)[number], unknown>>, index: number): void {
      const path = joinPath('ssls', index);
      for (const f of SSL_PEM_FIELDS) if (s[f] !== undefined) walk(s[f], joinPath(path, f), null);
      if (s.client !== undefined) walk(s.client.ca, joinPath(joinPath(path, 'client'), 'ca'), null);
    },
    walk,
  };
}

/** Find every reference in the places that may hold one, checking each against the config. */
export function collectReferences(c: any, registry: Registry, issues: ConfigIssue[]): ReferenceSite[] {
  const sites: ReferenceSite[] = [];
  const resources = new Set<string>(c.secrets.map((s: { id: string }) => s.id));
  const { item, ssl, walk } = referenceWalker(registry, (id) => resources.has(id), issues, sites);
  c.routes.forEach((r: any, i: number) => item('routes', r, i));
  c.consumers.forEach((k: any, i: number) => item('consumers', k, i));
  c.secrets.forEach((s: any, i: number) => {
    const { id, ...fields } = s;
    walk(fields, joinPath('secrets', i), id);
  });
  c.upstreams.forEach((u: any, i: number) => {
    if (u.tls !== undefined) walk(u.tls, joinPath(joinPath('upstreams', i), 'tls'), null);
  });
  c.ssls.forEach((s: any, i: number) => ssl(s, i));
  walk(c.gateway, 'gateway', null);
  if (c.admin) walk(c.admin, 'admin', null);
  // a resource whose fields reference resources that reference it back can never be built
  const deps = new Map<string, string[]>();
  for (const site of sites) {
    const m = /^secrets\[(\d+)\]/.exec(site.path);
    if (!m || site.ref.manager === 'env') continue;
    const owner = c.secrets[Number(m[1])].id as string;
    deps.set(owner, [...(deps.get(owner) ?? []), site.ref.resource]);
  }
  const state = new Map<string, 1 | 2>();
  const visit = (r: string, chain: string[]): void => {
    if (state.get(r) === 2) return;
    if (state.get(r) === 1) {
      const idx = c.secrets.findIndex((s: { id: string }) => s.id === r);
      issues.push({ path: joinPath('secrets', idx), message: `secret resources reference each other in a cycle: ${[...chain.slice(chain.indexOf(r)), r].join(' -> ')}` });
      return;
    }
    state.set(r, 1);
    for (const d of deps.get(r) ?? []) visit(d, [...chain, r]);
    state.set(r, 2);
  };
  for (const r of deps.keys()) visit(r, []);
  return sites;
}
