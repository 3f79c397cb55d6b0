// Turns config documents into snapshots: validate, bring the secret backends in line, resolve
// every reference (batched), compile. Owns what outlives snapshots: pools, health, plugin state;
// the secret cache and backends are the gateway container's, injected here.
import 'reflect-metadata';
import { inject, injectable } from 'tsyringe';
import type { PluginServices, PluginState, Logger, Metrics, Clock, ConfigStore, DestinationBindings } from '../contracts';
import { BASE_DIR, CLOCK, CONFIG_STORE, LOGGER, METRICS } from '../tokens';
import { looksLikeReference, parseReference, type ReferenceSite } from '../secrets/reference';
import { adminTlsIssues } from '../config/ssl-checks';
import { REGISTRY, type Registry } from '../config/registry';
import { validateConfig, type ValidatedConfig } from '../config/validate';
import { validateChangesOrThrow, type PositionOf } from '../config/validate-changes';
import { sectionOf } from '../config/section';
import type { ConsumerConfig, RouteConfig, UpstreamConfig } from '../config/types';
import { checkSecretPolicy } from '../config/secret-policy';
import { admitDestinations, type Admission } from './destinations';
import { MemoryBindings } from '../credentials';
import { compileSnapshot, type BuildCounters, type LiveBuild, type SnapshotDeps } from './snapshot';
import { compileChanges, locateTouched, type Touched } from './incremental';
import type { DataChange } from '../contracts';
import type { Snapshot } from '../request/snapshot';
import { PluginStates } from './plugin-state';
import { FailClosedLog } from './fail-closed';
import { configInvalid } from '../errors';
import { SecretResolver } from '../secrets/resolver';
import { SecretBackends } from '../secrets/backends';
import { UpstreamPools } from '../request/upstream-pools';
import type { PassiveHealth } from '../request/health';

/** Builds the snapshots of one gateway: one per gateway container, every service injected. */
@injectable()
export class SnapshotBuilder {
  readonly deps: SnapshotDeps;
  /** Plugins' reload-surviving state (services.state), released when no live config uses it. */
  private readonly states: PluginStates;
  /** Where each credential may be sent: the config store's (shared by every node), or this gateway's own. */
  private readonly bindings: DestinationBindings;
  /** What the build path keeps of the installed snapshot (the base of the next incremental build). */
  private live: LiveBuild | undefined;
  /** Builds not installed yet: what to keep of each once it is. */
  private readonly pending = new WeakMap<Snapshot, { live: LiveBuild; commit?: () => void }>();

  constructor(
    @inject(REGISTRY) registry: Registry,
    @inject(LOGGER) logger: Logger,
    @inject(METRICS) metrics: Metrics,
    @inject(CLOCK) clock: Clock,
    readonly resolver: SecretResolver,
    readonly backends: SecretBackends,
    pools: UpstreamPools,
    @inject(CONFIG_STORE) private readonly store: ConfigStore,
    @inject(BASE_DIR) private readonly baseDir: string,
  ) {
    this.bindings = store.bindings ?? new MemoryBindings();
    const services: Omit<PluginServices, 'state'> = {
      logger,
      metrics,
      clock,
      consumers: undefined,
      hasConsumer: () => false,
      secrets: {
        async resolve(reference: string) {
          try {
            return await resolver.resolve(parseReference(reference));
          } catch (err) {
            if ((err as { notFound?: boolean }).notFound === true) return undefined;
            throw err;
          }
        },
      },
      fetch: globalThis.fetch,
    };
    const states = (this.states = new PluginStates(logger));
    let generations = 0;
    const builds = metrics.counter('snapshot_builds_total', 'Snapshot builds: every object compiled (full) or only what a change touched (incremental)', ['kind']);
    const compiled = metrics.counter('build_compiled_total', 'Objects compiled by snapshot builds', ['kind']);
    const indexes = metrics.counter('consumer_index_builds_total', 'Plugin consumer indexes built over every consumer (built) or updated by a delta (updated)', ['plugin', 'how']);
    const routers = metrics.counter('router_builds_total', 'Routers built over every route (built) or updated by a change (updated)', ['how']);
    const counters: BuildCounters = {
      build: (kind) => builds.inc({ kind }),
      compiled: (kind, n) => {
        if (n > 0) compiled.inc({ kind }, n);
      },
      index: (plugin, how) => indexes.inc({ plugin, how }),
      router: (how) => routers.inc({ how }),
    };
    this.deps = {
      counters,
      registry,
      pools,
      healthStates: new Map<string, PassiveHealth>(),
      upstreamTls: new Map(),
      services,
      state: (name, hold) => states.view(name, hold),
      holdState: () => states.hold(),
      nextGeneration: () => ++generations,
      failures: new FailClosedLog(logger),
    };
  }

