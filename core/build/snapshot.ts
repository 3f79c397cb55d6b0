// Compiles a validated config into an immutable Snapshot (its shape: core/request/snapshot.ts): the
// router, per-route hook chains (plugin instances with frozen config) and upstreams with their
// balancers and pools. Requests read one snapshot at their start and use it to their end.
import type { Pool } from 'undici';
import type { ConsumerEntry, CreateServices, Hook, IndexServices, Logger, Plugin, PluginHooks, PluginServices, PluginState, RequestContext, RouteInfo } from '../contracts';
import { createBalancer, type Balancer, type UpstreamNode } from '../request/balancer';
import { PassiveHealth } from '../request/health';
import { buildRouter, RouteUriError, type Router } from '../request/router';
import type { GatewayConfig, RouteConfig, UpstreamConfig } from '../config/types';
import { sectionOf } from '../config/section';
import type { Registry } from '../config/registry';
import type { SchemaCheck } from '../config/schema-check';
import { deepFreeze } from '../config/validate';
import { joinPath } from '../config/paths';
import { allowList } from '../config/allow-list';
import { hasReferences, referencesIn, substituteReferences } from '../secrets/backends';
import type { ConfigIssue } from '../errors';
import type { UpstreamPools } from '../request/upstream-pools';
import type { StateHold } from './plugin-state';
import { FailClosedLog, pathText, referencePaths } from './fail-closed';
import { buildTls, type TlsContexts } from './tls';
import { upstreamTls, type KeptUpstreamTls, type UpstreamTlsInput } from './upstream-tls';
import { nodeKey, Snapshot, type CompiledRoute, type CompiledUpstream } from '../request/snapshot';

/** Resolved reference values for one compile, by reference text. */
export type ResolvedValues = ReadonlyMap<string, string | Error>;

/** Things that outlive snapshots, owned by the gateway. */
export interface SnapshotDeps {
  readonly registry: Registry;
  readonly pools: UpstreamPools;
  readonly healthStates: Map<string, PassiveHealth>;
  /**
   * By upstream identity, the TLS its last build made from checked PEMs, with its `tls` as written:
   * a rotation whose pair is refused keeps it (build/upstream-tls.ts). Optional: without it, such a
   * rotation refuses the build.
   */
  readonly upstreamTls?: Map<string, KeptUpstreamTls>;
  readonly services: Omit<PluginServices, 'state'>;
  /** The reload-surviving state of one plugin, as one build sees it (what it gets counts for `hold`). */
  state(plugin: string, hold?: StateHold): PluginState;
  /** A new hold on plugin state, for one build; released with its snapshot (or when the build fails). */
  holdState(): StateHold;
  /** The generation of the next snapshot of this gateway (1, 2, …). */
  nextGeneration(): number;
  /** What failed closed in the builds before (each failure is logged once); without it every build logs its own. */
  readonly failures?: FailClosedLog;
  /** Counts what builds do (tests and metrics: a change compiles only what it changes). */
  readonly counters?: BuildCounters;
}

/** What builds report doing. */
export interface BuildCounters {
  /** A snapshot build started: every object compiled ('full'), or only what a change touched ('incremental'). */
  build(kind: 'full' | 'incremental'): void;
  /** Objects compiled by a build. */
  compiled(kind: 'consumer' | 'route' | 'upstream' | 'ssl', n: number): void;
  /** A plugin's consumer index: built over every consumer ('built') or updated by a delta ('updated'). */
  index(plugin: string, how: 'built' | 'updated'): void;
  /** The router: built over every route ('built') or updated ('updated'). */
  router(how: 'built' | 'updated'): void;
}

// shared empties: 100 000 consumers should not mean 300 000 empty collections
const NO_PREVIOUS: Array<{ config: object; until: number }> = Object.freeze([]) as unknown as Array<{ config: object; until: number }>;
const NO_TEXTS: readonly string[] = Object.freeze([]);

/**
 * One upstream's balancer and pools (taken pools pushed to `owned`); its TLS from `tls` (issues of
 * resolved PEMs pushed to `tls.issues`: the build is refused).
 */
