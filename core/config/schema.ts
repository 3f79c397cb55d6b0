// JSON schema of gatehouse.yaml (data sections follow Apache APISIX's standalone format).
// Plugin and secret-provider sections are checked by each extension's own schema.
import type { JsonSchema } from '../contracts';
import { HTTP_METHODS } from './types';

const listen: JsonSchema = {
  type: 'string',
  // host:port, [v6]:port or :port (all interfaces)
  pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]*):[0-9]{1,5}$',
};

/** Longest duration a Node timer can hold (2^31 - 1 ms); anything longer fires at once. */
export const MAX_TIMER_SECONDS = 2147483;
const seconds = (def: number, min = 0.001): JsonSchema => ({ type: 'number', exclusiveMinimum: 0, minimum: min, maximum: MAX_TIMER_SECONDS, default: def });

/** The balancer takes weights up to here (safe integers): a larger one would fail the build without a path. */
const MAX_WEIGHT = Number.MAX_SAFE_INTEGER;

const node: JsonSchema = {
  type: 'object',
  properties: {
    host: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    weight: { type: 'integer', minimum: 0, maximum: MAX_WEIGHT, default: 1 },
  },
  required: ['host', 'port'],
  additionalProperties: false,
};

export const upstreamSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: { type: ['string', 'integer'] },
    name: { type: 'string' },
    desc: { type: 'string' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    type: { enum: ['roundrobin', 'chash', 'least_conn'], default: 'roundrobin' },
    // `{ "host:port": weight }` or `[{ host, port, weight }]`, as APISIX accepts both
    nodes: {
      type: ['object', 'array'],
      minProperties: 1,
      minItems: 1,
      propertyNames: { pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$' },
      additionalProperties: { type: 'integer', minimum: 0, maximum: MAX_WEIGHT },
      items: node,
    },
    hash_on: { enum: ['vars', 'header', 'cookie'], default: 'vars' },
    key: { type: 'string', minLength: 1 },
    scheme: { enum: ['http', 'https'], default: 'http' },
    pass_host: { enum: ['pass', 'node', 'rewrite'], default: 'pass' },
    upstream_host: { type: 'string', minLength: 1 },
    timeout: {
      type: 'object',
      properties: { connect: seconds(60), send: seconds(60), read: seconds(60) },
      additionalProperties: false,
      default: {},
    },
    retries: { type: 'integer', minimum: 0 },
    keepalive_pool: {
      type: 'object',
      properties: {
        size: { type: 'integer', minimum: 1, default: 320 },
        idle_timeout: { type: 'number', minimum: 0, maximum: MAX_TIMER_SECONDS, default: 60 },
        requests: { type: 'integer', minimum: 1, default: 1000 },
      },
      additionalProperties: false,
      default: {},
    },
    // TLS to the nodes of a `scheme: https` upstream (APISIX's upstream `tls`, docs/tls.md): verified
    // by default (APISIX's `verify` defaults to false), a client certificate for mTLS
    tls: {
      type: 'object',
      properties: {
        verify: { type: 'boolean' },
        ca: { type: 'string', minLength: 1 },
        client_cert: { type: 'string', minLength: 1 },
        client_key: { type: 'string', minLength: 1, writeOnly: true },
        client_cert_id: { type: ['string', 'integer'] },
      },
      dependencies: { client_cert: ['client_key'], client_key: ['client_cert'] },
      additionalProperties: false,
    },
    checks: {
      type: 'object',
      properties: {
        passive: {
          type: 'object',
          properties: {
            // consecutive failures (connect errors, resets, timeouts, http_statuses) before cool-down
            failures: { type: 'integer', minimum: 1, default: 3 },
            cooldown: { type: 'number', minimum: 0, maximum: MAX_TIMER_SECONDS, default: 10 },
            http_statuses: { type: 'array', items: { type: 'integer', minimum: 100, maximum: 599 }, default: [] },
          },
          additionalProperties: false,
          default: {},
        },
      },
      additionalProperties: false,
      default: {},
    },
  },
  required: ['nodes'],
  additionalProperties: false,
};

const routeSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: { type: ['string', 'integer'], pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    name: { type: 'string' },
    desc: { type: 'string' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    uri: { type: 'string', pattern: '^/' },
    uris: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^/' } },
    methods: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: HTTP_METHODS } },
    host: { type: 'string', minLength: 1 },
    hosts: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^(\\*\\.)?[A-Za-z0-9.-]+$' } },
    priority: { type: 'integer', default: 0 },
    status: { enum: [0, 1], default: 1 },
    plugins: { type: 'object', default: {} },
    upstream: upstreamSchema,
    upstream_id: { type: ['string', 'integer'] },
  },
  additionalProperties: false,
};

const consumerSchema: JsonSchema = {
  type: 'object',
  properties: {
    username: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,100}$' },
    desc: { type: 'string' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    plugins: { type: 'object', default: {} },
  },
  required: ['username'],
  additionalProperties: false,
};

const secretSchema: JsonSchema = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[a-z][a-z0-9-]*/[A-Za-z0-9_.-]+$' } },
  required: ['id'],
};

// a PEM string, or a reference to one (docs/tls.md): checked by cross-checks.ts (literal) or at build (resolved)
const pem: JsonSchema = { type: 'string', minLength: 1 };
const secretPem: JsonSchema = { ...pem, writeOnly: true };

/** An SSL resource, APISIX's shape (docs/tls.md). */
export const sslSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: { type: ['string', 'integer'], pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    desc: { type: 'string' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    cert: pem,
    key: secretPem,
    certs: { type: 'array', items: pem },
    keys: { type: 'array', items: secretPem },
    // exact names or one-label wildcards ("*.example.com"); compared without case
    snis: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1, maxLength: 253 } },
    type: { enum: ['server', 'client'], default: 'server' },
    status: { enum: [0, 1], default: 1 },
    // client-certificate verification (kept for the TLS listener)
    client: {
      type: 'object',
      properties: { ca: pem, depth: { type: 'integer', minimum: 0, default: 1 } },
      required: ['ca'],
      additionalProperties: false,
    },
  },
  required: ['cert', 'key', 'snis'],
  additionalProperties: false,
};

