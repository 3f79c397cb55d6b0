// Typed dependency-injection tokens: `resolve(container, PLUGIN)` is typed, not `unknown`.
import type { DependencyContainer } from 'tsyringe';
import type { ConfigStore, Logger, Metrics, Plugin, SecretProvider, Clock } from './contracts';

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