export function compileUpstream(u: UpstreamConfig, identity: string, deps: SnapshotDeps, owned: Pool[], tls: UpstreamTlsInput): CompiledUpstream {
  const nodes: UpstreamNode[] = u.nodes.map((n) => {
    const host = n.host.startsWith('[') ? n.host.slice(1, -1) : n.host;
    return { host, port: n.port, weight: n.weight, key: nodeKey(host, n.port) };
  });
  const pools = new Map<string, Pool>();
  const secure = upstreamTls(u, identity, tls, deps.services.logger, deps.upstreamTls);
  if (secure.unavailable === undefined) {
    for (const n of nodes) {
      const pool = deps.pools.acquire(`${u.scheme}://${n.key}`, {
        connectTimeoutMs: u.timeout.connect * 1000,
        size: u.keepalive_pool.size,
        idleTimeoutMs: u.keepalive_pool.idle_timeout * 1000,
        maxRequestsPerConnection: u.keepalive_pool.requests,
        ...(secure.tls === undefined ? {} : { tls: secure.tls }),
      });
      owned.push(pool);
      pools.set(n.key, pool);
    }
  }
  const passive = u.checks.passive;
  const healthKey = `${identity}|${passive.failures}|${passive.cooldown}`;
  let health = deps.healthStates.get(healthKey);
  if (!health) deps.healthStates.set(healthKey, (health = new PassiveHealth({ failures: passive.failures, cooldown: passive.cooldown, now: () => deps.services.clock.now() })));
  const usable = nodes.filter((n) => n.weight > 0).length;
  return {
    identity,
    config: u,
    balancer: createBalancer({ type: u.type, nodes, hashOn: u.hash_on, key: u.key }),
    nodes,
    pools,
    health,
    failStatuses: passive.http_statuses.length ? new Set(passive.http_statuses) : null,
    sendTimeoutMs: u.timeout.send * 1000,
    readTimeoutMs: u.timeout.read * 1000,
    // default as APISIX: try every node once
    retries: u.retries ?? Math.max(usable - 1, 0),
    isChash: u.type === 'chash',
    ...(secure.unavailable === undefined ? {} : { unavailable: secure.unavailable }),
  };
}

/** The plugin config with its references replaced by their values, or why it cannot be had. */
export type ResolveConfig = (conf: unknown, check: SchemaCheck | undefined, path: string, owner: Record<string, string>) => { conf: unknown } | { failed: { reference: string; reason: string } };

/**
 * Resolution of plugin configs for one compile: references replaced by their values, checked again
 * by the plugin's schema (rules a reference could not meet apply to its value).
 */
export function configResolver(values: ResolvedValues, logger: Logger, failures: FailClosedLog): ResolveConfig {
  return (conf, check, path, owner) => {
    if (!hasReferences(conf)) return { conf };
    let failed: { reference: string; reason: string } | undefined;
    const resolved = substituteReferences(conf, (text) => {
      const v = values.get(text);
      if (typeof v === 'string') return v;
      failed ??= { reference: text, reason: v ? v.message : 'not resolved' };
      return '';
    });
    if (failed) {
      logger.error({ ...owner, reference: failed.reference, cause: failed.reason }, 'fails closed: a secret it needs is unavailable');
      return { failed };
    }
    const bad = check ? check(resolved, path, false) : [];
    if (bad.length) {
      const reason = `a resolved secret does not satisfy the schema: ${bad.map((b) => `${b.path}: ${b.message}`).join('; ')}`;
      failures.report(`${JSON.stringify(owner)}|${reason}`, { ...owner, references: referencesIn(conf), cause: reason }, 'fails closed: a secret it needs is invalid');
      return { failed: { reference: bad[0].path, reason } };
    }
    return { conf: resolved };
  };
}

/** The consumers step's output: each plugin's consumer entries, and when the first rotation grace among them ends. */
export interface CompiledConsumers {
  readonly entries: ReadonlyMap<string, ConsumerEntry[]>;
  readonly expiresAt: number;
  /** The config as written (references as their text) of each entry that holds references. */
  readonly written: ReadonlyMap<ConsumerEntry, unknown>;
  /** Each consumer with a rotation grace, and when its first one ends. */
  readonly grace: ReadonlyMap<string, number>;
}

/**
 * Step 1, consumers: each consumer's resolved plugin configs, grouped by plugin for the plugins'
 * indexes (built in step 2, before any route's `create`). Nothing per consumer is kept beyond what
 * those indexes keep (100 000 consumers: no 100 000 Maps in the snapshot).
 */
