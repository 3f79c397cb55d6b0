// A gateway instance: assembled by its container (core/container.ts) from the services the
// options name; it installs snapshots (start, hot reload, Admin API writes, secret changes), runs
// the proxy and Admin API listeners and drains on close.
import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inject, injectable, Lifecycle, type DependencyContainer } from 'tsyringe';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { DATA_KINDS, type Clock, type ClusterBus, type ClusterCommand, type ConfigStore, type Extension, type Logger, type Metrics } from './contracts';
import { createGatewayContainer, systemClock } from './container';
import { parseListen, REGISTRY, type ValidatedConfig } from './config/validate';
import type { GatewayConfig } from './config/types';
import { restartOnlyChanges } from './config/restart-only';
import type { Snapshot } from './request/snapshot';
import { SnapshotBuilder } from './build/snapshot-builder';
import type { Timers } from './secrets/resolver';
import { DataPlane, errorSummary } from './request/data-plane';
import { drain, listenProxy } from './request/listener';
import { AdminServer } from './admin/server';
import { GatehouseError, statusOf, type ConfigIssue } from './errors';
import { createLogger } from './observe/log';
import { createMetrics } from './observe/metrics';
import { dataSections, MemoryConfigStore } from './stores/file-store';
import { storeForFile } from './stores';
import { secretFieldPaths } from './admin/redact';
import { CLOCK, CLUSTER_BUS, CONFIG_STORE, LOGGER, METRICS, resolve, token } from './tokens';
import { readConfigFile } from './config/loader';
import { loadExtensions } from './extensions/load';
import { builtinExtensions } from './extensions/builtins';
import { dirname, resolve as resolvePath } from 'node:path';

export interface GatewayOptions {
  /** Where config comes from; or give `configPath` / `config`. */
  readonly store?: ConfigStore;
  /** Path of gatehouse.yaml (a FileConfigStore). */
  readonly configPath?: string;
  /** An in-memory config document (a MemoryConfigStore). */
  readonly config?: Record<string, unknown>;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  readonly clock?: Clock;
  readonly extensions?: readonly Extension[];
  /** Overrides `gateway.listen` (tests use `127.0.0.1:0`). */
  readonly listen?: string;
  /** Overrides `admin.listen`; the Admin API runs when the config has an `admin:` section. */
  readonly adminListen?: string;
  /**
   * The admin key a `gatehouse start` primary generated for its workers (the config has `admin:`
   * without `key`): the Admin API uses it instead of generating one, and does not print it (the
   * primary does, once).
   */
  readonly generatedAdminKey?: string;
  /** The store's document, already read by the caller (the CLI reads it once for `workers`). */
  readonly initialConfig?: Record<string, unknown>;
  /**
   * Like `initialConfig`, but handed over: the caller keeps no reference, so the gateway may
   * validate it in place and drop it before the build (what the CLI does with 100 000 consumers).
   */
  readonly takeInitialConfig?: () => Record<string, unknown> | undefined;
  /** Reload when the store reports a change; default true. */
  readonly watch?: boolean;
  /** Timers for the secret cache (tests pass a FakeClock together with `clock`). */
  readonly timers?: Timers;
  /** Fan-out to the other worker processes of this node (node:cluster); commands from other nodes come through the store. */
  readonly bus?: ClusterBus;
  /** Only check the config (`gatehouse validate`): the store writes nothing (an etcd prefix is not seeded). */
  readonly dryRun?: boolean;
}

/** The options a gateway was created with, registered in its container. */
export const GATEWAY_OPTIONS = token<GatewayOptions>('GatewayOptions');
/** The container that resolves it (a gateway exposes its own). */
const CONTAINER = token<DependencyContainer>('Container');

/** Outcome of an Admin API change. */
export type ChangeResult = { ok: true } | { ok: false; status: number; message: string; issues: readonly ConfigIssue[] };

