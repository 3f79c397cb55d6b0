// A gateway instance: its container, config store, the current snapshot, the proxy listener,
// hot reload (validated, compiled, swapped atomically) and graceful drain.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DependencyContainer } from 'tsyringe';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock, ClusterBus, ClusterCommand, ConfigStore, Extension, Logger, Metrics } from './contracts';
import { createGatewayContainer, systemClock } from './container';
import { createRegistry, parseListen, type Registry, type ValidatedConfig } from './config/validate';
import type { GatewayConfig } from './config/types';
import type { Snapshot } from './request/snapshot';
import { Compiler } from './build/compiler';
import type { Timers } from './secrets/resolver';
import { DataPlane, GatewayResponse, errorSummary } from './request/data-plane';
import { AdminServer } from './admin/server';
import { GatehouseError, statusOf, type ConfigIssue } from './errors';
import { createLogger } from './observe/log';
import { createMetrics } from './observe/metrics';
import { MemoryConfigStore } from './stores/file-store';
import { storeForFile } from './stores';
import { secretFieldPaths } from './admin/redact';
import { PLUGIN, SECRET_PROVIDER, resolveAll } from './tokens';
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

/** Outcome of an Admin API change. */
export type ChangeResult = { ok: true } | { ok: false; status: number; message: string; issues: readonly ConfigIssue[] };

const DATA_KINDS = ['routes', 'upstreams', 'consumers', 'secrets'] as const;

export type ReloadResult = { ok: true; generation: number } | { ok: false; issues: readonly ConfigIssue[]; message: string };

