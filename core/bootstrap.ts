// What a gateway starts from, decided before its container exists: the config file's own sections
// pick the store (file or etcd), the log level and the extensions to load; the store then adds the
// data sections.
import { dirname, resolve as resolvePath } from 'node:path';
import type { ConfigStore, Extension, Logger, RawConfig } from './contracts';
import { readConfigFile } from './config/loader';
import { createLogger } from './observe/log';
import { MemoryConfigStore } from './stores/file-store';
import { holdsStoreObjects, storeForFile } from './stores';
import { loadExtensions } from './extensions/load';
import { builtinExtensions } from './extensions/builtins';

/** The options of a gateway that say where its config comes from. */
export interface StartupOptions {
  /** Where config comes from; or give `configPath` / `config`. */
  readonly store?: ConfigStore;
  /** Path of gatehouse.yaml (a FileConfigStore). */
  readonly configPath?: string;
  /** An in-memory config document (a MemoryConfigStore). */
  readonly config?: Record<string, unknown>;
  readonly logger?: Logger;
  readonly extensions?: readonly Extension[];
  /** The store's document, already read by the caller (the CLI reads it once for `workers`). */
  readonly initialConfig?: Record<string, unknown>;
  /**
   * Like `initialConfig`, but handed over: the caller keeps no reference, so the gateway may
   * validate it in place and drop it before the build (what the CLI does with 100 000 consumers).
   */
  readonly takeInitialConfig?: () => Record<string, unknown> | undefined;
  /** Only check the config (`gatehouse validate`): the store writes nothing (an etcd prefix is not seeded). */
  readonly dryRun?: boolean;
}

export interface Startup {
  readonly logger: Logger;
  readonly store: ConfigStore;
  /** Where relative paths in the config (extensions, providers' folders and PEM files) resolve from. */
  readonly baseDir: string;
  /** The embedder's extensions, then those the config file names. */
  readonly extensions: readonly Extension[];
  /**
   * The document to validate first, and whether it is nobody else's (so it may be validated in
   * place). Called once: the startup lets go of the file's document, which may be large.
   */
  firstDocument(): Promise<{ raw: RawConfig; own: boolean }>;
}

/**
 * Read the config file (or take the document given), then pick the logger, the store and the
 * extensions it names.
 * @throws GatehouseError GH_ERR_CONFIG_PARSE, GH_ERR_CONFIG_READ, GH_ERR_CONFIG_INVALID (an unusable
 * `config_store`), an extension that does not load
 */
export async function startup(opts: StartupOptions): Promise<Startup> {
  const taken = opts.takeInitialConfig?.();
  let first = taken ?? opts.initialConfig ?? (opts.store ? undefined : opts.configPath !== undefined ? await readConfigFile(opts.configPath) : opts.config);
  // a document handed over, or parsed here, is nobody else's: it may be validated in place
  const ownFirst = taken !== undefined || (opts.initialConfig === undefined && !opts.store && opts.configPath !== undefined);
  const level = typeof (first?.gateway as any)?.log_level === 'string' ? (first!.gateway as any).log_level : undefined;
  const logger = opts.logger ?? createLogger({ level });
  const store: ConfigStore = opts.store ?? (opts.configPath !== undefined ? storeForFile(opts.configPath, first ?? {}, logger, opts.dryRun === true) : new MemoryConfigStore(opts.config ?? {}));
  // relative paths in the config are the file's own: they resolve from its folder, whatever the working directory
  const baseDir = opts.configPath !== undefined ? dirname(resolvePath(opts.configPath)) : process.cwd();
  // extensions named by the config file, loaded relative to it (an embedding app may add its own)
  let loaded: Extension[] = [];
  const specs = first?.extensions;
  if (Array.isArray(specs) && specs.length) {
    try {
      loaded = loadExtensions(specs, baseDir, builtinNames(opts.extensions));
    } catch (err) {
      if (!opts.store) await store.close();
      throw err;
    }
  }
  return {
    logger,
    store,
    baseDir,
    extensions: [...(opts.extensions ?? []), ...loaded],
    async firstDocument() {
      const doc = first;
      first = undefined;
      // store.load() returns a fresh document, complete(first) only when first is ours; either holds
      // the store's own objects when it keeps them (etcd), which are never normalised in place
      if (store.complete !== undefined && doc !== undefined) {
        const raw = await store.complete(doc);
        return { raw, own: ownFirst && !holdsStoreObjects(raw) };
      }
      const raw = await store.load();
      return { raw, own: !holdsStoreObjects(raw) };
    },
  };
}

/** Names taken before config extensions load: the built-ins and the embedder's own. */
function builtinNames(extra: readonly Extension[] = []): { plugins: Set<string>; providers: Set<string> } {
  const plugins = new Set<string>();
  const providers = new Set<string>();
  for (const e of [...builtinExtensions, ...extra]) (e.kind === 'plugin' ? plugins.add(e.plugin.name) : providers.add(e.provider.name));
  return { plugins, providers };
}
