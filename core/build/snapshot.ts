// Compiles a validated config into an immutable Snapshot (its shape: core/request/snapshot.ts): the
// router, per-route hook chains (plugin instances with frozen config) and upstreams with their
// balancers and pools. Requests read one snapshot at their start and use it to their end.
import type { Pool } from 'undici';
import type { ConsumerEntry, CreateServices, Hook, Logger, PluginHooks, PluginServices, PluginState, RequestContext, RouteInfo } from '../contracts';
import { createBalancer, type Balancer, type UpstreamNode } from '../request/balancer';
import { PassiveHealth } from '../request/health';
import { buildRouter, RouteUriError, type Router } from '../request/router';
import type { GatewayConfig, UpstreamConfig } from '../config/types';
import type { Registry } from '../config/registry';
import type { SchemaCheck } from '../config/schema-check';
import { deepFreeze } from '../config/validate';
import { joinPath } from '../config/paths';
import { allowList } from '../config/allow-list';
import { hasReferences, referencesIn, substituteReferences } from '../secrets/backends';
import type { ConfigIssue } from '../errors';
import type { UpstreamPools } from '../request/upstream-pools';
import type { StateHold } from './plugin-state';
import { nodeKey, Snapshot, type CompiledRoute, type CompiledUpstream } from '../request/snapshot';

/** Resolved reference values for one compile, by reference text. */
export type ResolvedValues = ReadonlyMap<string, string | Error>;

/** Things that outlive snapshots, owned by the gateway. */
export interface SnapshotDeps {
  readonly registry: Registry;
  readonly pools: UpstreamPools;
  readonly healthStates: Map<string, PassiveHealth>;
  readonly services: Omit<PluginServices, 'state'>;
  /** The reload-surviving state of one plugin, as one build sees it (what it gets counts for `hold`). */
  state(plugin: string, hold?: StateHold): PluginState;
  /** A new hold on plugin state, for one build; released with its snapshot (or when the build fails). */
  holdState(): StateHold;
  /** The generation of the next snapshot of this gateway (1, 2, …). */
  nextGeneration(): number;
}

// shared empties: 100 000 consumers should not mean 300 000 empty collections
const NO_PREVIOUS: Array<{ config: object; until: number }> = Object.freeze([]) as unknown as Array<{ config: object; until: number }>;
const NO_TEXTS: readonly string[] = Object.freeze([]);

function compileUpstream(u: UpstreamConfig, identity: string, deps: SnapshotDeps, owned: Pool[]): CompiledUpstream {
  const nodes: UpstreamNode[] = u.nodes.map((n) => {
    const host = n.host.startsWith('[') ? n.host.slice(1, -1) : n.host;
    return { host, port: n.port, weight: n.weight, key: nodeKey(host, n.port) };
  });
  const pools = new Map<string, Pool>();
  for (const n of nodes) {
    const pool = deps.pools.acquire(`${u.scheme}://${n.key}`, {
      connectTimeoutMs: u.timeout.connect * 1000,
      size: u.keepalive_pool.size,
      idleTimeoutMs: u.keepalive_pool.idle_timeout * 1000,
      maxRequestsPerConnection: u.keepalive_pool.requests,
    });
    owned.push(pool);
    pools.set(n.key, pool);
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
  };
}

/** The plugin config with its references replaced by their values, or why it cannot be had. */
type ResolveConfig = (conf: unknown, check: SchemaCheck | undefined, path: string, owner: Record<string, string>) => { conf: unknown } | { failed: { reference: string; reason: string } };

/**
 * Resolution of plugin configs for one compile: references replaced by their values, checked again
 * by the plugin's schema (rules a reference could not meet apply to its value).
 */
function configResolver(values: ResolvedValues, logger: Logger): ResolveConfig {
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
      logger.error({ ...owner, cause: reason }, 'fails closed: a secret it needs is invalid');
      return { failed: { reference: bad[0].path, reason } };
    }
    return { conf: resolved };
  };
}