  /**
   * Validate a raw document (no side effect on failure).
   * @throws GatehouseError GH_ERR_CONFIG_INVALID listing every issue
   */
  validate(raw: Record<string, unknown>, inPlace = false): ValidatedConfig {
    const v = validateConfig(raw, this.deps.registry, inPlace);
    if (v.issues) throw configInvalid(v.issues);
    // the reference policy: what data sections may name and read, where credentials would go
    const p = checkSecretPolicy(v.config, v.refs, this.deps.registry, { baseDir: this.baseDir, protectedFiles: this.store.ownFiles?.() ?? [] });
    if (p.issues.length) throw configInvalid(p.issues);
    return { ...v, credentials: p.uses };
  }

  /**
   * Admit a config that is not live yet (a start, a reload, an Admin API write): each credential of
   * its secret resources goes only to the origin it is bound to (or one secret_policy.destinations
   * lists); unbound ones are bound now. Runs before {@link build}, so a refused config contacts no
   * new origin with a live credential. Rebuilds of the live config need not run it again.
   * @param record false: check only, bind nothing (`gatehouse validate`)
   * @throws GatehouseError GH_ERR_CONFIG_INVALID naming each refused credential and its bound origin
   */
  admit(v: ValidatedConfig, record = true): Promise<Admission> {
    return admitDestinations(v.credentials ?? [], this.bindings, record);
  }

  /**
   * Build a snapshot of a validated config with the current secret values. Secrets that cannot be
   * resolved make what needs them fail closed (logged); they never fail the build.
   * @throws GatehouseError GH_ERR_CONFIG_INVALID when a plugin rejects its config
   */
  async build(v: ValidatedConfig): Promise<Snapshot> {
    this.resolver.configure(v.config.secret_cache);
    await this.backends.sync(v.config, v.refs, this.resolver);
    const refs = v.refs.filter((s) => !s.path.startsWith('secrets['));
    const values = await this.valuesOf(refs);
    // the Admin API's certificate and key once resolved: a pair that does not match refuses the build
    // at start (the gateway does not start) and when admin.tls as written changed (a reload). After a
    // rotation of its references alone, the Admin API keeps its previous pair and says why
    // (core/admin/server.ts), and the rest of the build goes ahead: other rotations do not wait on it
    const admin = v.config.admin?.tls;
    const liveAdmin = this.live?.snapshot.config.admin?.tls;
    const onlyValuesChanged = liveAdmin !== undefined && admin !== undefined && JSON.stringify(liveAdmin) === JSON.stringify(admin);
    if (admin !== undefined && !onlyValuesChanged) {
      const issues = adminTlsIssues(admin, (t) => (looksLikeReference(t) ? valueOf(values.get(t)) : t));
      if (issues.length) throw configInvalid(issues);
    }
    const c = compileSnapshot(v.config, this.deps, values, new Set(v.refs.map((s) => s.ref.key)), this.previousOf(v), this.live?.tls);
    if (c.issues) throw configInvalid(c.issues);
    this.resolver.track(v.refs.map((s) => s.ref));
    this.pending.set(c.snapshot, { live: c.live });
    return c.snapshot;
  }

  /**
   * The validated config after `changes`, checked as a full validation would check it, from the
   * live one.
   * @param doc the whole raw document after the changes (asked only for a full validation)
   * @param at where each resource stands in the live config's sections (the raw document it was validated from lists them in the same order)
   * @throws GatehouseError GH_ERR_CONFIG_INVALID listing every issue
   */
  validateChanges(live: ValidatedConfig, changes: readonly DataChange[], doc: () => Record<string, unknown>, at?: PositionOf): ValidatedConfig {
    const next = validateChangesOrThrow(live, changes, this.deps.registry, { baseDir: this.baseDir, protectedFiles: this.store.ownFiles?.() ?? [] }, at);
    return next ?? this.validate(doc());
  }

  /**
   * Build the next snapshot of `v` from the installed one, compiling only what `touched` names
   * (core/build/incremental.ts); the rest is shared with it.
   * @param positions where each resource stands in `v`'s sections, when known (else they are searched)
   * @returns undefined when only a full build will do ({@link build})
   * @throws GatehouseError GH_ERR_CONFIG_INVALID when a plugin rejects its config
   */
  async buildChanges(v: ValidatedConfig, touched: Touched, positions?: PositionOf): Promise<Snapshot | undefined> {
    const live = this.live;
    if (live === undefined) return undefined;
    // the references of the touched resources (every other one's value is compiled in already)
    const where = locateTouched(live, v.config, touched, positions);
    const at = new Set<string>([...where.consumerAt.map((i) => `consumers[${i}]`), ...where.routeAt.map((i) => `routes[${i}]`)]);
    // (and every SSL resource's: a few, and the TLS table is made again from all of them when one changed)
    const refs = v.refs.filter((s) => {
      // (upstreams' TLS PEMs too: a touched upstream may need them, and there are few)
      if (s.path.startsWith('ssls[') || s.path.startsWith('upstreams[')) return true;
      const m = /^(?:consumers|routes)\[\d+\]/.exec(s.path);
      return m !== null && at.has(m[0]);
    });
    const values = await this.valuesOf(refs);
    const refKeys = new Set(v.refs.map((s) => s.ref.key));
    const c = compileChanges(live, v.config, touched, this.deps, values, refKeys, this.previousOf(v), undefined, where);
    if (c.full !== undefined) return undefined;
    if (c.issues) throw configInvalid(c.issues);
    this.resolver.track(v.refs.map((s) => s.ref));
    this.pending.set(c.snapshot, { live: c.live, commit: c.commit });
    return c.snapshot;
  }

