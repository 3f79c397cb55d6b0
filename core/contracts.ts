// The public contracts of Gatehouse: what plugins, secret providers, config stores, loggers and
// metrics look like. Everything else depends on these, never on a sibling plugin or provider.
import type { IncomingMessage, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** A JSON schema (draft-07 as understood by ajv). */
export type JsonSchema = Record<string, unknown>;

/**
 * The schema keyword of a plugin field whose value goes back to clients (a mocked body, a
 * response header, a rejection message): `{ type: 'string', [SENT_TO_CLIENT]: true }`. A secret
 * reference anywhere in such a field (its whole subtree: an object of header values too) is a
 * config error at its path, so nobody who may write a route or a consumer can publish a secret
 * the gateway resolves for them.
 */
export const SENT_TO_CLIENT = 'x-sent-to-client';

/** Structured logger (a pino-compatible subset). Never pass secret values to it. */
export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  /** A logger that adds `bindings` to every line. */
  child(bindings: Record<string, unknown>): Logger;
}

/** Monotonic-enough wall clock in milliseconds; injectable for deterministic tests. */
export interface Clock {
  now(): number;
}

/** A counter metric with fixed label names. */
export interface Counter<L extends string = string> {
  inc(labels?: Partial<Record<L, string | number>>, value?: number): void;
}
/** A histogram metric with fixed label names (values in seconds by convention). */
export interface Histogram<L extends string = string> {
  observe(labels: Partial<Record<L, string | number>>, value: number): void;
}
/** A gauge metric with fixed label names. */
export interface Gauge<L extends string = string> {
  set(labels: Partial<Record<L, string | number>>, value: number): void;
  inc(labels?: Partial<Record<L, string | number>>, value?: number): void;
  dec(labels?: Partial<Record<L, string | number>>, value?: number): void;
}

/**
 * Metrics registry. Creating a metric twice with the same name returns the first one.
 * Label values must never carry a secret.
 */
export interface Metrics {
  counter<L extends string>(name: string, help: string, labelNames?: readonly L[]): Counter<L>;
  histogram<L extends string>(name: string, help: string, labelNames?: readonly L[], buckets?: number[]): Histogram<L>;
  gauge<L extends string>(name: string, help: string, labelNames?: readonly L[]): Gauge<L>;
  /** Prometheus text exposition of every metric. */
  render(): Promise<string>;
  /** Content-Type of `render()`'s output. */
  readonly contentType: string;
}

/** What a route looks like to a plugin. */
export interface RouteInfo {
  readonly id: string;
  readonly uri: string;
}

/**
 * The per-request context given to plugin hooks: all a plugin reads and calls during a request.
 * Built once per request by the core; hooks read and change it. Changes to `path`, `query` and the
 * upstream headers affect the proxied request. The core's own per-request state (the compiled
 * route, the snapshot, the body limit, how far the response got) is not part of it.
 */
