// The DI container of one gateway: a child of tsyringe's root per gateway instance (and per test),
// holding the core services, every extension (registered through one function), and the classes
// built from them, one instance per container.
import 'reflect-metadata';
import { resolve as resolvePath } from 'node:path';
import { container as root, instancePerContainerCachingFactory, Lifecycle, type DependencyContainer } from 'tsyringe';
import type { Clock, ClusterBus, ConfigStore, Extension, Logger, Metrics } from './contracts';
import { BASE_DIR, CLOCK, CLUSTER_BUS, CONFIG_STORE, LOGGER, METRICS, PLUGIN, SECRET_BACKEND_LOOKUP, SECRET_PROVIDER, TIMERS, resolve, resolveAll, type Timers } from './tokens';
import { GatehouseError } from './errors';
import { builtinExtensions } from './extensions/builtins';
import { createRegistry, REGISTRY } from './config/registry';
import { SecretBackends } from './secrets/backends';
import { SecretResolver } from './secrets/resolver';
import { realTimers } from './secrets/refresh-scheduler';
import { UpstreamPools } from './request/upstream-pools';
import { DataPlane } from './request/data-plane';
import { SnapshotBuilder } from './build/snapshot-builder';
import { ChangeQueue } from './control/change-queue';
import { ConfigControl } from './control/config-control';
import { CertificateExpiry } from './build/tls-expiry';

export interface ContainerOptions {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly store: ConfigStore;
  /** Registered after the built-ins, exactly the same way. */
  readonly extensions?: readonly Extension[];
  /** The secret cache's timers; default real ones. */
  readonly timers?: Timers;
  /** The worker bus of a `gatehouse start` worker; not registered when absent. */
  readonly bus?: ClusterBus;
  /** Where relative paths in the config resolve from; default the working directory. */
  readonly baseDir?: string;
}

/** Register one extension (a built-in or a user's) into a gateway container. */
export function registerExtension(c: DependencyContainer, ext: Extension): void {
  if (ext.kind === 'plugin') {
    if (resolveAll(c, PLUGIN).some((p) => p.name === ext.plugin.name)) {
      throw new GatehouseError('GH_ERR_PLUGIN_DUPLICATE', `a plugin named "${ext.plugin.name}" is already registered`);
    }
    c.register(PLUGIN, { useValue: ext.plugin });
  } else {
    if (resolveAll(c, SECRET_PROVIDER).some((p) => p.name === ext.provider.name)) {
      throw new GatehouseError('GH_ERR_PROVIDER_DUPLICATE', `a secret provider named "${ext.provider.name}" is already registered`);
    }
    c.register(SECRET_PROVIDER, { useValue: ext.provider });
  }
}

/**
 * The classes of one gateway, built by the container with their dependencies injected. Container
 * scoped: a child container (a test's, with a service registered over the default) builds its
 * own instances from what it resolves, never the parent's.
 */
const PER_GATEWAY = [UpstreamPools, SecretResolver, SnapshotBuilder, DataPlane, ChangeQueue, CertificateExpiry, ConfigControl] as const;

/**
 * A fresh child container holding the core services, the built-ins, then `extensions`; the
 * extension registry, the secret backends and the classes of {@link PER_GATEWAY} are built from
 * them on first use.
 */
export function createGatewayContainer(o: ContainerOptions): DependencyContainer {
  const c = root.createChildContainer();
  c.register(LOGGER, { useValue: o.logger });
  c.register(METRICS, { useValue: o.metrics });
  c.register(CLOCK, { useValue: o.clock });
  c.register(TIMERS, { useValue: o.timers ?? realTimers });
  c.register(CONFIG_STORE, { useValue: o.store });
  c.register(BASE_DIR, { useValue: resolvePath(o.baseDir ?? '.') });
  if (o.bus) c.register(CLUSTER_BUS, { useValue: o.bus });
  for (const ext of [...builtinExtensions, ...(o.extensions ?? [])]) registerExtension(c, ext);
  c.register(REGISTRY, { useFactory: instancePerContainerCachingFactory((d) => createRegistry(resolveAll(d, PLUGIN), resolveAll(d, SECRET_PROVIDER))) });
  c.register(SecretBackends, {
    useFactory: instancePerContainerCachingFactory((d) => {
      const logger = resolve(d, LOGGER);
      const baseDir = resolve(d, BASE_DIR);
      return new SecretBackends(resolve(d, REGISTRY), { logger, clock: resolve(d, CLOCK), resolvePath: (p) => resolvePath(baseDir, p) }, logger);
    }),
  });
  c.register(SECRET_BACKEND_LOOKUP, { useFactory: (d) => d.resolve(SecretBackends).lookup });
  for (const cls of PER_GATEWAY) c.register<unknown>(cls, { useClass: cls }, { lifecycle: Lifecycle.ContainerScoped });
  return c;
}

/** The real clock. */
export const systemClock: Clock = { now: () => Date.now() };
