// The public SDK (`gatehouse-gateway/sdk`): what plugin and provider authors import, and all that
// first-party plugins and providers import. Named one by one: the contracts the core keeps for
// itself (config stores, the cluster bus, raw documents) and the DI container stay out, so they
// can change without breaking an extension (test: core/sdk.test.ts).
import type { CreateServices, JsonSchema, Plugin, PluginHooks, SecretProvider } from './contracts';

export type {
  JsonSchema,
  Logger,
  Clock,
  Metrics,
  Counter,
  Histogram,
  Gauge,
  RouteInfo,
  RequestContext,
  TlsFacts,
  ClientCertificate,
  Consumer,
  ConsumerEntry,
  ConsumerDelta,
  Hook,
  PluginHooks,
  PluginState,
  SecretLookup,
  PluginServices,
  CreateServices,
  IndexServices,
  Plugin,
  SecretValue,
  SecretRequest,
  SecretBackend,
  ProviderServices,
  SecretProvider,
  SecretAccess,
} from './contracts';
export { credentialIndex, type CredentialIndex, type CredentialEntry, type CredentialIndexOptions } from './credentials';
export { ownerIndex, type OwnerIndex, type OwnerEntry, type OwnerIndexOptions, type Owned, type CredentialKey, type CredentialDelta, type OwnerKey, type OwnerDelta } from './credentials';
export { SENT_TO_CLIENT } from './contracts';
export { GatehouseError, ErrorCodes, withoutNodeCaHint, type ErrorCode, type ConfigIssue } from './errors';

/** Names of plugins and providers: lowercase, digits and dashes, starting with a letter. */
export const EXTENSION_NAME = /^[a-z][a-z0-9-]*$/;

/**
 * Define a plugin with its config type inferred from `create`'s parameter. Checks the definition
 * at once (name format, priority, schema present) so a broken plugin fails at load, not per request.
 * @throws TypeError on an invalid definition
 * @example
 * export default definePlugin<{ header: string }>({
 *   name: 'add-header', version: '1.0.0', priority: 100,
 *   schema: { type: 'object', properties: { header: { type: 'string' } }, required: ['header'] },
 *   create: (conf) => ({ response: (ctx) => ctx.setResponseHeader(conf.header, 'yes') }),
 * });
 */
export function definePlugin<Conf = Record<string, unknown>, ConsumerConf = never, Index = undefined, Build = undefined>(
  plugin: Plugin<Conf, ConsumerConf, Index, Build> & { create(config: Readonly<Conf>, services: CreateServices<Index, Build>): PluginHooks },
): Plugin<Conf, ConsumerConf, Index, Build> {
  if (typeof plugin.name !== 'string' || !EXTENSION_NAME.test(plugin.name)) throw new TypeError(`plugin name ${JSON.stringify(plugin.name)} must match ${EXTENSION_NAME}`);
  if (typeof plugin.version !== 'string' || !plugin.version) throw new TypeError(`plugin "${plugin.name}": version is required`);
  if (!Number.isFinite(plugin.priority)) throw new TypeError(`plugin "${plugin.name}": priority must be a finite number`);
  if (!plugin.schema || typeof plugin.schema !== 'object') throw new TypeError(`plugin "${plugin.name}": schema is required`);
  if (typeof plugin.create !== 'function') throw new TypeError(`plugin "${plugin.name}": create() is required`);
  for (const f of ['buildStart', 'maxBodySize', 'indexConsumers', 'updateConsumers'] as const) {
    if (plugin[f] !== undefined && typeof plugin[f] !== 'function') throw new TypeError(`plugin "${plugin.name}": ${f} must be a function`);
  }
  return Object.freeze({ ...plugin });
}

/**
 * Define a secret provider (the manager name used in `$secret://<name>/...`).
 * @throws TypeError on an invalid definition
 */
export function defineProvider<Conf = Record<string, unknown>>(provider: SecretProvider<Conf>): SecretProvider<Conf> {
  if (typeof provider.name !== 'string' || !EXTENSION_NAME.test(provider.name)) throw new TypeError(`provider name ${JSON.stringify(provider.name)} must match ${EXTENSION_NAME}`);
  if (typeof provider.create !== 'function') throw new TypeError(`provider "${provider.name}": create() is required`);
  if (!provider.schema || typeof provider.schema !== 'object') throw new TypeError(`provider "${provider.name}": schema is required`);
  return Object.freeze({ ...provider });
}

/**
 * Thrown from `create` to reject a config and name the field at fault; the
 * load then reports `routes[i].plugins.<name>.<path>: <message>`.
 * @example throw new ConfigError('regex_uri[0]', 'is not a valid regular expression');
 */
export class ConfigError extends Error {
  /** Dotted path inside the plugin's config (`headers.set`, `regex_uri[0]`). */
  readonly path: string;
  constructor(path: string, message: string) {
    super(message);
    this.name = 'ConfigError';
    this.path = path;
  }
}

/**
 * The query string (without `?`) minus every `name` argument, matched on the decoded name; the
 * other arguments are kept exactly as written. For plugins that hide a credential sent as a
 * query argument.
 * @example withoutQueryArg('apikey=k&page=2', 'apikey') // 'page=2'
 */
export function withoutQueryArg(query: string, name: string): string {
  return query
    .split('&')
    .filter((part) => {
      const eq = part.indexOf('=');
      const k = eq === -1 ? part : part.slice(0, eq);
      try {
        return decodeURIComponent(k.replace(/\+/g, ' ')) !== name;
      } catch {
        return k !== name;
      }
    })
    .join('&');
}

/** Convenience for schemas: an object schema with no unknown fields. */
export function objectSchema(properties: Record<string, JsonSchema>, required: string[] = []): JsonSchema {
  return { type: 'object', properties, required, additionalProperties: false };
}