export interface RequestContext {
  /** The raw Node request (read-only use: do not consume its body in a hook). */
  readonly req: IncomingMessage;
  /** Request method; a rewrite hook may change it (the method sent upstream). */
  method: string;
  /** Request path without the query string; a rewrite hook may change it. */
  path: string;
  /** Raw query string without '?' ('' when none); a rewrite hook may change it. */
  query: string;
  /** Host header without port, lowercased, without a trailing dot ('[::1]' for an IPv6 literal; '' when none). */
  readonly host: string;
  /**
   * Address of the client: the connection's peer, or, when the peer is one of
   * `gateway.trusted_proxies`, the rightmost X-Forwarded-For address that is not a trusted proxy.
   */
  readonly clientIp: string;
  /** Parameters captured by the route's uri (`/users/:id`). */
  readonly params: Readonly<Record<string, string | undefined>>;
  readonly route: RouteInfo;
  /** Incoming request headers (lowercase names); names with `_` are left out unless `gateway.underscores_in_headers` is on. */
  readonly headers: IncomingHttpHeaders;
  /** Set (or with `undefined`, remove) a header on the request sent upstream. */
  setUpstreamHeader(name: string, value: string | undefined): void;
  /** Set (or with `undefined`, remove) a header on the response sent to the client. */
  setResponseHeader(name: string, value: string | string[] | undefined): void;
  /** Per-request scratch space shared by the plugins of this request. */
  readonly vars: Map<string, unknown>;
  /**
   * End the request now with this response; later hooks of the request phases do not run
   * (response and log hooks still do). Objects are sent as JSON.
   * @example ctx.respond(401, { message: 'Missing API key found in request' })
   */
  respond(status: number, body?: string | Buffer | object, headers?: OutgoingHttpHeaders): void;
  /** True once `respond` was called. */
  readonly responded: boolean;
  /** Response status, known in the `response` and `log` phases. */
  readonly status: number;
  /** Response headers as they will be sent (the `response` phase may change them with setResponseHeader). */
  readonly responseHeaders: OutgoingHttpHeaders;
  /** "host:port" of the upstream node that answered, if any. */
  readonly upstreamNode: string | undefined;
  /** Request start time (ms since epoch). */
  readonly startTime: number;
  /** The consumer an authentication plugin identified, if any. */
  readonly consumer: Consumer | undefined;
  /**
   * Attach the authenticated consumer: sets `consumer`, the `X-Consumer-Username` header sent
   * upstream (a client-sent one is always dropped) and the access log's consumer field.
   */
  setConsumer(consumer: Consumer): void;
  /**
   * The consumer index of `plugin` (what its `indexConsumers` / `updateConsumers` built) in the
   * config this request started on; undefined for a plugin without one. A plugin that implements
   * `updateConsumers` reads its index here in its hooks: a consumer change then reaches every route
   * without any route being created again (`services.consumers` is the index of the build that
   * created the route, which a later consumer change does not replace).
   */
  consumerIndex<I = unknown>(plugin: string): I | undefined;
  /**
   * What the TLS layer established for this request's connection, on the TLS listener
   * (`gateway.listen_tls`), over HTTP/1.1 and HTTP/2 alike; undefined for a request on the plain
   * listener. Read once per connection, the same object for every request on it. It never holds the
   * certificate itself, only the facts below.
   */
  readonly tls: TlsFacts | undefined;
}

/** The TLS facts of a connection (`RequestContext.tls`). */
export interface TlsFacts {
  /** The server name the client asked for (SNI), lowercased; undefined when it sent none. */
  readonly serverName: string | undefined;
  /** The TLS version negotiated: `TLSv1.2` or `TLSv1.3`. */
  readonly version: string;
  /** The application protocol ALPN chose: `h2` or `http/1.1`; undefined when the client offered none. */
  readonly alpn: string | undefined;
  /**
   * The client's certificate, verified against the SSL resource's `client.ca` (within its
   * `client.depth`); undefined where the SSL resource does not ask clients for one.
   */
  readonly clientCert: ClientCertificate | undefined;
}

/** A verified client certificate, as plugins see it: its identity and validity, never the certificate or a key. */
export interface ClientCertificate {
  /** The subject as an RFC 2253-like one-line string, `CN=alice,O=Example` (most specific last, as OpenSSL prints it). */
  readonly subject: string;
  /** The issuer, in the same form. */
  readonly issuer: string;
  /** The serial number, uppercase hexadecimal as OpenSSL prints it. */
  readonly serial: string;
  /** SHA-256 fingerprint, colon-separated uppercase hex (`AB:CD:…`), as `openssl x509 -fingerprint -sha256`. */
  readonly fingerprint256: string;
  /** Start and end of validity, ms since epoch. */
  readonly validFrom: number;
  readonly validTo: number;
}

/** An API consumer (`consumers:` entry) as requests see it. */
export interface Consumer {
  readonly username: string;
}

/**
 * A consumer as a plugin's consumer index sees it: its resolved config for that plugin, plus the
 * configs it had before a secret rotation, each valid until `until` (ms) for `rotation_grace`.
 */
export interface ConsumerEntry<ConsumerConf = unknown> {
  readonly username: string;
  /** The consumer's config for this plugin, references resolved. */
  readonly config: Readonly<ConsumerConf>;
  /** Earlier configs still valid during rotation grace (newest first). */
  readonly previous: ReadonlyArray<{ readonly config: Readonly<ConsumerConf>; readonly until: number }>;
  /** Config path of this consumer's plugin config, for error messages. */
  readonly path: string;
}