export function compileConsumers(
  config: GatewayConfig,
  registry: Registry,
  resolve: ResolveConfig,
  values: ResolvedValues,
  previousValue: (text: string) => { value: string; until: number } | undefined,
  /** The indexes of the consumers to compile (an incremental build's); default every one. */
  only?: readonly number[],
): CompiledConsumers {
  const entries = new Map<string, ConsumerEntry[]>();
  const written = new Map<ConsumerEntry, unknown>();
  const grace = new Map<string, number>();
  let expiresAt = Number.POSITIVE_INFINITY;
  const each = (k: GatewayConfig['consumers'][number], i: number): void => {
    for (const name of Object.keys(k.plugins)) {
      const path = joinPath(joinPath(joinPath('consumers', i), 'plugins'), name);
      const check = registry.pluginConsumerCheck(name);
      const res = resolve(k.plugins[name], check, path, { consumer: k.username, plugin: name });
      // an unresolvable credential leaves this consumer out of that plugin's index (fail closed; logged)
      if ('failed' in res) continue;
      const conf = deepFreeze(res.conf) as object;
      // configs this one replaced in a rotation, valid while their grace lasts
      let previous: Array<{ config: object; until: number }> = NO_PREVIOUS;
      for (const text of hasReferences(k.plugins[name]) ? referencesIn(k.plugins[name]) : NO_TEXTS) {
        const p = previousValue(text);
        if (!p) continue;
        const old = substituteReferences(k.plugins[name], (t) => (t === text ? p.value : (values.get(t) as string)));
        if (check && check(old, path, false).length) continue;
        if (previous === NO_PREVIOUS) previous = [];
        previous.push({ config: deepFreeze(old) as object, until: p.until });
        expiresAt = Math.min(expiresAt, p.until);
        grace.set(k.username, Math.min(grace.get(k.username) ?? Number.POSITIVE_INFINITY, p.until));
      }
      if (previous.length > 1) previous.sort((a, b) => b.until - a.until);
      let list = entries.get(name);
      if (!list) entries.set(name, (list = []));
      const entry: ConsumerEntry = { username: k.username, config: conf, previous, path };
      // the resolver hands a config without references back as it is: one with them is a new object
      if (conf !== k.plugins[name]) written.set(entry, k.plugins[name]);
      list.push(entry);
    }
  };
  if (only === undefined) config.consumers.forEach(each);
  else {
    // (an incremental build's few: read from the section, never the whole list)
    const consumers = sectionOf<GatewayConfig['consumers'][number]>(config, 'consumers');
    for (const i of only) each(consumers.get(i), i);
  }
  return { entries, expiresAt, written, grace };
}

/** What every `create` of one plugin in one build receives, but its route and its references. */
export type BuildServices = Omit<CreateServices, 'route' | 'isReference'>;

/** Whether a path is that of a reference, for a config without any. */
const NO_REFERENCE = (): boolean => false;

/** `isReference` over a config as written: what it holds as references, found on first use. */
function referenceCheck(written: unknown): (path: string | ReadonlyArray<string | number>) => boolean {
  let paths: Set<string> | undefined;
  return (path) => (paths ??= referencePaths(written)).has(pathText(path));
}

/** Is `path` (an issue's path) inside the config at `base`? */
function within(path: string, base: string): boolean {
  return path === base || (path.startsWith(base) && (path[base.length] === '.' || path[base.length] === '['));
}

/**
 * A plugin's consumer index, with the entries it cannot use left out: those it `exclude`s, and
 * one holding references that a throw names (its value is what failed: the message, which may
 * quote it, is not used). Each is logged once, naming the consumer, the plugin, its references and
 * the cause; the index is built again without them. A throw naming nothing that holds a reference
 * is an error in what was written: an issue, as before.
 */
