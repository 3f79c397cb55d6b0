// The immutable shape the request path reads: the router, per-route hook chains and upstreams with
// their balancers and pools (built by core/build/snapshot.ts), and the snapshot's life: requests
// count themselves in and out, and what it holds is released when it is replaced and idle.
import type { Pool } from 'undici';
import type { Hook, RequestContext, RouteInfo } from '../contracts';
import type { GatewayConfig, RouteConfig, UpstreamConfig } from '../config/types';
import type { Balancer, UpstreamNode } from './balancer';
import type { PassiveHealth } from './health';
import type { Router } from './router';
import type { TrustedProxies } from './forwarded';
import { EMPTY_TLS_TABLE, type TlsTable } from './tls-table';

export interface CompiledUpstream {
  /** Identity that survives reloads: the upstream id, or `route:<id>` for inline ones. */
  readonly identity: string;
  readonly config: UpstreamConfig;
  readonly balancer: Balancer;
  readonly nodes: readonly UpstreamNode[];
  /** node.key → pool */
  readonly pools: ReadonlyMap<string, Pool>;
  readonly health: PassiveHealth;
  readonly failStatuses: ReadonlySet<number> | null;
  readonly sendTimeoutMs: number;
  readonly readTimeoutMs: number;
  /** Extra attempts after the first. */
  readonly retries: number;
  readonly isChash: boolean;
  /** Set when a secret its TLS needs (client certificate, key, CA) cannot be resolved: it has no pools, requests answer 503. */
  readonly unavailable?: { readonly reference: string; readonly reason: string };
}

export interface CompiledRoute {
  readonly info: RouteInfo;
  readonly config: RouteConfig;
  readonly id: string;
  readonly uris: readonly string[];
  readonly methods?: readonly string[];
  readonly hosts?: readonly string[];
  readonly priority: number;
  /** rewrite, then access, then beforeProxy hooks, each phase in priority order. */
  readonly requestHooks: readonly Hook[];
  readonly requestHookNames: readonly string[];
  readonly responseHooks: readonly Hook[];
  readonly responseHookNames: readonly string[];
  readonly logHooks: ReadonlyArray<(ctx: RequestContext) => void>;
  readonly logHookNames: readonly string[];
  /** The route's own upstream (`upstream:`); undefined for one by id, or none. */
  readonly upstream: CompiledUpstream | undefined;
  /** The `upstreams:` entry it uses (`upstream_id`), found in its snapshot's `upstreams` (an upstream change replaces one entry there, no route). */
  readonly upstreamId: string | undefined;
  /** Request body limit in bytes (0: none): a plugin's `maxBodySize`, else `gateway.client_max_body_size`. */
  readonly bodyLimit: number;
  /** Set when a secret this route's plugins need cannot be resolved: the route answers 503. */
  readonly unavailable: { readonly reference: string; readonly reason: string } | undefined;
}

const NO_INDEXES: ReadonlyMap<string, unknown> = new Map();
const NO_UPSTREAMS: ReadonlyMap<string, CompiledUpstream> = new Map();

export class Snapshot {
  /** Requests currently using this snapshot. */
  inflight = 0;
  private retired = false;
  private released = false;

  constructor(
    /** Which build of its gateway this is (1, 2, …): a newer config has a higher one. */
    readonly generation: number,
    readonly config: GatewayConfig,
    readonly router: Router<CompiledRoute>,
    readonly routes: readonly CompiledRoute[],
    /** Keys of every secret reference the config uses (a change to one rebuilds the snapshot). */
    readonly refKeys: ReadonlySet<string>,
    /** ms when a rotation grace in it ends (the snapshot must be rebuilt then); Infinity if none. */
    readonly expiresAt: number,
    /** What the build that made it holds for it (pools, plugin state): let go of once, when the last request is done. */
    private onRelease: () => void,
    /** `gateway.trusted_proxies`, compiled: whether a peer's forwarding headers are believed. */
    readonly trustedProxies: TrustedProxies = null,
    /** Each plugin's consumer index in this config (RequestContext.consumerIndex). */
    readonly indexes: ReadonlyMap<string, unknown> = NO_INDEXES,
    /** The compiled `upstreams:` entries the routes use, by id. */
    readonly upstreams: ReadonlyMap<string, CompiledUpstream> = NO_UPSTREAMS,
    /** The certificates the TLS listener serves, by server name (`ssls:`). */
    readonly tls: TlsTable = EMPTY_TLS_TABLE,
  ) {}

  /** The upstream a route proxies to: its own, or its `upstream_id`'s in this snapshot. */
  upstreamOf(route: CompiledRoute): CompiledUpstream | undefined {
    return route.upstream ?? (route.upstreamId === undefined ? undefined : this.upstreams.get(route.upstreamId));
  }

  /** A request finished with this snapshot. */
  done(): void {
    if (--this.inflight === 0 && this.retired) this.release();
  }

  /** This snapshot was replaced: free its pools once its last request is done. */
  retire(): void {
    this.retired = true;
    if (this.inflight === 0) this.release();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    const release = this.onRelease;
    // what the build held is not kept by a snapshot that something may still reference
    this.onRelease = noop;
    release();
  }
}

function noop(): void {}

export function nodeKey(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
