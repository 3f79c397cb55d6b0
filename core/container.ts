// The DI container of one gateway: a child of tsyringe's root per gateway instance (and per test),
// with the core services and every extension registered through one function.
import 'reflect-metadata';
import { container as root, type DependencyContainer } from 'tsyringe';
import type { Clock, ConfigStore, Extension, Logger, Metrics } from './contracts';
import { CLOCK, CONFIG_STORE, LOGGER, METRICS, PLUGIN, SECRET_PROVIDER, resolveAll } from './tokens';
import { GatehouseError } from './errors';
import { builtinExtensions } from './extensions/builtins';

export interface ContainerOptions {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly store: ConfigStore;
  /** Registered after the built-ins, exactly the same way. */
  readonly extensions?: readonly Extension[];
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

/** A fresh child container holding the core services, the built-ins, then `extensions`. */
export function createGatewayContainer(o: ContainerOptions): DependencyContainer {
  const c = root.createChildContainer();
  c.register(LOGGER, { useValue: o.logger });
  c.register(METRICS, { useValue: o.metrics });
  c.register(CLOCK, { useValue: o.clock });
  c.register(CONFIG_STORE, { useValue: o.store });
  for (const ext of [...builtinExtensions, ...(o.extensions ?? [])]) registerExtension(c, ext);
  return c;
}

/** The real clock. */
export const systemClock: Clock = { now: () => Date.now() };