/** A hook; may be synchronous (cheaper) or return a promise. */
export type Hook = (ctx: RequestContext) => void | Promise<void>;

/** The hooks one plugin instance runs, per phase, in this order. Every hook is optional. */
export interface PluginHooks {
  /** Before routing decisions that depend on the request are final: change path, query, headers. */
  rewrite?: Hook;
  /** Authentication and authorisation: may `respond` to stop the request. */
  access?: Hook;
  /** Last chance to change the upstream request. */
  beforeProxy?: Hook;
  /** Response status and headers are known; may change headers (runs for every response). */
  response?: Hook;
  /** After the response is finished; must not throw or block. */
  log?: (ctx: RequestContext) => void;
}

/**
 * State that outlives config reloads (counters, connections), private to one plugin in one
 * gateway. A value lives as long as a config in force — or one still finishing its requests —
 * got it: a reload whose plugins `get` the same key keeps it (and its contents); once no such
 * config gets it any more (a key built from a password that has since rotated), `dispose`
 * releases it after the old config's last request. Everything left is disposed when the gateway
 * closes.
 */
export interface PluginState {
  /**
   * The value stored under `key`, created by `init` the first time.
   * @param dispose called once when no config in force uses the value any more, or when the
   *   gateway closes (close a connection, clear a timer)
   * @example const counters = services.state.get('counters', () => new Map<string, number>());
   */
  get<T>(key: string, init: () => T, dispose?: (value: T) => void | Promise<void>): T;
  /** Forget (and dispose) the value under `key`. */
  delete(key: string): Promise<void>;
}

/** Secret references resolved at run time, through the same cache as config references. */
export interface SecretLookup {
  /**
   * @param reference `$secret://…` or `$env://…`
   * @returns the value, or undefined when it does not exist
   * @throws Error for a malformed reference, or when the backend fails and nothing is cached
   */
  resolve(reference: string): Promise<string | undefined>;
}

/** Services the core gives to every plugin instance. */
export interface PluginServices<Index = unknown> {
  /** What the plugin's `indexConsumers` built for this config (undefined without one). */
  readonly consumers: Index;
  /** Whether a consumer with this username exists in the config being loaded. */
  hasConsumer(username: string): boolean;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  /** State kept across reloads (see {@link PluginState}); absent only in `indexConsumers`. */
  readonly state: PluginState;
  /** Secret references resolved at run time (config references are resolved before `create`). */
  readonly secrets: SecretLookup;
  /** An HTTP client for calls the plugin makes itself (undici's `fetch`). */
  readonly fetch: typeof fetch;
  /** The route this instance is created for (in `create`; absent in `indexConsumers`). */
  readonly route?: RouteInfo;
}

/** What `create` receives: the plugin services, and what the plugin's `buildStart` returned. */
export interface CreateServices<Index = unknown, Build = unknown> extends PluginServices<Index> {
  /**
   * The value `buildStart` returned for the build this `create` is part of (undefined without a
   * `buildStart`): the same for every route of one build, a new one for the next build.
   */
  readonly build: Build;
  /**
   * Whether the config value at `path` was a secret reference (`$secret://…`, `$env://…`) that the
   * core replaced by its value. A resolved value is data: a field that takes templates or any
   * other syntax must use such a value byte for byte (a Vault value `Bearer abc$host` is that text,
   * not a template reading `$host`).
   * @param path the keys from the config's root to the value (`['headers', 'set', 'X-Token']`,
   *   `['regex_uri', 1]`), or the same as a path string (`headers.set.X-Token`, `regex_uri[1]`,
   *   a key that is not an identifier quoted: `headers.set["x.token"]`)
   */
  isReference(path: string | ReadonlyArray<string | number>): boolean;
}