export function indexOf(
  name: string,
  plugin: Plugin,
  consumers: CompiledConsumers,
  base: Omit<PluginServices, 'consumers'>,
  failures: FailClosedLog,
  issues: ConfigIssue[],
  /** Told when the index leaves an entry out (a later change must build it whole again: what it left out is not in it to compare with). */
  leftOut: () => void = () => undefined,
): unknown {
  let list: readonly ConsumerEntry[] = consumers.entries.get(name) ?? [];
  const checks = new Map<ConsumerEntry, (path: string | ReadonlyArray<string | number>) => boolean>();
  for (;;) {
    const left = new Map<ConsumerEntry, string>();
    const services: IndexServices = {
      ...base,
      exclude: (entry, reason) => {
        if (!left.has(entry)) left.set(entry, String(reason));
      },
      isReference: (entry, path) => {
        const written = consumers.written.get(entry);
        if (written === undefined) return false;
        let check = checks.get(entry);
        if (!check) checks.set(entry, (check = referenceCheck(written)));
        return check(path);
      },
    };
    let index: unknown;
    try {
      index = plugin.indexConsumers!(list, services);
    } catch (err) {
      const at = (err as { path?: unknown }).path;
      const culprit = typeof at === 'string' ? list.find((e) => consumers.written.has(e) && within(at, e.path)) : undefined;
      if (culprit === undefined) {
        issues.push({ path: typeof at === 'string' ? at : 'consumers', message: (err as Error).message });
        return undefined;
      }
      left.set(culprit, `plugin "${name}" rejected the value of ${referencesIn(consumers.written.get(culprit)).join(', ')}`);
    }
    if (left.size === 0) return index;
    leftOut();
    const members = new Set(list);
    const rest = list.filter((e) => !left.has(e));
    for (const [entry, reason] of left) {
      if (!members.has(entry)) continue;
      const references = referencesIn(consumers.written.get(entry));
      failures.report(`consumer|${entry.username}|${name}|${reason}`, { consumer: entry.username, plugin: name, references, cause: reason }, 'fails closed: the consumer cannot authenticate with this plugin');
    }
    // nothing left out (or only what was not in the list): this index is the one
    if (rest.length === list.length) return index;
    list = rest;
  }
}

/**
 * Step 2, plugins: each registered plugin's services for this build — its `buildStart` value, its
 * state (counted for this build's hold) and its consumer index. Issues: a `buildStart` that threw,
 * or an `indexConsumers` that threw for what was written.
 */
function pluginServices(deps: SnapshotDeps, hold: StateHold, consumers: CompiledConsumers, usernames: ReadonlySet<string>, failures: FailClosedLog, issues: ConfigIssue[], partial: Set<string>): Map<string, BuildServices> {
  const { consumers: _none, ...rest } = deps.services;
  const common = { ...rest, hasConsumer: (u: string) => usernames.has(u) };
  const servicesOf = new Map<string, BuildServices>();
  for (const [name, plugin] of deps.registry.plugins) {
    let build: unknown;
    try {
      build = plugin.buildStart?.();
    } catch (err) {
      issues.push({ path: '', message: `plugin "${name}": buildStart failed: ${(err as Error).message}` });
    }
    const base = { ...common, state: deps.state(name, hold) };
    const index = plugin.indexConsumers ? indexOf(name, plugin, consumers, base, failures, issues, () => partial.add(name)) : undefined;
    if (plugin.indexConsumers) deps.counters?.index(name, 'built');
    servicesOf.set(name, { ...base, consumers: index, build });
  }
  return servicesOf;
}

/** An enabled route's plugin side: its hook chains, body limit, and what makes it fail closed. */
export type RouteHooks = Pick<CompiledRoute, 'info' | 'requestHooks' | 'requestHookNames' | 'responseHooks' | 'responseHookNames' | 'logHooks' | 'logHookNames' | 'bodyLimit' | 'unavailable'> & {
  /** The route's index in `config.routes`. */
  readonly index: number;
};

/** A plugin state for one trial `create`: values made on request, disposed of once it returns. */
function scratchState(): { state: PluginState; dispose(): void } {
  const made: Array<() => unknown> = [];
  return {
    state: {
      get<T>(_key: string, init: () => T, dispose?: (value: T) => void | Promise<void>): T {
        const v = init();
        if (dispose) made.push(() => dispose(v));
        return v;
      },
      delete: async () => undefined,
    },
    dispose() {
      for (const d of made) {
        try {
          void Promise.resolve(d()).catch(() => undefined);
        } catch {
          // a scratch value that cannot be disposed of is dropped
        }
      }
    },
  };
}

/**
 * Why a route plugin's config, refused once its references were resolved, is refused: `create`
 * (and `maxBodySize`) again with each reference as its text, on a scratch state and build value.
 * @returns the error of that run, when what was written is at fault (its message holds no value);
 *   undefined when that run passes (or names a field that held a reference): the value is at fault
 */
