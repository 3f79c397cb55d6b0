// Turns config documents into snapshots: validate, bring the secret backends in line, resolve
// every reference (batched), compile. Owns what outlives snapshots: pools, health, plugin state;
// the secret cache and backends are the gateway container's, injected here.
import 'reflect-metadata';
import { inject, injectable } from 'tsyringe';
import type { PluginServices, PluginState, Logger, Metrics, Clock, ConfigStore, DestinationBindings } from '../contracts';
import { BASE_DIR, CLOCK, CONFIG_STORE, LOGGER, METRICS } from '../tokens';
import { parseReference } from '../secrets/reference';
import { REGISTRY, type Registry } from '../config/registry';
import { validateConfig, type ValidatedConfig } from '../config/validate';
import { checkSecretPolicy } from '../config/secret-policy';
import { admitDestinations, type Admission } from './destinations';
import { MemoryBindings } from '../credentials';
import { compileSnapshot, type SnapshotDeps } from './snapshot';
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
    this.deps = {
      registry,
      pools,
      healthStates: new Map<string, PassiveHealth>(),
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
    const unique = new Map(refs.map((s) => [s.ref.key, s.ref]));
    const byKey = await this.resolver.resolveMany([...unique.values()]);
    const values = new Map<string, string | Error>();
    for (const s of refs) values.set(s.ref.text, byKey.get(s.ref.key)!);
    const byText = new Map(v.refs.map((s) => [s.ref.text, s.ref]));
    const previous = (text: string) => {
      const ref = byText.get(text);
      return ref ? this.resolver.previous(ref) : undefined;
    };
    const c = compileSnapshot(v.config, this.deps, values, new Set(v.refs.map((s) => s.ref.key)), previous);
    if (c.issues) throw configInvalid(c.issues);
    this.resolver.track(v.refs.map((s) => s.ref));
    return c.snapshot;
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
