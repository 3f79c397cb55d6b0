// The checks across a schema-valid document that its schema cannot express: unique ids, a route's
// upstream_id naming an upstream, upstream nodes a pool can open (normalised to one list form),
// each plugin's and secret provider's own schema, then the gateway's settings (settings-check.ts).
// They normalise the document in place, to the form the build reads (`uris`, `hosts`, string ids).
import type { ConfigIssue } from '../errors';
import type { NodeConfig } from './types';
import { joinPath } from './paths';
import type { Registry } from './registry';
import { checkSettings } from './settings-check';
import { checkSsls, clientCertIdIssue, upstreamTlsIssues } from './ssl-checks';

function splitHostPort(s: string): { host: string; port?: number } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::([0-9]+))?$/.exec(s);
  if (!m) return { host: s };
  return { host: m[1], port: m[2] === undefined ? undefined : Number(m[2]) };
}

/**
 * Whether an upstream pool can be opened to `host`: undici parses `scheme://host:port` as a URL
 * origin, and a host it cannot parse (a space, "a/b", "1.2.3.256", bad punycode) would fail the
 * build with a bare "Invalid URL" instead of an issue with a path.
 */
function poolableHost(host: string): boolean {
  const h = host.startsWith('[') || !host.includes(':') ? host : `[${host}]`;
  try {
    const url = new URL(`http://${h}:1`);
    return url.pathname === '/' && url.search === '' && url.hash === '';
  } catch {
    return false;
  }
}

function normaliseUpstream(u: any, path: string, issues: ConfigIssue[]): void {
  let nodes: NodeConfig[];
  if (Array.isArray(u.nodes)) {
    nodes = u.nodes;
    nodes.forEach((n, i) => {
      if (typeof n?.host === 'string' && n.host !== '' && !poolableHost(n.host)) issues.push({ path: joinPath(joinPath(joinPath(path, 'nodes'), i), 'host'), message: 'is not a valid host name or IP address' });
    });
  } else {
    nodes = Object.entries(u.nodes as Record<string, number>).map(([k, weight], i) => {
      const { host, port } = splitHostPort(k);
      // the schema checks the ports of the list form (a second, noisier issue there would echo the value)
      if (port !== undefined && !(port >= 1 && port <= 65535)) issues.push({ path: joinPath(joinPath(path, 'nodes'), i), message: `port ${port} is out of range` });
      if (!poolableHost(host)) issues.push({ path: joinPath(joinPath(path, 'nodes'), i), message: `${JSON.stringify(host)} is not a valid host name or IP address` });
      return { host, port: port ?? (u.scheme === 'https' ? 443 : 80), weight };
    });
  }
  // the balancer refuses a node listed twice ("127.0.0.1:80" and "127.0.0.1", or a repeated list entry)
  const first = new Map<string, number>();
  nodes.forEach((n, i) => {
    if (typeof n?.host !== 'string' || typeof n.port !== 'number') return;
    const key = `${n.host.startsWith('[') ? n.host.slice(1, -1) : n.host}:${n.port}`;
    const j = first.get(key);
    if (j === undefined) first.set(key, i);
    else issues.push({ path: joinPath(joinPath(path, 'nodes'), i), message: `is the same node as nodes[${j}]` });
  });
  if (nodes.length > 0 && nodes.every((n) => n.weight === 0)) issues.push({ path: joinPath(path, 'nodes'), message: 'must have at least one node with a weight above 0' });
  u.nodes = nodes;
  if (u.type === 'chash' && u.hash_on !== 'vars' && !u.key) issues.push({ path: joinPath(path, 'key'), message: `is required when hash_on is "${u.hash_on}"` });
  if (u.pass_host === 'rewrite' && !u.upstream_host) issues.push({ path: joinPath(path, 'upstream_host'), message: 'is required when pass_host is "rewrite"' });
  upstreamTlsIssues(u, joinPath(path, 'tls'), issues);
  if (u.id !== undefined) u.id = String(u.id);
}

