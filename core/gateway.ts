// A gateway instance, assembled by its container (core/container.ts) from the services the options
// name: the startup (core/bootstrap.ts) picks the store and the extensions, the control path
// (core/control/) installs snapshots; the gateway runs the proxy and Admin API listeners, passes
// commands between its processes and drains on close.
import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inject, injectable, Lifecycle, type DependencyContainer } from 'tsyringe';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock, ClusterBus, ClusterCommand, ConfigStore, DataKind, Logger, Metrics, RawConfig } from './contracts';
import { createGatewayContainer, systemClock } from './container';
import { startup, type StartupOptions } from './bootstrap';
import { REGISTRY } from './config/registry';
import { parseListen } from './config/settings-check';
import type { GatewayConfig } from './config/types';
import type { Snapshot } from './request/snapshot';
import { SnapshotBuilder } from './build/snapshot-builder';
import type { Admission } from './build/destinations';
import { DataPlane, errorSummary } from './request/data-plane';
import { drain, listenProxy, listenProxyTls } from './request/listener';
import { AdminServer } from './admin/server';
import { GatehouseError } from './errors';
import { createMetrics } from './observe/metrics';
import { secretFieldPaths } from './admin/redact';
import { CLUSTER_BUS, CONFIG_STORE, LOGGER, METRICS, resolve, token, type Timers } from './tokens';
import { ConfigControl, type ChangeResult, type ReloadResult } from './control/config-control';
import type { DocumentEdit } from './control/positions';

export type { ChangeResult, ReloadResult };

export interface GatewayOptions extends StartupOptions {
  readonly metrics?: Metrics;
  readonly clock?: Clock;
  /** Overrides `gateway.listen` (tests use `127.0.0.1:0`). */
  readonly listen?: string;
  /** Overrides `gateway.listen_tls` (tests use `127.0.0.1:0`); the TLS listener runs when either is set. */
  readonly listenTls?: string;
  /** Overrides `admin.listen`; the Admin API runs when the config has an `admin:` section. */
  readonly adminListen?: string;
  /**
   * The admin key a `gatehouse start` primary generated for its workers (the config has `admin:`
   * without `key`): the Admin API uses it instead of generating one, and does not print it (the
   * primary does, once).
   */
  readonly generatedAdminKey?: string;
  /** Reload when the store reports a change; default true. */
  readonly watch?: boolean;
  /** Timers for the secret cache (tests pass a FakeClock together with `clock`). */
  readonly timers?: Timers;
  /** Fan-out to the other worker processes of this node (node:cluster); commands from other nodes come through the store. */
  readonly bus?: ClusterBus;
}

/** The options a gateway was created with, registered in its container. */
export const GATEWAY_OPTIONS = token<GatewayOptions>('GatewayOptions');
/** The container that resolves it (a gateway exposes its own). */
const CONTAINER = token<DependencyContainer>('Container');