export class Gateway {
  readonly container: DependencyContainer;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly plane: DataPlane;
  private readonly store: ConfigStore;
  /** Validation, secrets and compilation; owns what outlives snapshots. */
  readonly compiler: Compiler;
  /** The config the live snapshot was built from (secret changes rebuild from it). */
  private validated: ValidatedConfig;
  private unsubscribe: () => void = () => undefined;
  private rebuildTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private readonly clock: Clock;
  private readonly listenOverride: string | undefined;
  private readonly adminListenOverride: string | undefined;
  private admin: AdminServer | undefined;
  private server: Server | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private reloadQueued: Promise<ReloadResult> | undefined;
  private closed = false;
  /** This process's name in cluster commands (so it ignores its own). */
  readonly nodeId = `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  private readonly bus: ClusterBus | undefined;

  private constructor(o: {
    container: DependencyContainer; logger: Logger; metrics: Metrics; store: ConfigStore; compiler: Compiler; validated: ValidatedConfig; plane: DataPlane; listen?: string; adminListen?: string; clock: Clock; bus?: ClusterBus;
  }) {
    this.bus = o.bus;
    this.adminListenOverride = o.adminListen;
    this.clock = o.clock;
    this.container = o.container;
    this.logger = o.logger;
    this.metrics = o.metrics;
    this.store = o.store;
    this.compiler = o.compiler;
    this.validated = o.validated;
    this.plane = o.plane;
    this.listenOverride = o.listen;
    // a secret the live config uses changed: rebuild from the same config with the new values
    this.unsubscribe = this.compiler.resolver.onChange((c) => {
      if (this.plane.current.refKeys.has(c.ref.key)) this.scheduleRebuild();
    });
  }

  /** When a rotation grace in the live snapshot ends, rebuild so the old credential stops working. */
  private armExpiry(s: Snapshot): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (!Number.isFinite(s.expiresAt) || this.closed) return;
    const wait = Math.max(0, s.expiresAt - this.clock.now()) + 5;
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = undefined;
      void this.enqueue(() => this.swap(this.validated, 'rotation grace ended'));
    }, Math.min(wait, 2 ** 31 - 1));
    this.expiryTimer.unref();
  }

  /** Secret changes come in bursts (a rotation touches many references): rebuild once per burst. */
  private scheduleRebuild(): void {
    if (this.closed || this.rebuildTimer) return;
    this.rebuildTimer = setTimeout(() => {
      this.rebuildTimer = undefined;
      void this.enqueue(() => this.swap(this.validated, 'secrets changed'));
    }, 10);
    this.rebuildTimer.unref();
  }

  /**
   * Load, validate and compile the config; does not listen yet.
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
    const metrics = opts.metrics ?? createMetrics();
    const clock = opts.clock ?? systemClock;
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
    const container = createGatewayContainer({ logger, metrics, clock, store, extensions: [...(opts.extensions ?? []), ...loaded] });
    const registry = buildRegistry(container);
    const compiler = new Compiler({ registry, logger, metrics, clock, timers: opts.timers, baseDir });
    store.useSecretFields?.(secretFieldPaths(registry));
    let snapshot: Snapshot;
    let validated: ValidatedConfig;
    try {
      const viaFirst = store.complete !== undefined && first !== undefined;
      // store.load() always returns a fresh document; complete(first) is fresh only when first is ours
      validated = compiler.validate(viaFirst ? await store.complete!(first!) : await store.load(), viaFirst ? ownFirst : true);
      // the raw document is garbage from here on: let it go before the build allocates
      first = undefined;
      snapshot = await compiler.build(validated);
    } catch (err) {
      await compiler.close();
      if (!opts.store) await store.close();
      throw err;
    }
    const plane = new DataPlane(snapshot, { logger, metrics, clock, accessLog: snapshot.config.gateway.access_log });
    const gw = new Gateway({ container, logger, metrics, store, compiler, validated, plane, listen: opts.listen, adminListen: opts.adminListen, clock, bus: opts.bus });
    gw.armExpiry(snapshot);
    const onCommand = (cmd: ClusterCommand) => gw.command(cmd);
    if (opts.watch !== false) store.watch(() => void gw.reload(), onCommand);
    opts.bus?.subscribe(onCommand);
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
    const { host, port } = parseListen(this.listenOverride ?? this.config.gateway.listen);
    // requestTimeout 0: long uploads are bounded by the upstream send timeout, not a total
    // headersTimeout: a client that trickles its headers (slowloris) gets 408; the connection check
    // runs every second (Node's default of 30 s would let it hold the socket much longer)
    const headerMs = this.config.gateway.client_header_timeout * 1000;
    const server = createServer({ ServerResponse: GatewayResponse, requestTimeout: 0, keepAliveTimeout: 5000, headersTimeout: headerMs, connectionsCheckingInterval: Math.min(1000, headerMs) }, this.plane.handle);
    // 100 Continue only for bodies within the request's limit (Node would send it for all)
    server.on('checkContinue', this.plane.handleContinue);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new GatehouseError('GH_ERR_LISTEN', `${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
      server.listen(port, host, () => resolve());
    });
    server.on('clientError', onClientError);
    const addr = server.address() as AddressInfo;
    this.logger.info({ listen: `${addr.address}:${addr.port}`, routes: this.snapshot.routes.length, generation: this.snapshot.generation }, 'gatehouse proxy listening');
    if (this.config.admin !== undefined) {
      // one admin listener per gateway; node:cluster workers share it like the proxy port
      const c = this.compiler;
      this.admin = new AdminServer(
        { config: () => this.config, registry: c.deps.registry, resolver: c.resolver, metrics: this.metrics, logger: this.logger, change: (m) => this.change(m), refreshSecret: (id) => this.refreshSecret(id) },
        this.adminListenOverride,
      );
      try {
        await this.admin.listen();
      } catch (err) {
        throw new GatehouseError('GH_ERR_LISTEN', `admin ${this.adminListenOverride ?? this.config.admin.listen}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
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
    const r = await this.compiler.resolver.refreshResource(resource);
    return { ...r, published };
  }

  /** A command from another process (worker or node); this process's own are ignored. */
  command(cmd: ClusterCommand): void {
    if (this.closed || cmd.origin === this.nodeId) return;
    if (cmd.type === 'secret-refresh') {
      this.logger.info({ resource: cmd.resource, from: cmd.origin }, 'secret refresh requested by another gateway process');
      void this.compiler.resolver.refreshResource(cmd.resource);
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
        v = this.compiler.validate(await (this.store.reload ? this.store.reload() : this.store.load()), true);
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
      snapshot = await this.compiler.build(v);
    } catch (err) {
      await this.compiler.revert(this.validated).catch(noop);
      return this.rejected(err);
    }
    if (this.closed) {
      snapshot.retire();
      return { ok: false, issues: [], message: 'gateway is closed' };
    }
    const old = this.plane.current;
    if (JSON.stringify(snapshot.config.extensions) !== JSON.stringify(old.config.extensions)) {
      this.logger.warn({ extensions: snapshot.config.extensions }, 'extensions changed: takes effect at the next restart');
    }
    if (snapshot.config.gateway.listen !== old.config.gateway.listen) {
      this.logger.warn({ listen: snapshot.config.gateway.listen }, 'gateway.listen changed: takes effect at the next restart');
    }
    this.validated = v;
    this.plane.current = snapshot;
    old.retire();
    this.armExpiry(snapshot);
    this.logger.info({ generation: snapshot.generation, routes: snapshot.routes.length }, why);
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
        v = this.compiler.validate(raw);
        snapshot = await this.compiler.build(v);
      } catch (err) {
        // a refused change leaves nothing behind: not even the secret backends the build touched
        await this.compiler.revert(this.validated).catch(noop);
        const issues = err instanceof GatehouseError ? err.issues : [];
        return { ok: false, status: 400, message: issues.length ? `${issues[0].path}: ${issues[0].message}` : (err as Error).message, issues };
      }
      try {
        await this.store.writeData({ routes: raw.routes as unknown[], upstreams: raw.upstreams as unknown[], consumers: raw.consumers as unknown[], secrets: raw.secrets as unknown[] });
      } catch (err) {
        snapshot.retire();
        await this.compiler.revert(this.validated).catch(noop);
        // a store's own refusal is answered with its message (an etcd user with a read-only role: 500
        // with etcd's error, as APISIX); anything else is not for the client to read
        return this.storeRefusal(err, 'admin change not persisted', 'the change could not be persisted');
      }
      const old = this.plane.current;
      this.validated = v;
      this.plane.current = snapshot;
      old.retire();
      this.armExpiry(snapshot);
      this.logger.info({ generation: snapshot.generation, routes: snapshot.routes.length }, 'admin change applied');
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
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const sweep = setInterval(() => server.closeIdleConnections(), 25);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), drainTimeoutMs)));
      const late = await Promise.race([closed.then(() => false), timedOut]);
      clearInterval(sweep);
      clearTimeout(timer);
      if (late) {
        this.logger.warn({ inflight: this.snapshot.inflight }, 'drain timeout: closing remaining connections');
        server.closeAllConnections();
        await closed;
      }
    }
    clearTimeout(this.rebuildTimer);
    clearTimeout(this.expiryTimer);
    this.unsubscribe();
    this.plane.current.retire();
    await this.compiler.close();
    if (wasListening) this.logger.info({}, 'gatehouse stopped');
    (this.logger as { flush?: () => void }).flush?.();
  }
}

/** Malformed requests never reach the data plane: answer them here, as nginx does. */
function onClientError(err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  if (!socket.writable || (socket as { _httpMessage?: unknown })._httpMessage) {
    socket.destroy();
    return;
  }
  const [status, text] =
    err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request'];
  const body = JSON.stringify({ message: `${status} ${text}` });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

/** Names taken before config extensions load: the built-ins and the embedder's own. */
function builtinNames(extra: readonly Extension[] = []): { plugins: Set<string>; providers: Set<string> } {
  const plugins = new Set<string>();
  const providers = new Set<string>();
  for (const e of [...builtinExtensions, ...extra]) (e.kind === 'plugin' ? plugins.add(e.plugin.name) : providers.add(e.provider.name));
  return { plugins, providers };
}

function buildRegistry(c: DependencyContainer): Registry {
  return createRegistry(resolveAll(c, PLUGIN), resolveAll(c, SECRET_PROVIDER));
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