/**
 * What one item's checks ask about the rest of its document. The full check answers from the items
 * it has gone through (a Set per section); a check of a few changed items answers from the live
 * config and the changes (validate-changes.ts). Either way the item's issues are the same.
 */
export interface Neighbours {
  /** Whether an earlier item of the same section has this id (a route's or upstream's as a string, a consumer's username as written). */
  seenBefore(key: unknown): boolean;
  /** Whether the document has an upstream with this id. */
  hasUpstream(id: string): boolean;
}

/** A later item repeating an id: the issue the item repeating it gets. */
export function duplicateIssue(kind: 'routes' | 'upstreams' | 'consumers', index: number, key: unknown): ConfigIssue {
  const path = joinPath(kind, index);
  if (kind === 'upstreams') return { path: joinPath(path, 'id'), message: `duplicate upstream id ${JSON.stringify(key)}` };
  if (kind === 'routes') return { path: joinPath(path, 'id'), message: `duplicate route id "${key as string}"` };
  return { path: joinPath(path, 'username'), message: `duplicate consumer "${key as string}"` };
}

/** A route naming an upstream the document does not have. */
export function unknownUpstreamIssue(index: number, id: string): ConfigIssue {
  return { path: joinPath(joinPath('routes', index), 'upstream_id'), message: `refers to unknown upstream ${JSON.stringify(id)}` };
}

/** The checks of one upstream (`upstreams[index]`); normalises it in place. */
export function checkUpstreamItem(u: any, index: number, n: Neighbours, issues: ConfigIssue[]): void {
  normaliseUpstream(u, joinPath('upstreams', index), issues);
  if (n.seenBefore(u.id)) issues.push(duplicateIssue('upstreams', index, u.id));
}

/** The checks of one route (`routes[index]`); normalises it in place. */
export function checkRouteItem(r: any, index: number, registry: Registry, n: Neighbours, issues: ConfigIssue[]): void {
  const path = joinPath('routes', index);
  if (r.id === undefined) issues.push({ path: joinPath(path, 'id'), message: 'is required' });
  else {
    r.id = String(r.id);
    if (n.seenBefore(r.id)) issues.push(duplicateIssue('routes', index, r.id));
  }
  if (r.uri !== undefined && r.uris !== undefined) issues.push({ path: joinPath(path, 'uris'), message: 'cannot be used together with uri' });
  else if (r.uri === undefined && r.uris === undefined) issues.push({ path: joinPath(path, 'uri'), message: 'is required' });
  r.uris = r.uris ?? (r.uri === undefined ? [] : [r.uri]);
  delete r.uri;
  for (const [j, u] of (r.uris as string[]).entries()) {
    const star = u.indexOf('*');
    if (star !== -1 && star !== u.length - 1) issues.push({ path: joinPath(joinPath(path, 'uris'), j), message: '"*" is only allowed at the end' });
  }
  if (r.host !== undefined && r.hosts !== undefined) issues.push({ path: joinPath(path, 'hosts'), message: 'cannot be used together with host' });
  if (r.host !== undefined) r.hosts = [r.host];
  delete r.host;
  if (r.hosts) r.hosts = r.hosts.map((h: string) => h.toLowerCase());
  if (r.upstream && r.upstream_id !== undefined) issues.push({ path: joinPath(path, 'upstream_id'), message: 'cannot be used together with upstream' });
  if (r.upstream) normaliseUpstream(r.upstream, joinPath(path, 'upstream'), issues);
  if (r.upstream_id !== undefined) {
    r.upstream_id = String(r.upstream_id);
    if (!n.hasUpstream(r.upstream_id)) issues.push(unknownUpstreamIssue(index, r.upstream_id));
  }
  checkPlugins(r.plugins, joinPath(path, 'plugins'), registry, false, issues);
}

/** The checks of one consumer (`consumers[index]`). */
export function checkConsumerItem(k: any, index: number, registry: Registry, n: Neighbours, issues: ConfigIssue[]): void {
  if (n.seenBefore(k.username)) issues.push(duplicateIssue('consumers', index, k.username));
  checkPlugins(k.plugins, joinPath(joinPath('consumers', index), 'plugins'), registry, true, issues);
}