/** What changed among a plugin's consumer entries (see {@link Plugin.updateConsumers}). */
export interface ConsumerDelta<ConsumerConf = unknown> {
  /** Entries new to the index (a new consumer, a consumer's new config, a rotated value). */
  readonly added: readonly ConsumerEntry<ConsumerConf>[];
  /** Entries that leave it: the same objects an earlier call was given. */
  readonly removed: readonly ConsumerEntry<ConsumerConf>[];
}

/** What `indexConsumers` receives: the plugin services, and the ways to leave a consumer out. */
export interface IndexServices extends Omit<PluginServices, 'consumers'> {
  /**
   * Leave `entry` out of this plugin's index, failing closed for that consumer alone: it cannot
   * authenticate with this plugin while the cause lasts, every other consumer keeps working and the
   * build goes on. For a value the plugin cannot use (a secret that rotated to something that is
   * not base64) and for credentials two consumers share. The core builds the index again without
   * the entries left out, and logs each once (when it appears, not at every rebuild while it lasts),
   * naming the consumer, the plugin, the references in its config and `reason`.
   * @param reason why, in words that never quote a value (it is logged)
   */
  exclude(entry: ConsumerEntry, reason: string): void;
  /** Whether the value at `path` of `entry.config` was a reference (see {@link CreateServices.isReference}). */
  isReference(entry: ConsumerEntry, path: string | ReadonlyArray<string | number>): boolean;
}

/**
 * A plugin: a named, versioned factory of hooks, configured per route.
 * @example
 * const hello: Plugin<{ name: string }> = {
 *   name: 'hello', version: '1.0.0', priority: 100,
 *   schema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
 *   create: (conf) => ({ response: (ctx) => ctx.setResponseHeader('x-hello', conf.name) }),
 * };
 */
export interface Plugin<Conf = any, ConsumerConf = any, Index = any, Build = any> {
  /** Unique name, the key under a route's `plugins:` (`^[a-z][a-z0-9-]*$`). */
  readonly name: string;
  /** Semver of the plugin itself. */
  readonly version: string;
  /** Higher runs first within a phase, as in Apache APISIX. */
  readonly priority: number;
  /**
   * Gatehouse versions this plugin works with (a semver range, e.g. `"^0.1.0"`). Required for
   * plugins loaded through `extensions:`; an incompatible range refuses the config.
   */
  readonly gatehouse?: string;
  /** JSON schema of the route config; defaults it declares are applied before `create`. */
  readonly schema: JsonSchema;
  /** JSON schema of the per-consumer config, for plugins that attach to consumers. */
  readonly consumerSchema?: JsonSchema;
  /**
   * Called once at the start of every build (each config load or reload), before any `create` of
   * that build; what it returns is `services.build` in each of them. State that belongs to one
   * load (what the routes built so far declared) lives there, not in a module variable that every
   * load, and every gateway of the process, would share. Synchronous.
   * @throws to reject the config (the message is reported with the plugin's name)
   * @example buildStart: () => new Map<string, Conf>(), // every group met by this load's routes
   */
  buildStart?(): Build;
  /**
   * Build the hooks for one route, at config-load time. `config` is validated and frozen.
   * @throws to reject the config (the message is reported with the config path). When the config
   *   holds references, the core tells a rejected value from an error in what was written by
   *   calling `create` again with each reference as its text (a scratch `state` and `build`): if
   *   only the resolved config is refused, the route fails closed (503), logged naming the
   *   references, never this message (it may quote the value); a `ConfigError` naming a field
   *   that held a reference counts as a rejected value too
   */
  create(config: Readonly<Conf>, services: CreateServices<Index, Build>): PluginHooks;
  /**
   * The request body limit of a route using this plugin, in bytes, instead of
   * `gateway.client_max_body_size` (0 = no limit; smaller or larger than the gateway's), or
   * undefined to declare none. Called once per route at config-load time, with the config
   * `create` got, not from a hook: the core needs it as soon as the route is matched, so a declared
   * `Content-Length` over it is `413` before any hook runs, before `100 Continue` and before a body
   * byte is read; a chunked body is counted against it. When several plugins of a route declare
   * one, the highest-priority plugin's wins. Must be an integer >= 0.
   * @example maxBodySize: (conf) => conf.max_body_size
   */
  maxBodySize?(config: Readonly<Conf>): number | undefined;
  /**
   * Build the plugin's lookup over every consumer that configures it (e.g. key → consumer), once
   * per config version, off the request path; `create` receives it as `services.consumers`.
   * Rebuilt whenever a consumer or one of its secrets changes. A consumer whose (resolved) config
   * the plugin cannot use is left out with `services.exclude(entry, reason)`, never thrown for:
   * a secret's value must not refuse a config, nor stop the rebuild that revokes an old key.
   * @throws to reject the config for an error in what was written (the message is reported); a
   *   throw whose `path` lies in a consumer whose config holds references is taken as that
   *   consumer's value being unusable: the core leaves it out (logged without the message) and
   *   indexes the rest
   */
  indexConsumers?(consumers: readonly ConsumerEntry<ConsumerConf>[], services: IndexServices): Index;
  /**
   * Apply a change of a few consumers to the index `indexConsumers` (or an earlier
   * `updateConsumers`) built, without touching the rest: the core calls it instead of
   * `indexConsumers` when only some consumers changed (an Admin API write, an etcd event, one
   * secret rotating). `index` must stay as it was (requests in flight still use it): return a new
   * index that shares what did not change. `delta.removed` are the very entry objects an earlier
   * call was given (a replaced consumer is one removed entry and one added); `services.exclude`
   * and throws mean what they mean in `indexConsumers`, for the added entries.
   * @returns the new index, or undefined to have the core call `indexConsumers` with every entry
   */
  updateConsumers?(index: Index, delta: ConsumerDelta<ConsumerConf>, services: IndexServices): Index | undefined;
  /** Type-only marker of the consumer config type. */
  readonly __consumerConf?: ConsumerConf;
}