/** The consumers step's output: each plugin's consumer entries, and when the first rotation grace among them ends. */
interface CompiledConsumers {
  readonly entries: ReadonlyMap<string, ConsumerEntry[]>;
  readonly expiresAt: number;
}

/**
 * Step 1, consumers: each consumer's resolved plugin configs, grouped by plugin for the plugins'
 * indexes (built in step 2, before any route's `create`). Nothing per consumer is kept beyond what
 * those indexes keep (100 000 consumers: no 100 000 Maps in the snapshot).
 */
function compileConsumers(
  consumers: GatewayConfig['consumers'],
  registry: Registry,
  resolve: ResolveConfig,
  values: ResolvedValues,
  previousValue: (text: string) => { value: string; until: number } | undefined,
): CompiledConsumers {
  const entries = new Map<string, ConsumerEntry[]>();
  let expiresAt = Number.POSITIVE_INFINITY;
  consumers.forEach((k, i) => {
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
      }
      if (previous.length > 1) previous.sort((a, b) => b.until - a.until);
      let list = entries.get(name);
      if (!list) entries.set(name, (list = []));
      list.push({ username: k.username, config: conf, previous, path });
    }
  });
  return { entries, expiresAt };
}

/** What every `create` of one plugin in one build receives, but its route. */
type BuildServices = Omit<CreateServices, 'route'>;

/**
 * Step 2, plugins: each registered plugin's services for this build — its `buildStart` value, its
 * state (counted for this build's hold) and its consumer index. Issues: a `buildStart` or an
 * `indexConsumers` that threw.
 */
function pluginServices(deps: SnapshotDeps, hold: StateHold, consumers: CompiledConsumers, usernames: ReadonlySet<string>, issues: ConfigIssue[]): Map<string, BuildServices> {
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
    let index: unknown;
    if (plugin.indexConsumers) {
      try {
        index = plugin.indexConsumers(consumers.entries.get(name) ?? [], base);
      } catch (err) {
        issues.push({ path: (err as { path?: string }).path ?? 'consumers', message: (err as Error).message });
      }
    }
    servicesOf.set(name, { ...base, consumers: index, build });
  }
  return servicesOf;
}

/** An enabled route's plugin side: its hook chains, body limit, and what makes it fail closed. */
type RouteHooks = Pick<CompiledRoute, 'info' | 'requestHooks' | 'requestHookNames' | 'responseHooks' | 'responseHookNames' | 'logHooks' | 'logHookNames' | 'bodyLimit' | 'unavailable'> & {
  /** The route's index in `config.routes`. */
  readonly index: number;
};

/**
 * Step 3, hook chains: every enabled route's plugins created (once per route, never per request)
 * and their hooks in phase then priority order, with the route's body limit. Issues: a `create`
 * (or a `maxBodySize`) that threw, or an invalid body limit.
 */