export type ReloadResult = { ok: true; generation: number } | { ok: false; issues: readonly ConfigIssue[]; message: string };

@injectable()
export class Gateway {
  /** This process's name in cluster commands (so it ignores its own). */
  readonly nodeId = `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  /** The config the live snapshot was built from (secret changes rebuild from it). */
  private validated: ValidatedConfig | undefined;
  private unsubscribe: () => void = () => undefined;
  private rebuildTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private admin: AdminServer | undefined;
  private server: Server | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private reloadQueued: Promise<ReloadResult> | undefined;
  private closed = false;

  constructor(
    @inject(CONTAINER) readonly container: DependencyContainer,
    @inject(GATEWAY_OPTIONS) private readonly opts: GatewayOptions,
    @inject(LOGGER) readonly logger: Logger,
    @inject(METRICS) readonly metrics: Metrics,
    @inject(CLOCK) private readonly clock: Clock,
    @inject(CONFIG_STORE) private readonly store: ConfigStore,
    /** Validation, secrets and snapshot builds; owns what outlives snapshots. */
    readonly builder: SnapshotBuilder,
    readonly plane: DataPlane,
    @inject(CLUSTER_BUS, { isOptional: true }) private readonly bus?: ClusterBus,
  ) {
    // a secret the live config uses changed: rebuild from the same config with the new values
    this.unsubscribe = this.builder.resolver.onChange((c) => {
      if (this.plane.current?.refKeys.has(c.ref.key)) this.scheduleRebuild();
    });
  }

  /**
   * Make `snapshot` (built from `v`) the one new requests use: the one path of the first build, a
   * reload, an Admin API change and a rebuild after a secret change. The replaced snapshot is
   * retired (its pools close when its last request finishes); a changed restart-only setting is
   * reported; `why` is logged (the first install logs nothing: listen() does).
   */
  private install(v: ValidatedConfig, snapshot: Snapshot, why?: string): void {
    const old = this.plane.current as Snapshot | undefined;
    if (old) for (const c of restartOnlyChanges(old.config, snapshot.config)) this.logger.warn(c, `${c.setting} changed: takes effect at the next restart`);
    this.validated = v;
    this.plane.current = snapshot;
    old?.retire();
    this.armExpiry(snapshot);
    if (why !== undefined) this.logger.info({ generation: snapshot.generation, routes: snapshot.routes.length }, why);
  }

  /** When a rotation grace in the live snapshot ends, rebuild so the old credential stops working. */
  private armExpiry(s: Snapshot): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (!Number.isFinite(s.expiresAt) || this.closed) return;
    const wait = Math.max(0, s.expiresAt - this.clock.now()) + 5;
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = undefined;
      void this.enqueue(() => this.swap(this.validated!, 'rotation grace ended'));
    }, Math.min(wait, 2 ** 31 - 1));
    this.expiryTimer.unref();
  }

  /** Secret changes come in bursts (a rotation touches many references): rebuild once per burst. */
  private scheduleRebuild(): void {
    if (this.closed || this.rebuildTimer) return;
    this.rebuildTimer = setTimeout(() => {
      this.rebuildTimer = undefined;
      void this.enqueue(() => this.swap(this.validated!, 'secrets changed'));
    }, 10);
    this.rebuildTimer.unref();
  }

  /**
   * Load, validate and compile the config; does not listen yet. The options become registrations
   * of the gateway's own container, which builds the gateway and everything it uses.
   * @throws GatehouseError GH_ERR_CONFIG_INVALID (with every issue), GH_ERR_CONFIG_PARSE, GH_ERR_CONFIG_READ
   */
  static async create(opts: GatewayOptions): Promise<Gateway> {
    // the file's own sections pick the store (file or etcd) and the log level; the store adds the data sections
    const taken = opts.takeInitialConfig?.();
    let first = taken ?? opts.initialConfig ?? (opts.store ? undefined : opts.configPath !== undefined ? await readConfigFile(opts.configPath) : opts.config);
    // a document handed over, or parsed here, is nobody else's: it may be validated in place
    const ownFirst = taken !== undefined || (opts.initialConfig === undefined && !opts.store && opts.configPath !== undefined);
    const level = typeof (first?.gateway as any)?.log_level === 'string' ? (first!.gateway as any).log_level : undefined;
    const logger = opts.logger ?? createLogger({ level });
    const store: ConfigStore = opts.store ?? (opts.configPath !== undefined ? storeForFile(opts.configPath, first ?? {}, logger, opts.dryRun === true) : new MemoryConfigStore(opts.config ?? {}));
    // relative paths in the config (extensions, providers' folders and PEM files) are the file's own:
    // they resolve from its folder, whatever the working directory
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
    const c = createGatewayContainer({
      logger,
      metrics: opts.metrics ?? createMetrics(),
      clock: opts.clock ?? systemClock,
      timers: opts.timers,
      bus: opts.bus,
      store,
      baseDir,
      extensions: [...(opts.extensions ?? []), ...loaded],
    });
    c.register(GATEWAY_OPTIONS, { useValue: opts });
    c.register(CONTAINER, { useFactory: (d) => d });
    c.register(Gateway, { useClass: Gateway }, { lifecycle: Lifecycle.ContainerScoped });
    const builder = c.resolve(SnapshotBuilder);
    store.useSecretFields?.(secretFieldPaths(resolve(c, REGISTRY)));
    const gw = c.resolve(Gateway);
    try {
      const viaFirst = store.complete !== undefined && first !== undefined;
      // store.load() always returns a fresh document; complete(first) is fresh only when first is ours
      const v = builder.validate(viaFirst ? await store.complete!(first!) : await store.load(), viaFirst ? ownFirst : true);
      // the raw document is garbage from here on: let it go before the build allocates
      first = undefined;
      gw.install(v, await builder.build(v));
    } catch (err) {
      gw.unsubscribe();
      await builder.close();
      if (!opts.store) await store.close();
      throw err;
    }
    const onCommand = (cmd: ClusterCommand) => gw.command(cmd);
    if (opts.watch !== false) store.watch(() => void gw.reload(), onCommand);
    gw.bus?.subscribe(onCommand);
    return gw;
  }

  /** The snapshot new requests use. */
  get snapshot(): Snapshot {
    return this.plane.current;
  }

  get config(): GatewayConfig {
    return this.plane.current.config;
  }

  /** Start the proxy listener. @returns the bound address (port 0 → the real port) */
  async listen(): Promise<AddressInfo> {
    const { host, port } = parseListen(this.opts.listen ?? this.config.gateway.listen);
    const { server, address: addr } = await listenProxy(this.plane, host, port, this.config.gateway.client_header_timeout);
    this.server = server;
    this.logger.info({ listen: `${addr.address}:${addr.port}`, routes: this.snapshot.routes.length, generation: this.snapshot.generation }, 'gatehouse proxy listening');
    if (this.config.admin !== undefined) {
      // one admin listener per gateway; node:cluster workers share it like the proxy port
      const b = this.builder;
      this.admin = new AdminServer(
        {
          config: () => this.config,
          registry: b.deps.registry,
          resolver: b.resolver,
          metrics: this.metrics,
          logger: this.logger,
          generatedKey: this.opts.generatedAdminKey,
          change: (m) => this.change(m),
          refreshSecret: (id) => this.refreshSecret(id),
        },
        this.opts.adminListen,
      );
      try {
        await this.admin.listen();
      } catch (err) {
        throw new GatehouseError('GH_ERR_LISTEN', `admin ${this.opts.adminListen ?? this.config.admin.listen}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    return addr;
  }

  /** Address of the Admin API listener, when it runs. */
  get adminAddress(): AddressInfo | undefined {
    return this.admin?.address;
  }

  /** Address of the proxy listener. */
  get address(): AddressInfo {
    return this.server!.address() as AddressInfo;
  }

  /**
   * Force a refresh of every cached value of one secret resource, here and on every other process
   * of the gateway: workers of this node (the bus) and other nodes (the store, when shared).
   */
  async refreshSecret(resource: string): Promise<{ refreshed: number; failed: number; published: boolean }> {
    const cmd: ClusterCommand = { type: 'secret-refresh', resource, origin: this.nodeId };
    this.bus?.publish(cmd);
    let published = true;
    if (this.store.publish) {
      try {
        await this.store.publish(cmd);
      } catch (err) {
        published = false;
        this.logger.warn({ resource, err: (err as Error).message }, 'secret refresh not published to the other nodes');
      }
    }
    const r = await this.builder.resolver.refreshResource(resource);
    return { ...r, published };
  }

  /** A command from another process (worker or node); this process's own are ignored. */
  command(cmd: ClusterCommand): void {
    if (this.closed || cmd.origin === this.nodeId) return;
    if (cmd.type === 'secret-refresh') {
      this.logger.info({ resource: cmd.resource, from: cmd.origin }, 'secret refresh requested by another gateway process');
      void this.builder.resolver.refreshResource(cmd.resource);
    }
  }

  /**
   * Load the config again and swap it in atomically. An invalid config changes nothing: the last
   * good one keeps serving and one error line says why. Concurrent calls are coalesced.
   */
  reload(): Promise<ReloadResult> {
    if (this.reloadQueued) return this.reloadQueued;
    this.reloadQueued = this.enqueue(async () => {
      this.reloadQueued = undefined;
      let v: ValidatedConfig;
      try {
        v = this.builder.validate(await (this.store.reload ? this.store.reload() : this.store.load()), true);
      } catch (err) {
        return this.rejected(err);
      }
      return this.swap(v, 'config reloaded');
    });
    return this.reloadQueued;
  }

  /** Run config changes one at a time, in order. */
  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job);
    this.queue = run.then(noop, noop);
    return run;
  }

  private rejected(err: unknown): ReloadResult {
    const issues = err instanceof GatehouseError ? err.issues : [];
    const message = err instanceof Error ? err.message : String(err);
    this.logger.error({ source: this.store.description, errors: issues.length ? issues.map((i) => `${i.path}: ${i.message}`) : [message] }, 'config reload rejected; the last good config keeps serving');
    return { ok: false, issues, message };
  }

  /** Build a snapshot of `v` and swap it in atomically. */
  private async swap(v: ValidatedConfig, why: string): Promise<ReloadResult> {
    if (this.closed) return { ok: false, issues: [], message: 'gateway is closed' };
    let snapshot: Snapshot;
    try {
      snapshot = await this.builder.build(v);
    } catch (err) {
      await this.builder.revert(this.validated!).catch(noop);
      return this.rejected(err);
    }
    if (this.closed) {
      snapshot.retire();
      return { ok: false, issues: [], message: 'gateway is closed' };
    }
    this.install(v, snapshot, why);
    return { ok: true, generation: snapshot.generation };
  }

  /**
   * Change the data sections (Admin API writes): `mutate` edits a copy of the current document;
   * the result is validated and compiled like any load, persisted, then swapped in — all before
   * this resolves, one change at a time. Nothing is persisted or applied when any step fails.
   */
  change(mutate: (doc: Record<string, unknown[]>) => void): Promise<ChangeResult> {
    return this.enqueue(async (): Promise<ChangeResult> => {
      if (this.closed) return { ok: false, status: 503, message: 'gateway is closing', issues: [] };
      if (!this.store.writeData) return { ok: false, status: 403, message: 'this config store does not take writes', issues: [] };
      try {
        await this.store.assertWritable?.();
      } catch (err) {
        // 403 for a store that refuses writes by design (readonly), 503 for one that is down; a config
        // file that cannot be read or parsed right now is the same failure as the load below: 500
        return this.storeRefusal(err, 'admin change refused: the stored config cannot be read');
      }
      let raw: Record<string, unknown>;
      try {
        raw = (await this.store.load()) as Record<string, unknown>;
      } catch (err) {
        // the stored config itself is broken (e.g. a hand-written value in etcd): say where, change nothing
        return this.storeRefusal(err, 'admin change refused: the stored config cannot be read');
      }
      for (const k of DATA_KINDS) if (!Array.isArray(raw[k])) raw[k] = [];
      try {
        mutate(raw as Record<string, unknown[]>);
      } catch (err) {
        return { ok: false, status: (err as { status?: number }).status ?? 400, message: (err as Error).message, issues: [] };
      }
      let v: ValidatedConfig;
      let snapshot: Snapshot;
      try {
        v = this.builder.validate(raw);
        snapshot = await this.builder.build(v);
      } catch (err) {
        // a refused change leaves nothing behind: not even the secret backends the build touched
        await this.builder.revert(this.validated!).catch(noop);
        const issues = err instanceof GatehouseError ? err.issues : [];
        return { ok: false, status: 400, message: issues.length ? `${issues[0].path}: ${issues[0].message}` : (err as Error).message, issues };
      }
      try {
        await this.store.writeData(dataSections(raw));
      } catch (err) {
        snapshot.retire();
        await this.builder.revert(this.validated!).catch(noop);
        // a store's own refusal is answered with its message (an etcd user with a read-only role: 500
        // with etcd's error, as APISIX); anything else is not for the client to read
        return this.storeRefusal(err, 'admin change not persisted', 'the change could not be persisted');
      }
      this.install(v, snapshot, 'admin change applied');
      return { ok: true };
    });
  }

  /**
   * The answer to an Admin API write that the config store refused: the coded error's own status
   * and message (errors.ts), logged when it is the server's fault (5xx).
   * @param otherwise the message for an error that is not a store's coded refusal (default: its own)
   */
  private storeRefusal(err: unknown, logged: string, otherwise?: string): ChangeResult {
    const status = statusOf(err);
    const message = (err as Error).message;
    if (status >= 500) this.logger.error({ store: this.store.description, err: message }, logged);
    return { ok: false, status, message: err instanceof GatehouseError || otherwise === undefined ? message : otherwise, issues: [] };
  }

  /**
   * Stop accepting connections, let in-flight requests finish (up to `drainTimeoutMs`, default
   * `gateway.drain_timeout`), then close every connection and upstream pool.
   */
  async close(drainTimeoutMs = this.config.gateway.drain_timeout * 1000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.store.close();
    await this.admin?.close();
    const server = this.server;
    const wasListening = server?.listening === true;
    if (server) {
      this.plane.draining = true;
      await drain(server, drainTimeoutMs, () => this.logger.warn({ inflight: this.snapshot.inflight }, 'drain timeout: closing remaining connections'));
    }
    clearTimeout(this.rebuildTimer);
    clearTimeout(this.expiryTimer);
    this.unsubscribe();
    this.plane.current.retire();
    await this.builder.close();
    if (wasListening) this.logger.info({}, 'gatehouse stopped');
    (this.logger as { flush?: () => void }).flush?.();
  }
}

/** Names taken before config extensions load: the built-ins and the embedder's own. */
function builtinNames(extra: readonly Extension[] = []): { plugins: Set<string>; providers: Set<string> } {
  const plugins = new Set<string>();
  const providers = new Set<string>();
  for (const e of [...builtinExtensions, ...extra]) (e.kind === 'plugin' ? plugins.add(e.plugin.name) : providers.add(e.provider.name));
  return { plugins, providers };
}

function noop(): void {}

/** Create a gateway and start listening. */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const gw = await Gateway.create(opts);
  try {
    await gw.listen();
  } catch (err) {
    await gw.close(0).catch(() => undefined);
    throw err;
  }
  return gw;
}

export { errorSummary, parseListen };