function valueOrConfig(plugin: Plugin, written: unknown, services: BuildServices, route: RouteInfo, isReference: (path: string) => boolean): unknown {
  const scratch = scratchState();
  try {
    let build: unknown;
    try {
      build = plugin.buildStart?.();
    } catch {
      build = undefined;
    }
    const conf = deepFreeze(structuredClone(written)) as object;
    plugin.create(conf, { ...services, state: scratch.state, build, route, isReference });
    plugin.maxBodySize?.(conf);
    return undefined;
  } catch (err) {
    const sub = (err as { path?: unknown }).path;
    return typeof sub === 'string' && isReference(sub) ? undefined : err;
  } finally {
    scratch.dispose();
  }
}

/**
 * Step 3, hook chains: every enabled route's plugins created (once per route, never per request)
 * and their hooks in phase then priority order, with the route's body limit. Issues: a `create`
 * (or a `maxBodySize`) that threw, or an invalid body limit.
 */
export function compileHookChains(
  config: GatewayConfig,
  registry: Registry,
  servicesOf: ReadonlyMap<string, BuildServices>,
  resolve: ResolveConfig,
  failures: FailClosedLog,
  issues: ConfigIssue[],
  /** Told of each consumer a route's `create` asks about (a change to that consumer creates the route again). */
  asked: (username: string, route: string) => void,
  /** The state its plugins got, held per route (a later change of the route lets go of it), for each route that got any. */
  holds: Map<string, StateHold>,
  state: SnapshotDeps['state'],
  holdState: () => StateHold,
  /** The indexes of the routes to compile (an incremental build's); default every one. */
  only?: readonly number[],
): RouteHooks[] {
  const chains: RouteHooks[] = [];
  const each = (r: GatewayConfig['routes'][number], i: number): void => {
    if (r.status === 0) return; // disabled, as APISIX's status: 0

    const phases = { rewrite: [] as Entry[], access: [] as Entry[], beforeProxy: [] as Entry[], response: [] as Entry[], log: [] as Entry[] };
    let unavailable: { reference: string; reason: string } | undefined;
    let bodyLimit: { size: number; priority: number; name: string } | undefined;
    const info: RouteInfo = Object.freeze({ id: r.id, uri: r.uris[0] });
    const hold = holdState();
    for (const name of Object.keys(r.plugins)) {
      const plugin = registry.plugins.get(name)!;
      const pluginPath = joinPath(joinPath(joinPath('routes', i), 'plugins'), name);
      const res = resolve(r.plugins[name], registry.pluginCheck(name), pluginPath, { route: r.id, plugin: name });
      if ('failed' in res) {
        unavailable ??= res.failed;
        continue;
      }
      let hooks: PluginHooks;
      let size: number | undefined;
      const written = r.plugins[name];
      const isReference = res.conf === written ? NO_REFERENCE : referenceCheck(written);
      try {
        const conf = deepFreeze(res.conf) as any;
        const base = servicesOf.get(name)!;
        hooks = plugin.create(conf, { ...base, route: info, isReference, hasConsumer: askingHasConsumer(base.hasConsumer, asked, r.id), state: state(name, hold) });
        size = plugin.maxBodySize?.(conf);
      } catch (err) {
        const refused = isReference === NO_REFERENCE ? err : valueOrConfig(plugin, written, servicesOf.get(name)!, info, isReference);
        if (refused === undefined) {
          // only the resolved config is refused: the value is at fault, not what was written. The route
          // fails closed; the plugin's message is not used (it may quote the value)
          const references = referencesIn(written);
          const reason = `plugin "${name}" rejected the value of ${references.join(', ')}`;
          failures.report(`route|${r.id}|${name}|${reason}`, { route: r.id, plugin: name, references, cause: reason }, 'fails closed: a plugin rejected the value of a secret it needs');
          unavailable ??= { reference: references.join(', '), reason };
          continue;
        }
        // a plugin may name the field at fault (ConfigError from the SDK): report it there
        const sub = (refused as { path?: unknown }).path;
        issues.push({ path: typeof sub === 'string' && sub !== '' ? `${pluginPath}.${sub}` : pluginPath, message: (refused as Error).message });
        continue;
      }
      if ((hooks as { maxBodySize?: unknown }).maxBodySize !== undefined) {
        // the limit is declared on the plugin: one still returned by create would be silently lost
        issues.push({ path: pluginPath, message: 'maxBodySize is declared on the plugin (maxBodySize(config)), not returned by create' });
        continue;
      }
      if (size !== undefined) {
        if (!Number.isSafeInteger(size) || size < 0) {
          issues.push({ path: pluginPath, message: `maxBodySize must be an integer >= 0 (plugin returned ${String(size)})` });
          continue;
        }
        if (bodyLimit === undefined || plugin.priority > bodyLimit.priority || (plugin.priority === bodyLimit.priority && name < bodyLimit.name)) bodyLimit = { size, priority: plugin.priority, name };
      }
      for (const phase of Object.keys(phases) as (keyof typeof phases)[]) {
        const h = hooks[phase];
        if (typeof h === 'function') phases[phase].push({ name, priority: plugin.priority, hook: h.bind(hooks) as Hook });
      }
    }
    if (hold.entries.size > 0) holds.set(r.id, hold);
    else hold.release();
    for (const list of Object.values(phases)) list.sort((a, b) => b.priority - a.priority || (a.name < b.name ? -1 : 1));
    const request = [...phases.rewrite, ...phases.access, ...phases.beforeProxy];
    chains.push({
      index: i,
      info,
      requestHooks: request.map((e) => e.hook),
      requestHookNames: request.map((e) => e.name),
      responseHooks: phases.response.map((e) => e.hook),
      responseHookNames: phases.response.map((e) => e.name),
      logHooks: phases.log.map((e) => e.hook as (ctx: RequestContext) => void),
      logHookNames: phases.log.map((e) => e.name),
      bodyLimit: bodyLimit === undefined ? config.gateway.client_max_body_size : bodyLimit.size,
      unavailable,
    });
  };
  if (only === undefined) config.routes.forEach(each);
  else {
    const routes = sectionOf<RouteConfig>(config, 'routes');
    for (const i of only) each(routes.get(i), i);
  }
  return chains;
}

