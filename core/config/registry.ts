// The extension registry of one gateway: the plugins and secret providers a config may name, with
// each one's schema compiled once (and the config document's own), so validating a config compiles
// nothing. The container builds it from the PLUGIN and SECRET_PROVIDER registrations.
import type { DataKind, JsonSchema, Plugin, SecretProvider } from '../contracts';
import { token } from '../tokens';
import { configSchema } from './schema';
import { compileSchema, schemaCompiler, type SchemaCheck } from './schema-check';

/** The extensions a config may use, keyed by name. */
export interface Registry {
  readonly plugins: ReadonlyMap<string, Plugin>;
  readonly providers: ReadonlyMap<string, SecretProvider>;
  /** The config document's own schema (core/config/schema.ts), compiled with the registry's compiler. */
  readonly documentCheck: SchemaCheck;
  /**
   * The check of one item of a data section (`routes`, `upstreams`, …), the very schema the
   * document's check applies to each item of it: the same issues at the same paths (given the
   * item's path as base), the same defaults. Compiled on first use.
   */
  itemCheck(kind: DataKind): SchemaCheck;
  /** Returns the per-plugin route-config check (compiled once per plugin). */
  pluginCheck(name: string): SchemaCheck | undefined;
  pluginConsumerCheck(name: string): SchemaCheck | undefined;
  providerCheck(manager: string): SchemaCheck | undefined;
}

/** A gateway's extension registry, built by its container from the PLUGIN and SECRET_PROVIDER registrations. */
export const REGISTRY = token<Registry>('ExtensionRegistry');

/** Build a Registry over the given plugins/provider schemas, compiling each schema once. */
export function createRegistry(plugins: readonly Plugin[], providers: readonly SecretProvider[]): Registry {
  const pluginMap = new Map(plugins.map((p) => [p.name, p]));
  const routeChecks = new Map<string, SchemaCheck>();
  const consumerChecks = new Map<string, SchemaCheck>();
  const providerChecks = new Map<string, SchemaCheck>();
  const ajv = schemaCompiler();
  for (const p of plugins) {
    routeChecks.set(p.name, compileSchema(p.schema, ajv));
    if (p.consumerSchema) consumerChecks.set(p.name, compileSchema(p.consumerSchema, ajv));
  }
  for (const p of providers) providerChecks.set(p.name, compileSchema(p.schema, ajv));
  const itemChecks = new Map<DataKind, SchemaCheck>();
  const sections = configSchema.properties as Record<DataKind, { items: JsonSchema }>;
  return {
    plugins: pluginMap,
    documentCheck: compileSchema(configSchema, ajv),
    itemCheck(kind) {
      let check = itemChecks.get(kind);
      if (!check) itemChecks.set(kind, (check = compileSchema(sections[kind].items, ajv)));
      return check;
    },
    providers: new Map(providers.map((p) => [p.name, p])),
    pluginCheck: (n) => routeChecks.get(n),
    pluginConsumerCheck: (n) => consumerChecks.get(n),
    providerCheck: (n) => providerChecks.get(n),
  };
}