/** Schema of the whole document. */
export const configSchema: JsonSchema = {
  type: 'object',
  properties: {
    gateway: {
      type: 'object',
      properties: {
        listen: { ...listen, default: '0.0.0.0:9080' },
        // the TLS listener (HTTPS), beside the plain one; certificates come from ssls by SNI
        listen_tls: listen,
        // HTTP/2 on the TLS listener (ALPN h2 beside http/1.1), as APISIX's enable_http2
        http2: { type: 'boolean', default: true },
        workers: { anyOf: [{ type: 'integer', minimum: 1, maximum: 256 }, { const: 'auto' }], default: 1 },
        // seconds SIGTERM waits for in-flight requests before closing them
        drain_timeout: { type: 'number', minimum: 0, maximum: MAX_TIMER_SECONDS, default: 10 },
        // seconds a client has to send its request headers (slowloris); 408 after that
        client_header_timeout: { type: 'number', exclusiveMinimum: 0, maximum: 3600, default: 60 },
        // seconds the gateway waits for the next piece of a request body it is reading (nginx's
        // client_body_timeout: between two reads, not for the whole body); 408 after that
        client_body_timeout: { type: 'number', exclusiveMinimum: 0, maximum: 3600, default: 60 },
        // bytes per second a request body must keep up, on average, to hold an upstream connection
        // longer than the upstream's timeout.send (Apache mod_reqtimeout's MinRate and default); 0 = off, at most 1 GiB/s
        client_body_min_rate: { type: 'integer', minimum: 0, maximum: 1073741824, default: 500 },
        // largest request body, bytes or nginx size syntax ("512k", "10m", "1g"); 0 = no limit (APISIX's default)
        client_max_body_size: { type: ['integer', 'string'], minimum: 0, pattern: '^[0-9]+[kKmMgG]?$', default: 0 },
        access_log: { type: 'boolean', default: true },
        log_level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
        // nginx's underscores_in_headers: off drops request headers whose names contain "_"
        underscores_in_headers: { type: 'boolean', default: false },
        // peers (addresses, CIDR ranges) whose X-Forwarded-* and Forwarded headers are believed
        trusted_proxies: { type: 'array', items: { type: 'string' }, default: [] },
        // TLS: the server name whose certificate a client that sends none gets (docs/tls.md)
        tls: {
          type: 'object',
          properties: { fallback_sni: { type: 'string', minLength: 1 } },
          additionalProperties: false,
          default: {},
        },
      },
      additionalProperties: false,
      default: {},
    },
    admin: {
      type: 'object',
      properties: {
        listen: { ...listen, default: '127.0.0.1:9180' },
        key: { type: 'string', minLength: 1 },
        allow: { type: 'array', items: { type: 'string' }, default: ['127.0.0.0/8'] },
        // the Admin API over TLS (docs/tls.md): PEMs or references of any kind, resolved live
        tls: {
          type: 'object',
          properties: {
            cert: pem,
            key: secretPem,
            // admin callers must present a certificate this CA signed
            client_ca: pem,
          },
          required: ['cert', 'key'],
          additionalProperties: false,
        },
        // most resources of each kind the Admin API lets exist; a create beyond one is refused
        limits: {
          type: 'object',
          properties: {
            routes: { type: 'integer', minimum: 1, default: 10000 },
            upstreams: { type: 'integer', minimum: 1, default: 10000 },
            consumers: { type: 'integer', minimum: 1, default: 100000 },
            secrets: { type: 'integer', minimum: 1, default: 1000 },
            ssls: { type: 'integer', minimum: 1, default: 1000 },
          },
          additionalProperties: false,
          default: {},
        },
      },
      additionalProperties: false,
    },
    config_store: {
      type: 'object',
      properties: {
        type: { enum: ['file', 'etcd'], default: 'file' },
        endpoints: { type: 'array', items: { type: 'string' }, minItems: 1 },
        prefix: { type: 'string', pattern: '^/' },
        // file store: where Admin API writes persist; readonly = the file is the only source (GitOps)
        data_file: { type: 'string', minLength: 1 },
        readonly: { type: 'boolean', default: false },
        // etcd store: deadline of each etcd call (seconds); key for plaintext secret fields at rest
        timeout: { type: 'number', exclusiveMinimum: 0, maximum: 60 },
        encryption_key: { type: 'string', minLength: 1, writeOnly: true },
        // etcd store: authentication (the password an $env:// reference) and TLS (PEM file paths)
        user: { type: 'string', minLength: 1 },
        password: { type: 'string', minLength: 1, writeOnly: true },
        tls: {
          type: 'object',
          properties: {
            ca: { type: 'string', minLength: 1 },
            cert: { type: 'string', minLength: 1 },
            key: { type: 'string', minLength: 1 },
          },
          additionalProperties: false,
        },
      },
      additionalProperties: false,
      default: {},
    },
    secret_cache: {
      type: 'object',
      properties: {
        ttl: { type: 'number', minimum: 0, default: 300 },
        neg_ttl: { type: 'number', minimum: 0, default: 60 },
        stale_if_error: { type: 'number', minimum: 0, default: 86400 },
        rotation_grace: { type: 'number', minimum: 0, default: 300 },
      },
      additionalProperties: false,
      default: {},
    },
    extensions: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    // the operator's reference policy: what data sections (which the Admin API writes) may make the
    // gateway read and where their credentials may go; a section of the config file only
    secret_policy: {
      type: 'object',
      properties: {
        // $env:// variables data sections may name: exact names, or a prefix ending in '*'
        env: { type: 'array', items: { type: 'string', pattern: '^([A-Za-z_][A-Za-z0-9_]*\\*?|\\*)$' }, default: ['*'] },
        // folders (or files) secret resources may read; none by default
        files: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
        // origins a credential may be sent to besides the one it is bound to ('*': any)
        destinations: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
      },
      additionalProperties: false,
      default: {},
    },
    routes: { type: 'array', items: routeSchema, default: [] },
    upstreams: { type: 'array', items: { ...upstreamSchema, required: ['id', 'nodes'] }, default: [] },
    consumers: { type: 'array', items: consumerSchema, default: [] },
    secrets: { type: 'array', items: secretSchema, default: [] },
    ssls: { type: 'array', items: { ...sslSchema, required: ['id', 'cert', 'key', 'snis'] }, default: [] },
  },
  additionalProperties: false,
};