function compileHookChains(config: GatewayConfig, registry: Registry, servicesOf: ReadonlyMap<string, BuildServices>, resolve: ResolveConfig, issues: ConfigIssue[]): RouteHooks[] {
  const chains: RouteHooks[] = [];
  config.routes.forEach((r, i) => {
    if (r.status === 0) return; // disabled, as APISIX's status: 0
    const phases = { rewrite: [] as Entry[], access: [] as Entry[], beforeProxy: [] as Entry[], response: [] as Entry[], log: [] as Entry[] };
    let unavailable: { reference: string; reason: string } | undefined;
    let bodyLimit: { size: number; priority: number; name: string } | undefined;
    const info: RouteInfo = Object.freeze({ id: r.id, uri: r.uris[0] });
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
      try {
        const conf = deepFreeze(res.conf) as any;
        hooks = plugin.create(conf, { ...servicesOf.get(name)!, route: info });
        size = plugin.maxBodySize?.(conf);
      } catch (err) {
        // a plugin may name the field at fault (ConfigError from the SDK): report it there
        const sub = (err as { path?: unknown }).path;
        issues.push({ path: typeof sub === 'string' && sub !== '' ? `${pluginPath}.${sub}` : pluginPath, message: (err as Error).message });
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
  });
  return chains;
}

/**
 * Step 4, upstreams: the upstream of each route of `chains` (same order), with its balancer and
 * pools; an `upstreams:` entry is compiled once however many routes use it. The pools taken are
 * pushed to `owned`.
 */
function compileUpstreams(config: GatewayConfig, chains: readonly RouteHooks[], deps: SnapshotDeps, owned: Pool[]): Array<CompiledUpstream | undefined> {
  const upstreamById = new Map(config.upstreams.map((u) => [u.id as string, u]));
  const shared = new Map<string, CompiledUpstream>();
  return chains.map(({ index }) => {
    const r = config.routes[index];
    if (r.upstream) return compileUpstream(r.upstream, `route:${r.id}`, deps, owned);
    if (r.upstream_id === undefined) return undefined;
    let upstream = shared.get(r.upstream_id);
    if (!upstream) shared.set(r.upstream_id, (upstream = compileUpstream(upstreamById.get(r.upstream_id)!, `upstream:${r.upstream_id}`, deps, owned)));
    return upstream;
  });
}

/**
 * Step 5, routes: each route's hook chains and upstream together, and the router over them.
 * Issues: a uri the router refuses (named at that uri).
 */
function compileRoutes(config: GatewayConfig, chains: readonly RouteHooks[], upstreams: ReadonlyArray<CompiledUpstream | undefined>): { routes: CompiledRoute[]; router: Router<CompiledRoute> } | { issues: ConfigIssue[] } {
  const routes = chains.map(({ index, ...hooks }, k): CompiledRoute => {
    const r = config.routes[index];
    return { ...hooks, config: r, id: r.id, uris: r.uris, methods: r.methods, hosts: r.hosts, priority: r.priority, upstream: upstreams[k] };
  });
  try {
    return { routes, router: buildRouter(routes) };
  } catch (err) {
    if (!(err instanceof RouteUriError)) throw err;
    const i = config.routes.findIndex((r) => r.id === err.routeId);
    const j = i === -1 ? -1 : config.routes[i].uris.indexOf(err.uri);
    return { issues: [{ path: j === -1 ? joinPath('routes', i) : joinPath(joinPath(joinPath('routes', i), 'uris'), j), message: err.message }] };
  }
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
): { snapshot: Snapshot; issues?: undefined } | { issues: ConfigIssue[]; snapshot?: undefined } {
  const issues: ConfigIssue[] = [];
  const resolve = configResolver(values, deps.services.logger);
  const hold = deps.holdState();
  // consumers first: plugins that authenticate them get their index before routes create them
  const consumers = compileConsumers(config.consumers, deps.registry, resolve, values, previousValue);
  const servicesOf = pluginServices(deps, hold, consumers, new Set(config.consumers.map((k) => k.username)), issues);
  const chains = compileHookChains(config, deps.registry, servicesOf, resolve, issues);
  if (issues.length) {
    hold.release();
    return { issues };
  }
  // what this build holds: let go of by a failed build at once, by a snapshot when it is released
  const owned: Pool[] = [];
  const release = () => {
    for (const p of owned) deps.pools.release(p);
    hold.release();
  };
  const compiled = compileRoutes(config, chains, compileUpstreams(config, chains, deps, owned));
  if ('issues' in compiled) {
    release();
    return { issues: compiled.issues };
  }
  const proxies = config.gateway.trusted_proxies;
  const trusted = proxies.length === 0 ? null : allowList(proxies);
  return { snapshot: new Snapshot(deps.nextGeneration(), config, compiled.router, compiled.routes, refKeys, consumers.expiresAt, release, trusted) };
}

interface Entry {
  name: string;
  priority: number;
  hook: Hook;
}
