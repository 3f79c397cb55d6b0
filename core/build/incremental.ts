// A change of a few resources applied to the live snapshot: only what it touches is compiled
// again (the changed consumers and the plugin indexes that hold them, the changed routes and the
// routes whose `create` asked about a consumer that came or went, the changed upstreams), and the
// next snapshot shares everything else with the live one. The live snapshot is never modified:
// requests in flight finish on it. Whatever cannot be applied this way is reported as `full`, and
// the builder compiles the whole config as before.
import type { Pool } from 'undici';
import type { ConsumerEntry, IndexServices } from '../contracts';
import type { ConsumerConfig, GatewayConfig, RouteConfig, UpstreamConfig } from '../config/types';
import type { PositionOf } from '../config/validate-changes';
import { sectionOf, type Section } from '../config/section';
import type { ConfigIssue } from '../errors';
import { RouteUriError, updateRouter, type Router } from '../request/router';
import { Snapshot, type CompiledRoute, type CompiledUpstream } from '../request/snapshot';
import { FailClosedLog } from './fail-closed';
import { joinPath } from '../config/paths';
import { buildTls } from './tls';
import type { StateHold } from './plugin-state';
import {
  assembleRoute,
  placeholder,
  compileConsumers,
  compileHookChains,
  compileUpstream,
  configResolver,
  indexOf,
  recordAsked,
  askedInto,
  releaser,
  routeUriIssue,
  type BuildServices,
  type Built,
  type LiveBuild,
  type ResolvedValues,
  type SnapshotDeps,
} from './snapshot';

/** The resources a change touches, by id (`username` for consumers). */
export interface Touched {
  readonly consumers: ReadonlySet<string>;
  readonly routes: ReadonlySet<string>;
  readonly upstreams: ReadonlySet<string>;
}

/**
 * `hasConsumer` of an incremental build: the touched consumers as they are now, the others as
 * the live build has them. Made in its own scope (a closure keeps the scope it is made in: an inline
 * one would keep the live build, and so chain every snapshot to the one before).
 */
function consumerCheck(present: ReadonlySet<string>, touched: ReadonlySet<string>, usernames: ReadonlySet<string>): (username: string) => boolean {
  return (u) => present.has(u) || (!touched.has(u) && usernames.has(u));
}

/** The services of one `updateConsumers` call: `exclude` and `isReference` mark that the whole index must be built instead. */
function deltaServices(base: Omit<IndexServices, 'exclude' | 'isReference'>, asks: { left: boolean }): IndexServices {
  return {
    ...base,
    exclude: () => {
      asks.left = true;
    },
    isReference: () => {
      // an entry left out is left out by the whole index again, which answers this
      asks.left = true;
      return true;
    },
  };
}

/** Where the touched resources are in the config after the change, and what else they touch. */
export interface Located {
  /** The touched consumers the config still has, by index. */
  readonly consumerAt: readonly number[];
  /** The routes to create again, by index: the touched ones, and those whose create asked about a consumer that came or went. */
  readonly routeAt: readonly number[];
  readonly routeIds: ReadonlySet<string>;
  /** Consumers new to the config, and consumers gone from it. */
  readonly came: readonly string[];
  readonly went: readonly string[];
}

/**
 * The indexes of `ids` in `list`. After an Admin API change the list is a new one whose unchanged
 * items are the live list's very objects: the changed ones lie between the unchanged head and tail,
 * found by comparing pointers (100,000 usernames are not hashed per write). A list that did not
 * change (a rotation recompiles resources as they are) is searched by id.
 */
function locate<T>(list: readonly T[], live: readonly T[], ids: ReadonlySet<string>, idOf: (x: T) => string, everywhere: boolean): number[] {
  const out: number[] = [];
  if (ids.size === 0) return out;
  let from = 0;
  let to = list.length;
  if (list !== live && !everywhere) {
    const n = Math.min(list.length, live.length);
    while (from < n && list[from] === live[from]) from++;
    let j = live.length;
    while (to > from && j > from && list[to - 1] === live[j - 1]) {
      to--;
      j--;
    }
  }
  for (let i = from; i < to; i++) if (ids.has(idOf(list[i]))) out.push(i);
  return out;
}