/**
 * Step 4, upstreams: every `upstreams:` entry a route uses, compiled once (its balancer and pools),
 * by id; a route's own `upstream` is compiled with the route (see {@link assembleRoute}). The pools
 * taken are pushed to `owned`.
 */
function compileUpstreams(config: GatewayConfig, chains: readonly RouteHooks[], deps: SnapshotDeps, owned: Pool[], values: ResolvedValues, issues: ConfigIssue[]): Map<string, CompiledUpstream> {
  const upstreamAt = new Map(config.upstreams.map((u, i) => [u.id as string, i]));
  const shared = new Map<string, CompiledUpstream>();
  for (const { index } of chains) {
    const id = config.routes[index].upstream_id;
    if (id === undefined || shared.has(id)) continue;
    const i = upstreamAt.get(id)!;
    shared.set(id, compileUpstream(config.upstreams[i], `upstream:${id}`, deps, owned, { path: joinPath('upstreams', i), ssls: config.ssls, values, issues }));
  }
  return shared;
}

/**
 * A route's hook chains with its upstream: its own (compiled here, pools pushed to `owned`, issues
 * of its TLS to `issues`) or an `upstreams:` entry by id.
 */
export function assembleRoute(config: GatewayConfig, { index, ...hooks }: RouteHooks, deps: SnapshotDeps, owned: Pool[], values: ResolvedValues, issues: ConfigIssue[]): CompiledRoute {
  const r = sectionOf<RouteConfig>(config, 'routes').get(index);
  const upstream = r.upstream ? compileUpstream(r.upstream, `route:${r.id}`, deps, owned, { path: joinPath(joinPath('routes', index), 'upstream'), ssls: config.ssls, values, issues }) : undefined;
  return { ...hooks, config: r, id: r.id, uris: r.uris, methods: r.methods, hosts: r.hosts, priority: r.priority, upstream, upstreamId: r.upstream ? undefined : r.upstream_id };
}

/** A route in the router's order that matches nothing: a disabled one (status 0). */
export function placeholder(id: string): CompiledRoute {
  return { id, uris: [], priority: 0 } as unknown as CompiledRoute;
}

/** The issue of a uri the router refused, at that uri. */
export function routeUriIssue(config: GatewayConfig, err: RouteUriError): ConfigIssue {
  const i = config.routes.findIndex((r) => r.id === err.routeId);
  const j = i === -1 ? -1 : config.routes[i].uris.indexOf(err.uri);
  return { path: j === -1 ? joinPath('routes', i) : joinPath(joinPath(joinPath('routes', i), 'uris'), j), message: err.message };
}

