// Typed shape of a validated, normalised configuration (defaults applied, ids as strings).

export interface NodeConfig {
  readonly host: string;
  readonly port: number;
  readonly weight: number;
}

export interface UpstreamConfig {
  readonly id?: string;
  readonly type: 'roundrobin' | 'chash' | 'least_conn';
  /** Always the array form after normalisation. */
  readonly nodes: readonly NodeConfig[];
  readonly hash_on: 'vars' | 'header' | 'cookie';
  readonly key?: string;
  readonly scheme: 'http' | 'https';
  readonly pass_host: 'pass' | 'node' | 'rewrite';
  readonly upstream_host?: string;
  readonly timeout: { readonly connect: number; readonly send: number; readonly read: number };
  readonly retries?: number;
  readonly keepalive_pool: { readonly size: number; readonly idle_timeout: number; readonly requests: number };
  readonly checks: { readonly passive: { readonly failures: number; readonly cooldown: number; readonly http_statuses: readonly number[] } };
  /** TLS to the nodes (`scheme: https`): PEMs or references; verification on unless `verify: false`. */
  readonly tls?: UpstreamTlsConfig;
}

/** An upstream's `tls` (APISIX's fields; `ca` is Gatehouse's, `verify` defaults to true here). */
export interface UpstreamTlsConfig {
  readonly verify?: boolean;
  readonly ca?: string;
  readonly client_cert?: string;
  readonly client_key?: string;
  /** An SSL resource of `type: client` whose `cert`/`key` are the client certificate. */
  readonly client_cert_id?: string;
}

export interface RouteConfig {
  readonly id: string;
  readonly name?: string;
  /** Always the list form after normalisation (`uri` becomes `[uri]`). */
  readonly uris: readonly string[];
  readonly methods?: readonly string[];
  readonly hosts?: readonly string[];
  readonly priority: number;
  readonly status: 0 | 1;
  readonly plugins: Readonly<Record<string, unknown>>;
  readonly upstream?: UpstreamConfig;
  readonly upstream_id?: string;
}

export interface ConsumerConfig {
  readonly username: string;
  readonly desc?: string;
  readonly plugins: Readonly<Record<string, unknown>>;
}

export interface SecretConfig {
  readonly id: string;
  readonly [field: string]: unknown;
}

export interface GatewaySettings {
  readonly listen: string;
  /** The TLS listener's address (certificates from `ssls` by SNI); none when unset. */
  readonly listen_tls?: string;
  /** HTTP/2 on the TLS listener: ALPN offers `h2` before `http/1.1` (false: `http/1.1` only). Read at start. */
  readonly http2: boolean;
  readonly workers: number | 'auto';
  readonly drain_timeout: number;
  readonly client_header_timeout: number;
  /** Seconds between two reads of a request body before the request ends with 408. */
  readonly client_body_timeout: number;
  /**
   * Bytes per second a request body must average for its upload to hold an upstream connection
   * past the upstream's `timeout.send` (each `client_body_min_rate` bytes buy one more second); 0 = off.
   */
  readonly client_body_min_rate: number;
  /** Largest request body in bytes (size strings are converted); 0 = no limit. */
  readonly client_max_body_size: number;
  readonly access_log: boolean;
  readonly log_level: string;
  /** Pass request headers whose names contain `_` (nginx's `underscores_in_headers`); off: they are dropped. */
  readonly underscores_in_headers: boolean;
  /** Addresses and CIDR ranges of proxies in front of the gateway whose forwarding headers are believed. */
  readonly trusted_proxies: readonly string[];
  /** TLS settings: `fallback_sni`, the server name whose certificate a client that sends none gets. */
  readonly tls: { readonly fallback_sni?: string };
}

/** Most resources of each kind the Admin API lets exist. */
export interface AdminLimits {
  readonly routes: number;
  readonly upstreams: number;
  readonly consumers: number;
  readonly secrets: number;
  readonly ssls: number;
}

/** `secret_policy`: what data sections may reference, read and send credentials to (config file only). */
export interface SecretPolicyConfig {
  /** `$env://` variables data sections may name (`NAME`, `PREFIX_*`, `*`). */
  readonly env: readonly string[];
  /** Folders (or files) secret resources may read. */
  readonly files: readonly string[];
  /** Origins a credential may be sent to besides the one it is bound to (`*`: any). */
  readonly destinations: readonly string[];
}

/** The Admin API's TLS (`admin.tls`): its certificate and key, and the CA of admin callers' client certificates; PEMs or references, resolved live. */
export interface AdminTlsSettings {
  readonly cert: string;
  readonly key: string;
  readonly client_ca?: string;
}

export interface GatewayConfig {
  readonly gateway: GatewaySettings;
  readonly admin?: { readonly listen: string; readonly key?: string; readonly allow: readonly string[]; readonly limits: AdminLimits; readonly tls?: AdminTlsSettings };
  readonly config_store: { readonly type: 'file' | 'etcd'; readonly endpoints?: readonly string[]; readonly prefix?: string; readonly timeout?: number; readonly encryption_key?: string; readonly data_file?: string; readonly readonly?: boolean };
  readonly secret_cache: { readonly ttl: number; readonly neg_ttl: number; readonly stale_if_error: number; readonly rotation_grace: number };
  readonly extensions: readonly string[];
  readonly secret_policy: SecretPolicyConfig;
  readonly routes: readonly RouteConfig[];
  readonly upstreams: readonly UpstreamConfig[];
  readonly consumers: readonly ConsumerConfig[];
  readonly secrets: readonly SecretConfig[];
  readonly ssls: readonly SslConfig[];
}

/** An SSL resource (`ssls:`), APISIX's shape: PEM strings or references to them (docs/tls.md). */
export interface SslConfig {
  readonly id: string;
  readonly desc?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly cert: string;
  readonly key: string;
  readonly certs?: readonly string[];
  readonly keys?: readonly string[];
  /** Exact names and `*.` wildcards, lower case once validated. */
  readonly snis: readonly string[];
  readonly type: 'server' | 'client';
  readonly status: 0 | 1;
  readonly client?: { readonly ca: string; readonly depth: number };
}

/** The request methods a route's `methods` may list (APISIX's). */
export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'] as const;