@injectable()
export class Gateway {
  /** This process's name in cluster commands (so it ignores its own). */
  readonly nodeId = `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  private admin: AdminServer | undefined;
  private server: Server | undefined;
  private tlsServer: Server | undefined;

  constructor(
    @inject(CONTAINER) readonly container: DependencyContainer,
    @inject(GATEWAY_OPTIONS) private readonly opts: GatewayOptions,
    @inject(LOGGER) readonly logger: Logger,
    @inject(METRICS) readonly metrics: Metrics,
    @inject(CONFIG_STORE) private readonly store: ConfigStore,
    /** Validation, secrets and snapshot builds; owns what outlives snapshots. */
    readonly builder: SnapshotBuilder,
    readonly plane: DataPlane,
    /** Installs snapshots; runs reloads, Admin API writes and rebuilds one at a time. */
    private readonly control: ConfigControl,
    @inject(CLUSTER_BUS, { isOptional: true }) private readonly bus?: ClusterBus,
  ) {}

  /**
   * Load, validate and compile the config; does not listen yet. The options become registrations
   * of the gateway's own container, which builds the gateway and everything it uses.
   * @throws GatehouseError GH_ERR_CONFIG_INVALID (with every issue), GH_ERR_CONFIG_PARSE, GH_ERR_CONFIG_READ
   */
  static async create(opts: GatewayOptions): Promise<Gateway> {
    const boot = await startup(opts);
    const { store } = boot;
    const c = createGatewayContainer({
      logger: boot.logger,
      metrics: opts.metrics ?? createMetrics(),
      clock: opts.clock ?? systemClock,
      timers: opts.timers,
      bus: opts.bus,
      store,
      baseDir: boot.baseDir,
      extensions: boot.extensions,
    });
    c.register(GATEWAY_OPTIONS, { useValue: opts });
    c.register(CONTAINER, { useFactory: (d) => d });
    c.register(Gateway, { useClass: Gateway }, { lifecycle: Lifecycle.ContainerScoped });
    const builder = c.resolve(SnapshotBuilder);
    store.useSecretFields?.(secretFieldPaths(resolve(c, REGISTRY)));
    const gw = c.resolve(Gateway);
    let admitted: Admission | undefined;
    try {
      const first: { raw: RawConfig; own: boolean } = await boot.firstDocument();
      // validated as a copy: the document as the store holds it is the base of the first Admin API change
      const v = builder.validate(first.raw);
      // where credentials go is settled before any secret backend is contacted (`validate` only checks)
      admitted = await builder.admit(v, opts.dryRun !== true);
      gw.control.install(v, await builder.build(v), undefined, first.raw);
    } catch (err) {
      await admitted?.release();
      gw.control.close();
      await builder.close();
      if (!opts.store) await store.close();
      throw err;
    }
    const onCommand = (cmd: ClusterCommand) => gw.command(cmd);
    if (opts.watch !== false) store.watch((changes) => void (changes === undefined ? gw.reload() : gw.control.applyStoreChanges(changes)), onCommand);
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
    const tlsListen = this.opts.listenTls ?? this.config.gateway.listen_tls;
    if (tlsListen !== undefined) {
      const t = parseListen(tlsListen);
      const { server: tlsServer, address: tlsAddr } = await listenProxyTls(this.plane, t.host, t.port, this.config.gateway.client_header_timeout, () => this.plane.current.tls, this.config.gateway.http2);
      this.tlsServer = tlsServer;
      const certificates = this.snapshot.tls.size;
      this.logger.info({ listen: `${tlsAddr.address}:${tlsAddr.port}`, server_names: certificates, alpn: this.config.gateway.http2 ? ['h2', 'http/1.1'] : ['http/1.1'] }, 'gatehouse TLS listening');
      if (certificates === 0) this.logger.warn({ listen: `${tlsAddr.address}:${tlsAddr.port}` }, 'the TLS listener has no certificate yet: every handshake fails until an SSL resource (ssls) names a server name');
    }
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
          change: (m, counted) => this.control.change(m, counted as { kind: DataKind; limit: number } | undefined),
          resource: (kind, id) => this.control.resource(kind as DataKind, id),
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

  /** Address of the TLS listener, when it runs. */
  get tlsAddress(): AddressInfo | undefined {
    return this.tlsServer?.address() as AddressInfo | undefined;
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
    if (this.control.closed || cmd.origin === this.nodeId) return;
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
    return this.control.reload();
  }

  /**
   * Change the data sections (Admin API writes): `edit` reads and writes the current document one
   * resource at a time (the document itself is left as it is); what it changed is validated and
   * compiled like any load, persisted, then swapped in — all before this resolves, one change at a
   * time. Nothing is persisted or applied when any step fails.
   */
  change(edit: (doc: DocumentEdit) => void): Promise<ChangeResult> {
    return this.control.change(edit);
  }

  /**
   * Stop accepting connections, let in-flight requests finish (up to `drainTimeoutMs`, default
   * `gateway.drain_timeout`), then close every connection and upstream pool.
   */
  async close(drainTimeoutMs = this.config.gateway.drain_timeout * 1000): Promise<void> {
    if (this.control.closed) return;
    this.control.close();
    await this.store.close();
    await this.admin?.close();
    const server = this.server;
    const wasListening = server?.listening === true;
    const servers = [server, this.tlsServer].filter((s): s is Server => s !== undefined);
    if (servers.length > 0) {
      this.plane.draining = true;
      await Promise.all(servers.map((s) => drain(s, drainTimeoutMs, () => this.logger.warn({ inflight: this.snapshot.inflight }, 'drain timeout: closing remaining connections'))));
    }
    this.plane.current.retire();
    await this.builder.close();
    if (wasListening) this.logger.info({}, 'gatehouse stopped');
    (this.logger as { flush?: () => void }).flush?.();
  }
}

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