/** The indexes of `ids` in `list`, where `at` says they are (each checked); undefined when it is wrong about one. */
function placed<T>(list: Section<T>, ids: ReadonlySet<string>, idOf: (x: T) => string, where: (id: string) => number): number[] | undefined {
  const out: number[] = [];
  for (const id of ids) {
    const i = where(id);
    if (i === -1) continue;
    if (i >= list.length || idOf(list.get(i)) !== id) return undefined;
    out.push(i);
  }
  return out.sort((a, b) => a - b);
}

/**
 * Where the touched resources of `config` are, and the routes a consumer that came or went touches too.
 * @param at where each resource stands in `config`'s sections, when the caller knows (else found by pointer or by id)
 */
export function locateTouched(live: LiveBuild, config: GatewayConfig, touched: Touched, at?: PositionOf): Located {
  const before = live.snapshot.config;
  // (the lists themselves only when the positions are not known: a section is read item by item)
  const indexes = <T>(kind: 'consumers' | 'routes', ids: ReadonlySet<string>, idOf: (x: T) => string, everywhere: boolean) =>
    (at === undefined ? undefined : placed(sectionOf<T>(config, kind), ids, idOf, (id) => at(kind, id))) ??
    locate(config[kind] as unknown as readonly T[], before[kind] as unknown as readonly T[], ids, idOf, everywhere);
  const consumers = sectionOf<ConsumerConfig>(config, 'consumers');
  const consumerAt = indexes<ConsumerConfig>('consumers', touched.consumers, (k) => k.username, false);
  const present = new Set(consumerAt.map((i) => consumers.get(i).username));
  const came = [...present].filter((u) => !live.usernames.has(u));
  const went = [...touched.consumers].filter((u) => !present.has(u) && live.usernames.has(u));
  const routeIds = new Set(touched.routes);
  for (const u of [...came, ...went]) for (const r of live.asked.get(u) ?? []) routeIds.add(r);
  // routes that did not change themselves (they asked about a consumer) are anywhere in the list
  const routeAt = indexes<RouteConfig>('routes', routeIds, (r) => r.id, routeIds.size > touched.routes.size);
  return { consumerAt, routeAt, routeIds, came, went };
}

/**
 * The enabled routes in config order after the change: the live list with the touched routes
 * replaced in place (found by pointer), removed, or appended when new to the config; a route
 * enabled again, which has a place in the middle, has the list made again from the config.
 */
function nextRoutes(live: LiveBuild, config: GatewayConfig, routeIds: ReadonlySet<string>, fresh: ReadonlyMap<string, CompiledRoute>): readonly CompiledRoute[] {
  const base = live.snapshot.routes;
  const replaced = new Map<CompiledRoute, CompiledRoute>();
  const gone = new Set<CompiledRoute>();
  const appended: CompiledRoute[] = [];
  for (const id of routeIds) {
    const old = live.routeById.get(id);
    const now = fresh.get(id);
    if (old !== undefined) {
      if (now !== undefined) replaced.set(old, now);
      else gone.add(old);
    } else if (now !== undefined) {
      if (live.routeIds.has(id)) return fromConfig(live, config, routeIds, fresh);
      appended.push(now);
    }
  }
  // appended in config order (new routes are at the end of the config, in the order written)
  if (appended.length > 1) {
    const order = new Map(config.routes.map((r, i) => [r.id, i]));
    appended.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  }
  // one list of its final length: a list grown item by item is copied again to grow, and past
  // 16,000 routes each copy is a large object the young generation cannot collect
  if (gone.size === 0) {
    const out = base.concat(appended);
    for (const [old, now] of replaced) out[base.indexOf(old)] = now;
    return out;
  }
  const out = new Array<CompiledRoute>(base.length - gone.size + appended.length);
  let k = 0;
  for (const r of base) if (!gone.has(r)) out[k++] = replaced.get(r) ?? r;
  for (const r of appended) out[k++] = r;
  return out;
}

function fromConfig(live: LiveBuild, config: GatewayConfig, routeIds: ReadonlySet<string>, fresh: ReadonlyMap<string, CompiledRoute>): CompiledRoute[] {
  const list: CompiledRoute[] = [];
  for (const r of config.routes) {
    if (r.status === 0) continue;
    const c = routeIds.has(r.id) ? fresh.get(r.id) : live.routeById.get(r.id);
    if (c) list.push(c);
  }
  return list;
}