/** A value fetched from a secret backend. */
export interface SecretValue {
  readonly value: string;
  /** Seconds the backend says the value is valid for (a Vault lease); undefined = use the cache ttl. */
  readonly ttl?: number;
  /** Backend version identifier, when the backend has versions. */
  readonly version?: string;
}

/**
 * What a reference asks a backend for. `$secret://vault/gateway/jack/auth-key#3` gives
 * `{ path: 'jack', field: 'auth-key', version: '3' }`: `path` is every segment between the resource
 * id and the last one (joined by '/', may be empty), `field` the last segment.
 */
export interface SecretRequest {
  readonly path: string;
  readonly field: string;
  readonly version?: string;
}

/** One configured secret resource (`secrets:` entry) turned into a live client. */
export interface SecretBackend {
  /**
   * Fetch one field of one secret.
   * @returns undefined when the secret or the field does not exist (cached for `neg_ttl`)
   * @throws on backend failure (network, auth, 5xx, throttling after retries): the resolver serves
   *   the last good value while it may. Messages must never contain a secret value.
   */
  get(req: SecretRequest): Promise<SecretValue | undefined>;
  /**
   * Fetch many at once (e.g. AWS BatchGetSecretValue) to warm the cache at start. Same order as
   * `reqs`; each entry is a value, undefined (not found) or the Error for that request.
   */
  getMany?(reqs: readonly SecretRequest[]): Promise<Array<SecretValue | undefined | Error>>;
  /**
   * Where `get` looks for `req` (a file path, an API path): named after "not found" in errors and
   * logs, so that an operator sees what was tried (a relative folder resolved from the wrong place,
   * a typo). Never a value, never a credential.
   * @example locate({ path: '', field: 'db-password' }) // '/etc/gatehouse/secrets/db-password'
   */
  locate?(req: SecretRequest): string | undefined;
  /** Release connections and timers (token renewal). */
  close?(): Promise<void> | void;
}

/** Services the core gives to every secret backend. */
export interface ProviderServices {
  readonly logger: Logger;
  readonly clock: Clock;
  /**
   * A path from the provider's config (a folder, a PEM file) made absolute: a relative one resolves
   * from the config file's folder, whatever the process's working directory (for a config given in
   * memory, from the working directory).
   * @example services.resolvePath('./secrets') // '/etc/gatehouse/secrets' for /etc/gatehouse/gatehouse.yaml
   */
  resolvePath(path: string): string;
}