/**
 * Step 5, routes: each route's hook chains and upstream together, and the router over them.
 * Issues: a uri the router refuses (named at that uri).
 */
function compileRoutes(config: GatewayConfig, chains: readonly RouteHooks[], deps: SnapshotDeps, owned: Pool[], values: ResolvedValues, issues: ConfigIssue[]): { routes: CompiledRoute[]; router: Router<CompiledRoute> } | { issues: ConfigIssue[] } {
  const routes = chains.map((c) => assembleRoute(config, c, deps, owned, values, issues));
  try {
    deps.counters?.router('built');
    // a disabled route keeps its place in the router's order (it matches nothing), so enabling it
    // again is a replacement at that place, not an addition at the end
    const byIndex = new Map(chains.map((c, k) => [c.index, routes[k]]));
    return { routes, router: buildRouter(config.routes.map((r, i) => byIndex.get(i) ?? placeholder(r.id))) };
  } catch (err) {
    if (!(err instanceof RouteUriError)) throw err;
    return { issues: [routeUriIssue(config, err)] };
  }
}

/**
 * What the build path keeps of the live snapshot, to apply the next change to it without compiling
 * the rest again (core/build/incremental.ts). Never read by requests. Its maps are the builder's
 * own and change only when a build based on them is installed.
 */
export interface LiveBuild {
  readonly snapshot: Snapshot;
  /** Each plugin's services of the last full build (its `buildStart` value, its state view). */
  readonly servicesOf: ReadonlyMap<string, BuildServices>;
  /** plugin → username → the entry its index holds, in config order. */
  readonly entries: Map<string, Map<string, ConsumerEntry>>;
  /** The config as written of each entry that holds references. */
  readonly written: Map<ConsumerEntry, unknown>;
  /** Consumers in a rotation grace, and when the first one ends. */
  readonly grace: Map<string, number>;
  readonly usernames: Set<string>;
  /** username → the routes whose `create` asked whether it exists. */
  readonly asked: Map<string, Set<string>>;
  /** The compiled enabled routes by id. */
  readonly routeById: Map<string, CompiledRoute>;
  /** Every route of the config by id, disabled ones too (each has its place in the router). */
  readonly routeIds: Set<string>;
  /** The compiled upstream of each enabled route that has its own (`upstream:`). */
  readonly inline: Map<string, CompiledUpstream>;
  /** The plugin state its builds' plugin services got (index and build-wide state), kept by every later incremental snapshot. */
  readonly holds: readonly StateHold[];
  /** The state each route's plugins got, by route id (a change of the route lets go of its old one). */
  readonly routeHolds: Map<string, StateHold>;
  /**
   * The plugins whose index left a consumer out (a shared key, an unusable value): a change to
   * their consumers builds their index whole, since what was left out is not in it to be compared.
   */
  readonly partial: ReadonlySet<string>;
  /** The SSL resources' contexts in the snapshot's TLS table (a change makes only its own again). */
  readonly tls: TlsContexts;
}

/** A built snapshot and what the build path keeps of it. */
export interface Built {
  readonly snapshot: Snapshot;
  readonly live: LiveBuild;
}

/**
 * `hasConsumer` for one route's `create`, telling `asked` what the route asks about. Made here, not
 * inline: a plugin may keep what it is given, and a closure keeps the whole scope it was made in
 * (a build's config, the live build before it), which would chain every snapshot to the one before.
 */
function askingHasConsumer(has: (username: string) => boolean, asked: (username: string, route: string) => void, route: string): (username: string) => boolean {
  return (username) => {
    asked(username, route);
    return has(username);
  };
}

/** `asked` for compileHookChains, recording into `into` (its own scope: see askingHasConsumer). */
export function askedInto(into: Map<string, Set<string>>): (username: string, route: string) => void {
  return (u, r) => recordAsked(into, u, r);
}

/** What a snapshot lets go of when released: its pools and its plugin state holds (its own scope: see askingHasConsumer). */
export function releaser(pools: UpstreamPools, held: readonly Pool[], holds: readonly StateHold[]): () => void {
  return () => {
    for (const p of held) pools.release(p);
    for (const h of holds) h.release();
  };
}

/** Record that a route asked about a consumer. */
export function recordAsked(asked: Map<string, Set<string>>, username: string, route: string): void {
  let routes = asked.get(username);
  if (!routes) asked.set(username, (routes = new Set()));
  routes.add(route);
}

