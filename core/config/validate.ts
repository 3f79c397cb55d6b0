// Configuration validation: JSON schema (ajv) plus cross-reference checks, every problem reported
// with its path (`routes[0].upstream.nodes: must have at least 1 entry`). Never throws half-way:
// it returns all issues, or a normalised, deeply frozen config.
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import type { JsonSchema, Plugin, SecretProvider } from '../contracts';
import { allowList } from './allow-list';
import { looksLikeReference, parseReference, ReferenceSyntaxError, type ReferenceSite } from '../secrets/reference';
import type { ConfigIssue } from '../errors';
import { token } from '../tokens';
import { resolveSettingReferences } from './settings-refs';
import { configSchema } from './schema';
import type { GatewayConfig, NodeConfig } from './types';
import { joinPath } from './paths';

/**
 * A compiled validator that applies defaults and reports path-prefixed issues. With
 * `allowReferences`, checks that a reference string cannot meet (pattern, length, enum, format)
 * are skipped for it: they apply to the resolved value instead (under the listed pointer prefixes
 * only, when `allowReferences` is an array).
 */
export type SchemaCheck = (data: unknown, basePath: string, allowReferences?: boolean | readonly string[]) => ConfigIssue[];

/**
 * A schema compiler. Each registry has its own (ajv caches what it compiled, so a shared one would
 * be state every gateway of the process adds to and none can drop).
 * verbose: errors carry their schema (to name a oneOf's alternatives); their data is never printed
 */
function schemaCompiler(): Ajv {
  return new Ajv({ allErrors: true, useDefaults: true, strict: false, allowUnionTypes: true, verbose: true });
}

/** Keywords a reference string cannot be expected to satisfy before it is resolved. */
const VALUE_KEYWORDS = new Set(['pattern', 'format', 'minLength', 'maxLength', 'enum', 'const']);