/** A secret provider: the factory of backends for one manager name (`vault`, `aws`, `env`). */
export interface SecretProvider<Conf = any> {
  /** The manager name used in references: `$secret://<name>/<id>/...`. */
  readonly name: string;
  readonly version: string;
  /** Gatehouse versions this provider works with (semver range); required through `extensions:`. */
  readonly gatehouse?: string;
  /**
   * Whether references may leave out the path: `$secret://<name>/<id>/<field>` (the backend then
   * gets `path: ''`). Default false: `<path>` is required, as for Vault and AWS.
   */
  readonly pathOptional?: boolean;
  /** JSON schema of a `secrets:` entry for this manager (without `id`). */
  readonly schema: JsonSchema;
  /** Build a backend for one secret resource. @throws to reject the config */
  create(config: Readonly<Conf>, services: ProviderServices): SecretBackend | Promise<SecretBackend>;
  /**
   * Where a resource sends its credentials and which files it reads, for the reference policy
   * (`secret_policy`): checked at every load and Admin API write before any backend is contacted.
   * Called with the config as written, references unresolved (a field holding one gives its
   * reference text); pure and synchronous, no I/O. Without it a resource has no destination and
   * reads no file, so its credentials are not bound: declare it in any provider that sends
   * credentials over the network or reads files.
   * @example access: (conf) => ({ destination: conf.uri, files: conf.ca ? { ca: conf.ca } : {} })
   */
  access?(config: Readonly<Conf>): SecretAccess;
}

/** What a secret resource reaches, as its provider declares it ({@link SecretProvider.access}). */
export interface SecretAccess {
  /**
   * The URL whose origin receives the resource's credentials (Vault's `uri`, an AWS endpoint).
   * Every credential of the resource is bound to this origin the first time it is used.
   */
  readonly destination?: string;
  /**
   * Files the backend reads (a folder, for a provider that reads the files in it), by the config
   * field that names each (`dir`, `auth.jwt_path`; a default the field falls back to counts too),
   * as written: relative ones resolve from the config file's folder; an undefined entry is skipped.
   * Issues name the field, never the path (a field may hold key material by mistake).
   */
  readonly files?: Readonly<Record<string, string | undefined>>;
  /** Of `files`, the fields whose file is sent to `destination` as a credential (a service-account token): bound like a reference. */
  readonly credentialFiles?: readonly string[];
  /**
   * The name of a credential the backend takes implicitly when the config names none (the AWS
   * SDK's default credential chain), bound like a reference. Never a value.
   */
  readonly implicitCredential?: string;
}

/**
 * The data sections of a config, the one list of them: what the Admin API changes, what a config
 * store keeps apart from the file's own sections (a data file, etcd keys).
 */
export const DATA_KINDS = ['routes', 'upstreams', 'consumers', 'secrets', 'ssls'] as const;

/** One of {@link DATA_KINDS}. */
export type DataKind = (typeof DATA_KINDS)[number];

/** The sections the Admin API changes, as raw documents. */
export type DataSections = { readonly [K in DataKind]: unknown[] };

/**
 * One resource of a data section that changed, as stored (before validation): created (no
 * `before`), replaced, or deleted (no `after`). Stores persist and report changes this way, so a
 * write costs what it changes.
 */
export interface DataChange {
  readonly kind: DataKind;
  /** The resource's id (`username` for consumers), as a string. */
  readonly id: string;
  readonly before?: Readonly<Record<string, unknown>>;
  readonly after?: Readonly<Record<string, unknown>>;
}

/** The raw configuration document (already parsed from YAML/JSON, not yet validated). */
export type RawConfig = Record<string, unknown>;

