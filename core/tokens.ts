// Typed dependency-injection tokens: `resolve(container, PLUGIN)` is typed, not `unknown`. Each
// token stands for a contract; the classes the container builds (SnapshotBuilder, SecretResolver,
// DataPlane, UpstreamPools, ChangeQueue, ConfigControl, Gateway) are their own tokens, as tsyringe does.
import type { DependencyContainer } from 'tsyringe';
import type { ClusterBus, ConfigStore, Logger, Metrics, Plugin, SecretBackend, SecretProvider, Clock } from './contracts';

/** A DI token that remembers the type it resolves to. */
export type Token<T> = symbol & { readonly __tokenType?: T };

/**
 * Create a typed token.
 * @param description shown in stack traces and error messages
 * @example const GREETER = token<Greeter>('Greeter');
 */
export function token<T>(description: string): Token<T> {
  return Symbol(description) as Token<T>;
}

/** Resolve one registration of a typed token. @throws when nothing is registered */
export function resolve<T>(c: DependencyContainer, t: Token<T>): T {
  return c.resolve<T>(t);
}

/** Resolve every registration of a typed token (discovery of plugins and providers). */
export function resolveAll<T>(c: DependencyContainer, t: Token<T>): T[] {
  return c.isRegistered(t, true) ? c.resolveAll<T>(t) : [];
}

/** Timer functions; tests register fake ones driven by a fake clock (core/secrets/fake-clock.ts). */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

/** Every plugin known to a gateway (built-ins and extensions, registered the same way). */
export const PLUGIN = token<Plugin>('Plugin');
/** Every secret provider known to a gateway. */
export const SECRET_PROVIDER = token<SecretProvider>('SecretProvider');
/** The gateway's root logger. */
export const LOGGER = token<Logger>('Logger');
/** The gateway's metrics registry. */
export const METRICS = token<Metrics>('Metrics');
/** Where the gateway's configuration comes from. */
export const CONFIG_STORE = token<ConfigStore>('ConfigStore');
/** Time source; tests inject a fake one. */
export const CLOCK = token<Clock>('Clock');
/** Timers of the secret cache (refresh ahead of expiry); tests inject the fake clock's. */
export const TIMERS = token<Timers>('Timers');
/** Fan-out to the other worker processes of this node; registered only in a `gatehouse start` worker. */
export const CLUSTER_BUS = token<ClusterBus>('ClusterBus');
/** The folder relative paths in the config resolve from (the config file's own). */
export const BASE_DIR = token<string>('BaseDir');
/** Where the secret cache finds the backend of a resource (`vault/gateway`, `env`). */
export const SECRET_BACKEND_LOOKUP = token<(resource: string) => SecretBackend | undefined>('SecretBackendLookup');