function valueAt(data: unknown, pointer: string): unknown {
  let v: unknown = data;
  if (!pointer) return v;
  for (const raw of pointer.slice(1).split('/')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return v;
}

/**
 * Compile a JSON schema once; the returned check mutates `data` to apply defaults.
 * @param ajv the compiler to use (a registry's own; default a fresh one, for a one-off check)
 */
export function compileSchema(schema: JsonSchema, ajv: Ajv = schemaCompiler()): SchemaCheck {
  const validate: ValidateFunction = ajv.compile(schema);
  return (data, basePath, allowReferences = false) => {
    if (validate(data)) return [];
    let errors = validate.errors ?? [];
    if (allowReferences) {
      errors = errors.filter((e) => {
        if (!VALUE_KEYWORDS.has(e.keyword)) return true;
        if (Array.isArray(allowReferences) && !allowReferences.some((p) => e.instancePath === p || e.instancePath.startsWith(`${p}/`))) return true;
        const v = valueAt(data, e.instancePath);
        return !(typeof v === 'string' && looksLikeReference(v));
      });
      if (errors.length === 0) return [];
    }
    return toIssues(errors, basePath, data);
  };
}


/** A JSON pointer into `data` as a config path; the data tells array indexes from digit keys. */
function pointerToPath(base: string, pointer: string, data: unknown): string {
  if (!pointer) return base;
  let p = base;
  let v = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    p = joinPath(p, Array.isArray(v) && /^[0-9]+$/.test(seg) ? Number(seg) : seg);
    v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[seg] : undefined;
  }
  return p;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

function describe(e: ErrorObject): { extra?: string; message: string } {
  const p = e.params as Record<string, any>;
  switch (e.keyword) {
    case 'required':
      return { extra: p.missingProperty, message: 'is required' };
    case 'additionalProperties':
      return { extra: p.additionalProperty, message: 'is not a known field' };
    case 'minProperties':
      return { message: `must have at least ${plural(p.limit, 'entry', 'entries')}` };
    case 'minItems':
      return { message: `must have at least ${plural(p.limit, 'entry', 'entries')}` };
    case 'maxItems':
      return { message: `must have at most ${plural(p.limit, 'entry', 'entries')}` };
    case 'type': {
      const t = String(p.type).split(',');
      return { message: `must be ${t.map((x) => (x === 'integer' ? 'an integer' : x === 'object' ? 'an object' : x === 'array' ? 'an array' : `a ${x}`)).join(' or ')}` };
    }
    case 'enum':
      return { message: `must be one of: ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'const':
      return { message: `must be ${JSON.stringify(p.allowedValue)}` };
    case 'dependencies':
    case 'dependentRequired':
      return { message: `needs ${p.missingProperty} when ${p.property} is set` };
    case 'pattern':
      return { message: `has an invalid format (must match ${p.pattern})` };
    case 'propertyNames':
      return { message: `has an invalid key ${JSON.stringify(p.propertyName)}` };
    case 'minLength':
      return { message: p.limit === 1 ? 'must not be empty' : `must be at least ${p.limit} characters long` };
    case 'uniqueItems':
      return { message: 'must not contain duplicates' };
    default:
      return { message: e.message ?? `fails ${e.keyword}` };
  }
}

/** Names the alternatives of a oneOf/anyOf from what each branch requires: "token, auth". */
function alternatives(e: ErrorObject): string {
  const branches = Array.isArray(e.schema) ? (e.schema as Array<{ required?: string[] }>) : [];
  const names = branches.map((b) => (Array.isArray(b?.required) && b.required.length ? b.required.join(' + ') : '')).filter((n) => n !== '');
  return names.length === branches.length && names.length > 0 ? names.join(', ') : '';
}

function toIssues(errors: ErrorObject[], basePath: string, data: unknown): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seen = new Set<string>();
  // anyOf/oneOf report each failed branch too: keep the summary only
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const fromBranch = (e: ErrorObject) => unions.some((u) => u !== e && e.schemaPath.startsWith(`${u.schemaPath}/`) && e.instancePath.startsWith(u.instancePath));
  for (const e of errors) {
    // an if/then failure is explained by the "then" branch's own errors
    if (e.keyword === 'if' || fromBranch(e)) continue;
    let d: { extra?: string; message: string };
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf') {
      const alts = alternatives(e);
      const passing = (e.params as { passingSchemas?: number[] | null }).passingSchemas;
      if (!alts) d = { message: 'has an invalid value' };
      else if (Array.isArray(passing)) d = { message: `must set only one of: ${alts}` };
      else d = { message: `must set one of: ${alts}` };
    } else d = describe(e);
    let path = pointerToPath(basePath, e.instancePath, data);
    if (d.extra !== undefined) path = joinPath(path, d.extra);
    const line = `${path}\0${d.message}`;
    if (seen.has(line)) continue;
    seen.add(line);
    out.push({ path, message: d.message });
  }
  return out;
}

/** The extensions a config may use, keyed by name. */
export interface Registry {
  readonly plugins: ReadonlyMap<string, Plugin>;
  readonly providers: ReadonlyMap<string, SecretProvider>;
  /** The config document's own schema (core/config/schema.ts), compiled with the registry's compiler. */
  readonly documentCheck: SchemaCheck;
  /** Returns the per-plugin route-config check (compiled once per plugin). */
  pluginCheck(name: string): SchemaCheck | undefined;
  pluginConsumerCheck(name: string): SchemaCheck | undefined;
  providerCheck(manager: string): SchemaCheck | undefined;
}

/** A gateway's extension registry, built by its container from the PLUGIN and SECRET_PROVIDER registrations. */
export const REGISTRY = token<Registry>('ExtensionRegistry');

/** Build a Registry over the given plugins/provider schemas, compiling each schema once. */
export function createRegistry(plugins: readonly Plugin[], providers: readonly SecretProvider[]): Registry {
  const pluginMap = new Map(plugins.map((p) => [p.name, p]));
  const routeChecks = new Map<string, SchemaCheck>();
  const consumerChecks = new Map<string, SchemaCheck>();
  const providerChecks = new Map<string, SchemaCheck>();
  const ajv = schemaCompiler();
  for (const p of plugins) {
    routeChecks.set(p.name, compileSchema(p.schema, ajv));
    if (p.consumerSchema) consumerChecks.set(p.name, compileSchema(p.consumerSchema, ajv));
  }
  for (const p of providers) providerChecks.set(p.name, compileSchema(p.schema, ajv));
  return {
    plugins: pluginMap,
    documentCheck: compileSchema(configSchema, ajv),
    providers: new Map(providers.map((p) => [p.name, p])),
    pluginCheck: (n) => routeChecks.get(n),
    pluginConsumerCheck: (n) => consumerChecks.get(n),
    providerCheck: (n) => providerChecks.get(n),
  };
}

/**
 * Split a listen address: "host:port", "[v6]:port" or ":port" (all interfaces: `anyHost`). The
 * one parser of `gateway.listen` and `admin.listen`, for the check at load and for the listeners.
 * @param anyHost the host of ":port" (default 0.0.0.0; the Admin API's is 127.0.0.1)
 * @example parseListen('[::1]:9080') // { host: '::1', port: 9080 }
 */
export function parseListen(s: string, anyHost = '0.0.0.0'): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  let host = s.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host: host || anyHost, port: Number(s.slice(i + 1)) };
}

/** Hosts that bind every interface: a listener there takes the port from every other host too. */
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::']);

/**
 * What a listen would fail on, found at load so that `validate` refuses what `start` would: a port
 * outside 1-65535 (the schema's pattern admits 0 and 65536-99999) and the Admin API on the proxy's
 * address. Runtime failures (a port in use by another process) remain start's alone.
 */
function checkListeners(c: any, issues: ConfigIssue[]): void {
  const proxy = parseListen(c.gateway.listen);
  const admin = c.admin ? parseListen(c.admin.listen, '127.0.0.1') : undefined;
  for (const [path, l] of [['gateway.listen', proxy], ['admin.listen', admin]] as const) {
    if (l !== undefined && !(Number.isInteger(l.port) && l.port >= 1 && l.port <= 65535)) issues.push({ path, message: `port ${l.port} is out of range (1-65535)` });
  }
  if (admin !== undefined && admin.port === proxy.port && (admin.host === proxy.host || WILDCARD_HOSTS.has(admin.host) || WILDCARD_HOSTS.has(proxy.host))) {
    issues.push({ path: 'admin.listen', message: `is on port ${admin.port} of the proxy listener (gateway.listen): give the Admin API its own port` });
  }
}

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
  if (u.id !== undefined) u.id = String(u.id);
}

const SIZE_UNITS: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * Bytes of an nginx-style size: an integer, or digits with `k`, `m` or `g` (either case, powers of
 * 1024, as nginx's `client_max_body_size`). @returns undefined when it is not one
 */
export function parseSize(v: number | string): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  const m = /^([0-9]+)([kKmMgG]?)$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]) * (m[2] ? SIZE_UNITS[m[2].toLowerCase()] : 1);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A valid config and every secret reference it holds. */
export interface ValidatedConfig {
  readonly config: GatewayConfig;
  /** Where references stand: plugin and consumer configs, secret resources, gateway settings. */
  readonly refs: readonly ReferenceSite[];
  readonly issues?: undefined;
}

/**
 * Validate and normalise a raw config document.
 * @returns `{ config }` (deep-frozen) or `{ issues }` listing every problem with its path
 */
export function validateConfig(raw: unknown, registry: Registry, inPlace = false): ValidatedConfig | { issues: ConfigIssue[]; config?: undefined } {
  // a document nobody else holds (just parsed) is normalised in place: no second copy of 100 000 consumers
  const doc = raw === null || raw === undefined ? {} : inPlace ? raw : structuredClone(raw);
  // $env:// references in gateway and admin settings are resolved now, before they are checked;
  // admin.key stays a reference (resolved live)
  const settingIssues: ConfigIssue[] = [];
  if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) resolveSettingReferences(doc as Record<string, unknown>, settingIssues);
  // (a setting whose reference failed is reported once, by what failed, not by later checks too)
  const failed = new Set(settingIssues.map((i) => i.path));
  const schemaIssues = registry.documentCheck(doc, '', settingIssues.length ? ['/gateway', '/admin'] : ['/admin/key']);
  if (schemaIssues.length === 0) {
    const issues: ConfigIssue[] = [];
    checkReferences(doc, registry, issues);
    const all = [...settingIssues, ...issues.filter((i) => !failed.has(i.path))];
    const refs = all.length ? [] : collectReferences(doc, registry, all);
    if (all.length) return { issues: all };
    return { config: deepFreeze(doc) as GatewayConfig, refs: Object.freeze(refs) };
  }
  schemaIssues.unshift(...settingIssues);
  // Still run the cross-checks so one load lists every problem (an unknown plugin next to an empty
  // `nodes`). They assume a schema-valid document: they may throw on the broken parts, and what
  // they say about a part the schema already rejected is noise.
  const more: ConfigIssue[] = [];
  try {
    checkReferences(doc, registry, more);
  } catch {
    // a broken shape the schema issues already explain
  }
  const within = (p: string, base: string) => base === '' || p === base || p.startsWith(`${base}.`) || p.startsWith(`${base}[`);
  return { issues: [...schemaIssues, ...more.filter((m) => !schemaIssues.some((s) => within(m.path, s.path)))] };
}

/** Cross-reference checks (ids, references, plugin configs); normalises `c` in place. */
function checkReferences(c: any, registry: Registry, issues: ConfigIssue[]): void {
  const upstreamIds = new Set<string>();
  c.upstreams.forEach((u: any, i: number) => {
    const path = joinPath('upstreams', i);
    normaliseUpstream(u, path, issues);
    if (upstreamIds.has(u.id)) issues.push({ path: joinPath(path, 'id'), message: `duplicate upstream id ${JSON.stringify(u.id)}` });
    upstreamIds.add(u.id);
  });

  const routeIds = new Set<string>();
  c.routes.forEach((r: any, i: number) => {
    const path = joinPath('routes', i);
    if (r.id === undefined) issues.push({ path: joinPath(path, 'id'), message: 'is required' });
    else {
      r.id = String(r.id);
      if (routeIds.has(r.id)) issues.push({ path: joinPath(path, 'id'), message: `duplicate route id "${r.id}"` });
      routeIds.add(r.id);
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
      if (!upstreamIds.has(r.upstream_id)) issues.push({ path: joinPath(path, 'upstream_id'), message: `refers to unknown upstream ${JSON.stringify(r.upstream_id)}` });
    }
    checkPlugins(r.plugins, joinPath(path, 'plugins'), registry, false, issues);
  });

  const usernames = new Set<string>();
  c.consumers.forEach((k: any, i: number) => {
    const path = joinPath('consumers', i);
    if (usernames.has(k.username)) issues.push({ path: joinPath(path, 'username'), message: `duplicate consumer "${k.username}"` });
    usernames.add(k.username);
    checkPlugins(k.plugins, joinPath(path, 'plugins'), registry, true, issues);
  });

  const size = c.gateway.client_max_body_size;
  const bytes = parseSize(size);
  if (bytes === undefined) {
    // a reference passes the schema's pattern (checked on resolved values), but a size is read at load
    const why = typeof size === 'string' && looksLikeReference(size) ? 'must be a size, not a reference' : 'is too large';
    issues.push({ path: 'gateway.client_max_body_size', message: why });
  } else c.gateway.client_max_body_size = bytes;

  checkListeners(c, issues);
  if (c.admin) {
    (c.admin.allow as string[]).forEach((entry, i) => {
      try {
        allowList([entry]);
      } catch (err) {
        issues.push({ path: joinPath(joinPath('admin', 'allow'), i), message: (err as Error).message });
      }
    });
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

/** Find every reference in the places that may hold one, checking each against the config. */
function collectReferences(c: any, registry: Registry, issues: ConfigIssue[]): ReferenceSite[] {
  const sites: ReferenceSite[] = [];
  const resources = new Set<string>(c.secrets.map((s: { id: string }) => s.id));
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
      } else if (ref.manager !== 'env' && !resources.has(ref.resource)) issues.push({ path, message: `refers to unknown secret resource "${ref.resource}" (add it under secrets:)` });
      else if (owner !== null && ref.resource === owner) issues.push({ path, message: 'a secret resource cannot reference itself' });
      else sites.push({ path, ref });
      return;
    }
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, joinPath(path, i), owner));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, joinPath(path, k), owner);
  };
  c.routes.forEach((r: any, i: number) => walk(r.plugins, joinPath(joinPath('routes', i), 'plugins'), null));
  c.consumers.forEach((k: any, i: number) => walk(k.plugins, joinPath(joinPath('consumers', i), 'plugins'), null));
  c.secrets.forEach((s: any, i: number) => {
    const { id, ...fields } = s;
    walk(fields, joinPath('secrets', i), id);
  });
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

/** Freeze an object graph in place (config is immutable once loaded). */
export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