/** Where configuration comes from: a file, the embedded store, etcd. */
export interface ConfigStore {
  /** Human-readable description for logs (e.g. the file path). */
  readonly description: string;
  /** Read the whole configuration. @throws GatehouseError GH_ERR_CONFIG_PARSE on unreadable input */
  load(): Promise<RawConfig>;
  /** The whole configuration given the config file's own document, already read by the caller. */
  complete?(fileDoc: RawConfig): Promise<RawConfig>;
  /** Read the configuration again for a live reload; may be stricter than `load` (defaults to it). */
  reload?(): Promise<RawConfig>;
  /**
   * Persist new data sections (Admin API writes). Absent on read-only stores.
   * @throws GatehouseError GH_ERR_STORE_READONLY when writes are switched off by config
   */
  writeData?(data: DataSections): Promise<void>;
  /**
   * Persist an Admin API write as what it changed (the file store appends them to its journal,
   * etcd writes those keys alone). `data` gives every data section after the change, for a store that
   * keeps them whole (made when called: a store that needs only the changes never pays for it).
   * Preferred to `writeData` when present.
   * @throws GatehouseError as writeData; GH_ERR_STORE_CONFLICT when another writer changed one of these resources
   */
  writeChanges?(changes: readonly DataChange[], data: () => DataSections): Promise<void>;
  /**
   * How many resources of `kind` the store holds now, every writer's included (etcd: a count-only
   * read); for `admin.limits`, which a node's own view may count short while another node's
   * write is on its way to it. Absent on stores with one writer.
   */
  count?(kind: DataKind): Promise<number>;
  /** Checked before a write is even built. @throws GatehouseError GH_ERR_STORE_READONLY */
  assertWritable?(): Promise<void>;
  /**
   * Call `onChange` whenever the configuration may have changed; shared stores (etcd) also pass
   * on commands other nodes published (`onCommand`). With `changes` the store says exactly which
   * resources changed (an etcd watch event, a journal record another process appended), and only
   * those are applied; without, the gateway reads the whole configuration again (`reload`).
   */
  watch(onChange: (changes?: readonly DataChange[]) => void, onCommand?: (cmd: ClusterCommand) => void): void;
  /** Tell every other node sharing this store (etcd) to run a command. */
  publish?(cmd: ClusterCommand): Promise<void>;
  /**
   * Where each credential may be sent (trust on first use, as SSH's known hosts), kept with the
   * config so every node sharing the store agrees. Absent on stores that cannot persist them (the
   * gateway then keeps them in memory for its own lifetime).
   */
  readonly bindings?: DestinationBindings;
  /** The files the store reads itself (the config file, the data file): no secret resource may read them. */
  ownFiles?(): readonly string[];
  /** Paths of the plaintext secret fields of a resource, for stores that encrypt them at rest. */
  useSecretFields?(paths: SecretFieldPaths): void;
  close(): Promise<void>;
}

/**
 * Credential → destination bindings. A credential is named by the reference that holds it
 * (`$env://VAULT_TOKEN`) or by the provider's name for an implicit one; a destination is an
 * origin (`https://vault.example.com:8200`). Neither is ever a secret value.
 */
export interface DestinationBindings {
  /** Every binding, credential → destination. */
  list(): Promise<ReadonlyMap<string, string>>;
  /**
   * Bind `credential` to `destination` unless it is bound already; atomic across the nodes of the
   * store (two nodes binding at once agree on one winner).
   * @returns the destination the credential is bound to now (the earlier one, or `destination`)
   * @throws GatehouseError when the store cannot be written (read-only, down)
   */
  bind(credential: string, destination: string): Promise<string>;
  /** Forget a binding (the operator moves a credential to a new address). @returns whether there was one */
  unbind(credential: string): Promise<boolean>;
}

/** writeOnly (secret) field paths, dot-separated, of one resource of a data section. */
export type SecretFieldPaths = (kind: DataKind, item: unknown) => readonly string[];

/** Something every gateway process must do: other nodes (through the store) and workers (through the bus). */
export type ClusterCommand = { readonly type: 'secret-refresh'; readonly resource: string; readonly origin: string };

/** Fans commands out to the other worker processes of one node (node:cluster IPC). */
export interface ClusterBus {
  publish(cmd: ClusterCommand): void;
  subscribe(fn: (cmd: ClusterCommand) => void): void;
}

/** Something registered into a gateway's container: a plugin or a secret provider. */
export type Extension =
  | { readonly kind: 'plugin'; readonly plugin: Plugin }
  | { readonly kind: 'provider'; readonly provider: SecretProvider };