  /**
   * The resources of `v` whose references have one of `keys` (secrets that changed value).
   * @returns undefined when a secret resource, an SSL resource or a gateway setting holds one (a full build)
   */
  dependants(v: ValidatedConfig, keys: ReadonlySet<string>): Touched | undefined {
    const t = { consumers: new Set<string>(), routes: new Set<string>(), upstreams: new Set<string>() };
    for (const s of v.refs) {
      if (!keys.has(s.ref.key)) continue;
      const m = /^(consumers|routes|upstreams)\[(\d+)\]/.exec(s.path);
      if (m === null) return undefined;
      if (m[1] === 'consumers') t.consumers.add(sectionOf<ConsumerConfig>(v.config, 'consumers').get(Number(m[2])).username);
      else if (m[1] === 'routes') t.routes.add(sectionOf<RouteConfig>(v.config, 'routes').get(Number(m[2])).id);
      // an upstream's TLS PEM (a rotated client certificate): that upstream is compiled again, with new pools
      else t.upstreams.add(sectionOf<UpstreamConfig>(v.config, 'upstreams').get(Number(m[2])).id!);
    }
    return t;
  }

  /** The consumers of the installed snapshot whose rotation grace has ended by `now`. */
  graceEnded(now: number): Touched | undefined {
    if (this.live === undefined) return undefined;
    const consumers = new Set<string>();
    for (const [u, until] of this.live.grace) if (until <= now) consumers.add(u);
    return { consumers, routes: new Set(), upstreams: new Set() };
  }

  /** `snapshot` (built here) is the one requests use now: the next incremental build starts from it. */
  installed(snapshot: Snapshot): 'full' | 'incremental' {
    const p = this.pending.get(snapshot);
    if (p === undefined) return 'full';
    this.pending.delete(snapshot);
    p.commit?.();
    this.live = p.live;
    this.forgetUpstreamTls(snapshot);
    return p.commit === undefined ? 'full' : 'incremental';
  }

  /** Let go of the kept TLS (PEMs) of upstreams the installed snapshot no longer has. */
  private forgetUpstreamTls(snapshot: Snapshot): void {
    const kept = this.deps.upstreamTls;
    if (kept === undefined || kept.size === 0) return;
    const live = new Set<string>();
    for (const u of snapshot.upstreams.values()) live.add(u.identity);
    for (const r of snapshot.routes) if (r.upstream !== undefined) live.add(r.upstream.identity);
    for (const identity of kept.keys()) if (!live.has(identity)) kept.delete(identity);
  }

  /** The values of `refs` (batched), by reference text. */
  private async valuesOf(refs: readonly ReferenceSite[]): Promise<Map<string, string | Error>> {
    const unique = new Map(refs.map((s) => [s.ref.key, s.ref]));
    const byKey = await this.resolver.resolveMany([...unique.values()]);
    const values = new Map<string, string | Error>();
    for (const s of refs) values.set(s.ref.text, byKey.get(s.ref.key)!);
    return values;
  }

  /** The value a reference of `v` had before its last rotation, while the grace lasts. */
  private previousOf(v: ValidatedConfig): (text: string) => { value: string; until: number } | undefined {
    let byText: Map<string, ReferenceSite['ref']> | undefined;
    return (text) => {
      byText ??= new Map(v.refs.map((s) => [s.ref.text, s.ref]));
      const ref = byText.get(text);
      return ref ? this.resolver.previous(ref) : undefined;
    };
  }

  /**
   * Undo what a refused build did outside its snapshot: bring the secret backends (and the cache
   * settings) back in line with the config that is still live.
   */
  async revert(live: ValidatedConfig): Promise<void> {
    this.resolver.configure(live.config.secret_cache);
    await this.backends.sync(live.config, live.refs, this.resolver);
  }

  /** One plugin's reload-surviving state, outside any build (what is got here is held by no config). */
  stateOf(plugin: string): PluginState {
    return this.states.view(plugin, undefined);
  }

  async close(): Promise<void> {
    await this.states.closeAll();
    this.resolver.close();
    await this.deps.pools.closeAll();
    await this.backends.closeAll();
  }
}

/** A resolved value, or undefined when the reference has none (what needs it reports that itself). */
function valueOf(v: string | Error | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