/** What an incremental build gives: a snapshot (and what to keep once it is installed), issues, or why only a full build will do. */
export type Incremental = (Built & { commit(): void; issues?: undefined; full?: undefined }) | { issues: ConfigIssue[]; full?: undefined } | { full: string; issues?: undefined };

/** The router of the next snapshot: the live one with the touched routes replaced. */
export type NextRouter = (live: Router<CompiledRoute>, removed: readonly CompiledRoute[], added: readonly CompiledRoute[], all: readonly CompiledRoute[]) => Router<CompiledRoute>;

/** The live router with the touched routes replaced: only the small trees they are in are built again. */
const changeRouter: NextRouter = (live, removed, added) => updateRouter(live, removed, added);

/**
 * Apply the touched resources of `config` (the config after the change; every other resource in
 * it is the one the live snapshot was built from) to the live build.
 * @param values the resolved values of the touched resources' references
 */
export function compileChanges(
  live: LiveBuild,
  config: GatewayConfig,
  touched: Touched,
  deps: SnapshotDeps,
  values: ResolvedValues,
  refKeys: ReadonlySet<string>,
  previousValue: (text: string) => { value: string; until: number } | undefined,
  nextRouter: NextRouter = changeRouter,
  located: Located = locateTouched(live, config, touched),
): Incremental {
  const registry = deps.registry;
  const logger = deps.services.logger;
  const failures = deps.failures ?? new FailClosedLog(logger);

  const { consumerAt, routeAt, routeIds, came, went } = located;
  const consumerList = sectionOf<ConsumerConfig>(config, 'consumers');
  const routeList = sectionOf<RouteConfig>(config, 'routes');
  const present = new Set(consumerAt.map((i) => consumerList.get(i).username));
  const hasConsumer = consumerCheck(present, touched.consumers, live.usernames);
  // a plugin's buildStart value is one build's view of every route (limit-count's groups): a route
  // using one is compiled with all the others
  const perBuild = (plugins: Readonly<Record<string, unknown>> | undefined) => plugins !== undefined && Object.keys(plugins).some((n) => registry.plugins.get(n)?.buildStart !== undefined);
  for (const id of routeIds) if (perBuild(live.routeById.get(id)?.config.plugins)) return { full: `route "${id}" uses a plugin with a per-build value` };
  for (const i of routeAt) if (perBuild(routeList.get(i).plugins)) return { full: `route "${routeList.get(i).id}" uses a plugin with a per-build value` };
  // an upstream's client certificate may come from an SSL resource: a change of those compiles everything
  if (config.ssls !== live.snapshot.config.ssls && usesClientCertId(live)) return { full: 'the SSL resources changed and an upstream takes its client certificate from one' };

  // this build's own state (its index services'); what the live snapshot holds is kept below
  const hold = deps.holdState();
  const routeHolds = new Map<string, StateHold>();
  const resolve = configResolver(values, logger, failures);
  const issues: ConfigIssue[] = [];
  const fail = (): Incremental => {
    failures.settle(false);
    hold.release();
    for (const h of routeHolds.values()) h.release();
    return { issues };
  };

  // consumers: compile the touched ones; each plugin index that holds one takes the delta
  const consumers = compileConsumers(config, registry, resolve, values, previousValue, consumerAt);
  deps.counters?.compiled('consumer', consumerAt.length);
  const indexes = new Map(live.snapshot.indexes);
  const partial = new Set(live.partial);
  const plugins = new Set(consumers.entries.keys());
  for (const [name, byUser] of live.entries) for (const u of touched.consumers) if (byUser.has(u)) plugins.add(name);
  const { consumers: _none, ...common } = deps.services;
  for (const name of plugins) {
    const plugin = registry.plugins.get(name);
    if (!plugin?.indexConsumers) continue;
    const before = live.entries.get(name);
    const removed: ConsumerEntry[] = [];
    for (const u of touched.consumers) {
      const e = before?.get(u);
      if (e) removed.push(e);
    }
    const added = consumers.entries.get(name) ?? [];
    if (!plugin.updateConsumers) {
      hold.release();
      return { full: `plugin "${name}" has no updateConsumers` };
    }
    const base = { ...common, hasConsumer, state: deps.state(name, hold) };
    const asks = { left: false };
    let next: unknown;
    if (!live.partial.has(name)) {
      try {
        next = plugin.updateConsumers(live.snapshot.indexes.get(name), { added, removed }, deltaServices(base, asks));
      } catch {
        next = undefined;
      }
    }
    partial.delete(name);
    if (next === undefined || asks.left) {
      // the whole index again, as a full build makes it (duplicates, what is left out, their logs)
      const list: ConsumerEntry[] = [];
      const fresh = new Map(added.map((e) => [e.username, e]));
      for (const [u, e] of before ?? []) {
        const replaced = touched.consumers.has(u) ? fresh.get(u) : e;
        if (replaced) list.push(replaced);
        fresh.delete(u);
      }
      list.push(...fresh.values());
      const written = new Map<ConsumerEntry, unknown>();
      for (const e of list) {
        const w = consumers.written.get(e) ?? live.written.get(e);
        if (w !== undefined) written.set(e, w);
      }
      next = indexOf(name, plugin, { entries: new Map([[name, list]]), written, expiresAt: Number.POSITIVE_INFINITY, grace: new Map() }, base, failures, issues, () => partial.add(name));
      deps.counters?.index(name, 'built');
    } else deps.counters?.index(name, 'updated');
    indexes.set(name, next);
  }
  if (issues.length) return fail();

  // routes: create the touched ones again, with this build's indexes and hold
  const servicesOf = new Map<string, BuildServices>();
  for (const [name, s] of live.servicesOf) servicesOf.set(name, { ...s, hasConsumer, state: deps.state(name, hold), consumers: indexes.get(name) ?? s.consumers });
  const asked = new Map<string, Set<string>>();
  const chains = compileHookChains(config, registry, servicesOf, resolve, failures, issues, askedInto(asked), routeHolds, deps.state, deps.holdState, routeAt);
  deps.counters?.compiled('route', chains.length);
  if (issues.length) return fail();
  const owned: Pool[] = [];
  const added = chains.map((c) => assembleRoute(config, c, deps, owned, values, issues));
  const fresh = new Map(added.map((r) => [r.id, r]));

  // upstreams: the touched ones compiled again, and any a created route names that no route used before
  const upstreams = new Map(live.snapshot.upstreams);
  const compiledNow = new Set<string>();
  const upstreamList = sectionOf<UpstreamConfig>(config, 'upstreams');
  const compile = (id: string) => {
    const i = upstreamList.findIndex((x) => x.id === id);
    if (i === -1) upstreams.delete(id);
    else upstreams.set(id, compileUpstream(upstreamList.get(i), `upstream:${id}`, deps, owned, { path: joinPath('upstreams', i), ssls: config.ssls, values, issues }));
    compiledNow.add(id);
  };
  for (const id of touched.upstreams) if (upstreams.has(id) || routeList.find((r) => r.upstream_id === id && r.status !== 0) !== undefined) compile(id);
  for (const r of added) if (r.upstreamId !== undefined && !upstreams.has(r.upstreamId)) compile(r.upstreamId);
  deps.counters?.compiled('upstream', compiledNow.size + added.filter((r) => r.upstream !== undefined).length);
  if (issues.length) {
    for (const p of owned) deps.pools.release(p);
    return fail();
  }

  // the routes in config order, each the live one unless touched
  let routes: readonly CompiledRoute[] = live.snapshot.routes;
  /** The touched routes the config still has (in the router from now on). */
  const ids = new Set<string>();
  let router = live.snapshot.router;
  if (routeIds.size) {
    routes = nextRoutes(live, config, routeIds, fresh);
    // the router holds every route of the config, a disabled one as a placeholder in its place
    const removed: CompiledRoute[] = [];
    for (const id of routeIds) if (live.routeIds.has(id)) removed.push(live.routeById.get(id) ?? placeholder(id));
    const inRouter: CompiledRoute[] = [];
    for (const i of routeAt) {
      const id = routeList.get(i).id;
      ids.add(id);
      inRouter.push(fresh.get(id) ?? placeholder(id));
    }
    try {
      router = nextRouter(live.snapshot.router, removed, inRouter, routes);
      deps.counters?.router('updated');
    } catch (err) {
      if (!(err instanceof RouteUriError)) throw err;
      for (const p of owned) deps.pools.release(p);
      issues.push(routeUriIssue(config, err));
      return fail();
    }
  }

  // the TLS table: made again when the SSL resources changed, each unchanged resource's context shared
  let tlsTable = live.snapshot.tls;
  let tlsContexts = live.tls;
  if (config.ssls !== live.snapshot.config.ssls || config.gateway.tls?.fallback_sni !== live.snapshot.config.gateway.tls?.fallback_sni) {
    const tls = buildTls(config, values, logger, live.tls);
    if (tls.issues) {
      for (const p of owned) deps.pools.release(p);
      issues.push(...tls.issues);
      return fail();
    }
    deps.counters?.compiled('ssl', tls.created);
    tlsTable = tls.table;
    tlsContexts = tls.contexts;
  }

  // what this snapshot holds: what it compiled, and one more reference to every pool it keeps
  const held: Pool[] = [...owned];
  const keep = (u: CompiledUpstream) => {
    for (const p of u.pools.values()) {
      deps.pools.retain(p);
      held.push(p);
    }
  };
  for (const [id, u] of upstreams) if (!compiledNow.has(id)) keep(u);
  for (const [id, u] of live.inline) if (!routeIds.has(id)) keep(u);
  // plugin state: the live builds' holds and those of the routes this change did not touch, and this build's own
  const holds = hold.entries.size > 0 ? [...live.holds, hold] : live.holds;
  if (holds === live.holds) hold.release();
  const keptHolds: StateHold[] = [...holds, ...routeHolds.values()];
  for (const h of live.holds) h.retain();
  for (const [id, h] of live.routeHolds) {
    if (routeIds.has(id)) continue;
    h.retain();
    keptHolds.push(h);
  }
  const release = releaser(deps.pools, held, keptHolds);

  const grace = new Map(live.grace);
  for (const u of touched.consumers) grace.delete(u);
  for (const [u, t] of consumers.grace) grace.set(u, t);
  let expiresAt = Number.POSITIVE_INFINITY;
  for (const t of grace.values()) expiresAt = Math.min(expiresAt, t);

  failures.settleTouched(touched.consumers, routeIds);
  deps.counters?.build('incremental');
  const snapshot = new Snapshot(deps.nextGeneration(), config, router, routes, refKeys, expiresAt, release, live.snapshot.trustedProxies, indexes, upstreams, tlsTable);
  const next: LiveBuild = { ...live, snapshot, grace, holds, partial, tls: tlsContexts };
  return {
    snapshot,
    live: next,
    commit() {
      // the live maps follow the installed snapshot (a replaced consumer keeps its place in config order)
      for (const [name, byUser] of live.entries) {
        const now = consumers.entries.get(name);
        for (const u of touched.consumers) {
          const e = now?.find((x) => x.username === u);
          const old = byUser.get(u);
          if (old) live.written.delete(old);
          if (e) byUser.set(u, e);
          else byUser.delete(u);
        }
      }
      for (const [name, list] of consumers.entries) {
        let byUser = live.entries.get(name);
        if (!byUser) live.entries.set(name, (byUser = new Map()));
        for (const e of list) byUser.set(e.username, e);
      }
      for (const [e, w] of consumers.written) live.written.set(e, w);
      for (const u of came) live.usernames.add(u);
      for (const u of went) live.usernames.delete(u);
      for (const [u, rs] of asked) for (const r of rs) recordAsked(live.asked, u, r);
      for (const id of routeIds) {
        const c = fresh.get(id);
        if (c) live.routeById.set(id, c);
        else live.routeById.delete(id);
        if (ids.has(id)) live.routeIds.add(id);
        else live.routeIds.delete(id);
        if (c?.upstream !== undefined) live.inline.set(id, c.upstream);
        else live.inline.delete(id);
        const h = routeHolds.get(id);
        if (h !== undefined) live.routeHolds.set(id, h);
        else live.routeHolds.delete(id);
      }
    },
  };
}

/** Whether an upstream of the live snapshot (shared or a route's own) takes its client certificate from an SSL resource. */
function usesClientCertId(live: LiveBuild): boolean {
  for (const u of live.snapshot.upstreams.values()) if (u.config.tls?.client_cert_id !== undefined) return true;
  for (const u of live.inline.values()) if (u.config.tls?.client_cert_id !== undefined) return true;
  return false;
}