/** Neighbours answered by the items gone through so far: each key is remembered once asked about. */
function seenSoFar(): (key: unknown) => boolean {
  const seen = new Set<unknown>();
  return (key) => {
    if (seen.has(key)) return true;
    seen.add(key);
    return false;
  };
}

/** Every cross-check of a schema-valid document, issues in document order; normalises `c` in place. */
export function crossCheck(c: any, registry: Registry, issues: ConfigIssue[]): void {
  const upstreamIds = new Set<string>();
  const upstreams: Neighbours = {
    seenBefore: (key) => upstreamIds.has(key as string),
    hasUpstream: (id) => upstreamIds.has(id),
  };
  c.upstreams.forEach((u: any, i: number) => {
    checkUpstreamItem(u, i, upstreams, issues);
    upstreamIds.add(u.id);
  });
  const routes: Neighbours = { seenBefore: seenSoFar(), hasUpstream: (id) => upstreamIds.has(id) };
  c.routes.forEach((r: any, i: number) => checkRouteItem(r, i, registry, routes, issues));
  const consumers: Neighbours = { seenBefore: seenSoFar(), hasUpstream: (id) => upstreamIds.has(id) };
  c.consumers.forEach((k: any, i: number) => checkConsumerItem(k, i, registry, consumers, issues));

  checkSettings(c, issues);
  checkSsls(c, issues);
  // an upstream's client certificate from an SSL resource (the build checks it again after a change)
  const certIds: Array<[string | undefined, string]> = [
    ...c.upstreams.map((u: any, i: number): [string | undefined, string] => [u.tls?.client_cert_id, joinPath(joinPath(joinPath('upstreams', i), 'tls'), 'client_cert_id')]),
    ...c.routes.map((r: any, i: number): [string | undefined, string] => [r.upstream?.tls?.client_cert_id, joinPath(joinPath(joinPath(joinPath('routes', i), 'upstream'), 'tls'), 'client_cert_id')]),
  ];
  for (const [id, at] of certIds) {
    const issue = id === undefined ? undefined : clientCertIdIssue(id, c.ssls, at);
    if (issue) issues.push(issue);
  }

  const secretIds = new Set<string>();
  c.secrets.forEach((s: any, i: number) => {
    const path = joinPath('secrets', i);
    if (secretIds.has(s.id)) issues.push({ path: joinPath(path, 'id'), message: `duplicate secret resource "${s.id}"` });
    secretIds.add(s.id);
    const manager = s.id.slice(0, s.id.indexOf('/'));
    if (manager === 'env') {
      issues.push({ path: joinPath(path, 'id'), message: 'the env manager needs no secret resource: use $env://NAME references directly' });
      return;
    }
    const check = registry.providerCheck(manager);
    if (!check) {
      issues.push({ path: joinPath(path, 'id'), message: `unknown secret manager "${manager}"` });
      return;
    }
    const { id, ...rest } = s;
    issues.push(...check(rest, path, true));
    Object.assign(s, rest, { id });
  });
}

function checkPlugins(plugins: Record<string, unknown>, path: string, registry: Registry, consumer: boolean, issues: ConfigIssue[]): void {
  for (const name of Object.keys(plugins)) {
    const p = joinPath(path, name);
    if (!registry.plugins.has(name)) {
      // JSON-quoted, like the path: a key with a line break must not split the issue line
      issues.push({ path: p, message: `unknown plugin ${JSON.stringify(name)}` });
      continue;
    }
    const check = consumer ? registry.pluginConsumerCheck(name) : registry.pluginCheck(name);
    if (!check) {
      issues.push({ path: p, message: `plugin ${JSON.stringify(name)} has no consumer configuration` });
      continue;
    }
    if (plugins[name] === null) plugins[name] = {};
    issues.push(...check(plugins[name], p, true));
  }
}