/**
 * Build a snapshot, in steps: consumers, plugins, hook chains (plugin `create` runs here, once per
 * route, never per request), upstreams, routes.
 * @returns the snapshot, or the issues found (plugin factories may reject their config)
 */
export function compileSnapshot(
  config: GatewayConfig,
  deps: SnapshotDeps,
  values: ResolvedValues = new Map(),
  refKeys: ReadonlySet<string> = new Set(),
  /** The value a reference had before its last rotation, while the grace lasts. */
  previousValue: (text: string) => { value: string; until: number } | undefined = () => undefined,
  /** The live snapshot's SSL contexts: an SSL resource whose rotated pair is refused keeps its own (build/tls.ts). */
  liveTls: TlsContexts = new Map(),
): (Built & { issues?: undefined }) | { issues: ConfigIssue[]; snapshot?: undefined } {
  const issues: ConfigIssue[] = [];
  const failures = deps.failures ?? new FailClosedLog(deps.services.logger);
  const resolve = configResolver(values, deps.services.logger, failures);
  const hold = deps.holdState();
  deps.counters?.build('full');
  // consumers first: plugins that authenticate them get their index before routes create them
  const consumers = compileConsumers(config, deps.registry, resolve, values, previousValue);
  deps.counters?.compiled('consumer', config.consumers.length);
  const usernames = new Set(config.consumers.map((k) => k.username));
  const partial = new Set<string>();
  const servicesOf = pluginServices(deps, hold, consumers, usernames, failures, issues, partial);
  const asked = new Map<string, Set<string>>();
  const routeHolds = new Map<string, StateHold>();
  const chains = compileHookChains(config, deps.registry, servicesOf, resolve, failures, issues, askedInto(asked), routeHolds, deps.state, deps.holdState);
  deps.counters?.compiled('route', chains.length);
  if (issues.length) {
    failures.settle(false);
    hold.release();
    for (const h of routeHolds.values()) h.release();
    return { issues };
  }
  // what this build holds: let go of by a failed build at once, by a snapshot when it is released
  const owned: Pool[] = [];
  // (the live build's map of route holds changes with later incremental builds: this snapshot's are these)
  const release = releaser(deps.pools, owned, [hold, ...routeHolds.values()]);
  // (issues of upstreams' TLS PEMs once resolved: a pair that does not match refuses the build)
  const upstreams = compileUpstreams(config, chains, deps, owned, values, issues);
  const compiled = compileRoutes(config, chains, deps, owned, values, issues);
  if ('issues' in compiled || issues.length) {
    failures.settle(false);
    release();
    return { issues: 'issues' in compiled ? [...issues, ...compiled.issues] : issues };
  }
  deps.counters?.compiled('upstream', upstreams.size + compiled.routes.filter((r) => r.upstream !== undefined).length);
  const tls = buildTls(config, values, deps.services.logger, new Map(), liveTls);
  if (tls.issues) {
    failures.settle(false);
    release();
    return { issues: tls.issues };
  }
  deps.counters?.compiled('ssl', tls.created);
  failures.settle(true);
  const proxies = config.gateway.trusted_proxies;
  const trusted = proxies.length === 0 ? null : allowList(proxies);
  const indexes = new Map<string, unknown>();
  for (const [name, s] of servicesOf) if (s.consumers !== undefined) indexes.set(name, s.consumers);
  const snapshot = new Snapshot(deps.nextGeneration(), config, compiled.router, compiled.routes, refKeys, consumers.expiresAt, release, trusted, indexes, upstreams, tls.table);
  const entries = new Map<string, Map<string, ConsumerEntry>>();
  for (const [name, list] of consumers.entries) entries.set(name, new Map(list.map((e) => [e.username, e])));
  const live: LiveBuild = {
    snapshot,
    servicesOf,
    entries,
    written: new Map(consumers.written),
    grace: new Map(consumers.grace),
    usernames,
    asked,
    routeById: new Map(compiled.routes.map((r) => [r.id, r])),
    routeIds: new Set(config.routes.map((r) => r.id)),
    inline: new Map(compiled.routes.filter((r) => r.upstream !== undefined).map((r) => [r.id, r.upstream!])),
    holds: [hold],
    routeHolds,
    partial,
    tls: tls.contexts,
  };
  return { snapshot, live };
}

interface Entry {
  name: string;
  priority: number;
  hook: Hook;
}
