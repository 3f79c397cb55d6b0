// The Admin API listener: resources with APISIX envelopes under /admin/ and /apisix/admin/, plugin
// schemas, forced secret refresh, the API's OpenAPI description (openapi.ts), and Prometheus
// /metrics; over TLS when `admin.tls` is set (its certificate and key rotate live, see AdminTls). Every call is checked against admin.allow; every call but /metrics needs the X-API-KEY
// admin key. Then the route table (routes.ts) picks the handler; a write runs its document
// operation (documents.ts) inside the gateway's change(), which validates, persists and swaps.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger, Metrics } from '../contracts';
import type { AdminLimits, GatewayConfig } from '../config/types';
import type { Registry } from '../config/registry';
import { parseListen } from '../config/settings-check';
import type { SecretResolver } from '../secrets/resolver';
import { looksLikeReference, parseReference } from '../secrets/reference';
import { generateAdminKey, keyChecker, printGeneratedAdminKey } from './access';
import { allowList } from '../config/allow-list';
import { lingerOnClose } from '../request/linger';
import { clientTimeouts, TLS_SERVER_DEFAULTS } from '../request/listener';
import { adminTlsIssues } from '../config/ssl-checks';
import type { AdminTlsSettings } from '../config/types';
import type { ConfigIssue } from '../errors';
import { redact, secretFieldPaths, SSL_SECRET_PATHS, UPSTREAM_SECRET_PATHS, writeOnlyPaths } from './redact';
import type { SecretFieldPaths } from '../contracts';
import { ADMIN_PREFIXES } from './paths';
import { adminOpenApi } from './openapi';
import { adminRouter, type AdminAction } from './routes';
import { AdminError, deleteResource, patchResource, postedId, putResource, subPatchResource, writeTarget, type ResourceEdit, type WriteOnlyPaths } from './documents';

/** The outcome of a change: applied, or refused with the status to answer. */
type ChangeResult = { ok: true } | { ok: false; status: number; message: string; issues: ReadonlyArray<{ path: string; message: string }> };

/** What the Admin API reads from its gateway. */
export interface AdminHost {
  /** The live config. */
  config(): GatewayConfig;
  readonly registry: Registry;
  readonly resolver: SecretResolver;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The admin key a `gatehouse start` primary generated (and printed) for its workers, used when `admin.key` is not set. */
  readonly generatedKey?: string;
  /** Apply a change to the data sections (validated, persisted, live when it resolves). */
  /** @param counted a kind whose `admin.limits` entry `mutate` checks: its stored count is read from the store inside the change when near */
  change(edit: (doc: ResourceEdit, stored?: number) => void, counted?: { kind: string; limit: number }): Promise<ChangeResult>;
  /** The live config's resource `id` of `kind` (found without a pass over the others), or undefined. */
  resource(kind: string, id: string): unknown;
  /** Refresh one secret resource here and on every other gateway process. */
  refreshSecret(resource: string): Promise<{ refreshed: number; failed: number; published: boolean }>;
}

/** Longest an Admin API request may take, headers and body (Node's default). */
const ADMIN_REQUEST_TIMEOUT_MS = 300_000;

/** Largest Admin API request body. */
const MAX_BODY = 1024 * 1024;

/** A body past MAX_BODY: answered 413 with a lingering close. */
class BodyTooLarge extends AdminError {
  constructor() {
    super(413, `request body larger than ${MAX_BODY} bytes`);
  }
}

/** The APISIX etcd key of a resource, as its envelopes name it. */
function apisixKey(kind: string, id: string): string {
  return `/apisix/${kind}/${id}`;
}

function describePlugin(p: { name: string; version: string; priority: number; schema: unknown; consumerSchema?: unknown }) {
  return { name: p.name, version: p.version, priority: p.priority, schema: p.schema, consumer_schema: p.consumerSchema ?? null };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** One routed call: what its handler reads. */
interface Call {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly kind: string;
  readonly params: Record<string, string | undefined>;
  /** The raw path after the prefix (still escaped, empty segments kept). */
  readonly rest: string;
}

/** The resource id a path names: `{manager}/{id}` for secrets; undefined when it names none. */
function pathId(kind: string, params: Call['params']): string | undefined {
  if (kind !== 'secrets') return params.id;
  return params.id === undefined ? undefined : `${params.manager}/${params.id}`;
}

export class AdminServer {
  private server: Server | undefined;
  private readonly allowed: (address: string) => boolean;
  private generatedKey: string | undefined;
  private checker: { key: string; check: (k: string | string[] | undefined) => boolean } | undefined;
  private fields: SecretFieldPaths | undefined;
  private readonly match = adminRouter();
  /** The OpenAPI description's text, made on first request (the registry is fixed for the server's life). */
  private openapi: string | undefined;

  constructor(private readonly host: AdminHost, private readonly listenOverride?: string) {
    this.allowed = allowList(host.config().admin?.allow ?? ['127.0.0.0/8']);
  }

  /** The admin key in force: `admin.key` (resolved when it is a reference) or a generated one. */
  private currentKey(): string | undefined {
    const configured = this.host.config().admin?.key;
    if (configured === undefined) return (this.generatedKey ??= this.host.generatedKey ?? generateAdminKey());
    if (!looksLikeReference(configured)) return configured;
    // fail closed: an admin key reference that cannot be resolved admits nobody
    return this.host.resolver.peek(parseReference(configured));
  }

  private keyOk(presented: string | string[] | undefined): boolean {
    const key = this.currentKey();
    if (key === undefined) return false;
    if (this.checker?.key !== key) this.checker = { key, check: keyChecker(key) };
    return this.checker.check(presented);
  }

  /** Start listening; prints a generated admin key once (stderr), never logs it. */
  async listen(): Promise<AddressInfo> {
    const cfg = this.host.config().admin;
    const spec = this.listenOverride ?? cfg?.listen ?? '127.0.0.1:9180';
    const { host: hostPart, port } = parseListen(spec, '127.0.0.1');
    // the proxy's client timeouts: a slow or idle client is cut off here as it is there. But a whole
    // request keeps a deadline (Node's 300 s, or the header timeout when longer): the proxy has none
    // because the upstream's send timeout bounds its bodies, and an Admin body goes to no upstream
    const timeouts = clientTimeouts(this.host.config().gateway.client_header_timeout);
    const options = { ...timeouts, requestTimeout: Math.max(ADMIN_REQUEST_TIMEOUT_MS, timeouts.headersTimeout!) };
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((err: Error) => {
        this.host.logger.error({ err: err.message }, 'admin request failed');
        if (!res.headersSent) send(res, 500, { error_msg: 'internal error' });
      });
    };
    let server: Server;
    const tls = cfg?.tls;
    if (tls === undefined) server = createServer(options, onRequest);
    else {
      const admin = new AdminTls(this.host);
      const first = admin.material(tls);
      // (the message names the settings, never a value)
      if ('issues' in first) throw new Error(first.issues.map((i) => `${i.path}: ${i.message}`).join('; '));
      const https = createHttpsServer({ ...options, ...TLS_SERVER_DEFAULTS, ...first.options, requestCert: tls.client_ca !== undefined, rejectUnauthorized: tls.client_ca !== undefined, handshakeTimeout: timeouts.headersTimeout }, onRequest);
      admin.serving(https, first);
      server = https;
    }
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, hostPart, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    // a workers-mode key comes from the primary, which prints it once
    if (cfg?.key === undefined && this.host.generatedKey === undefined) printGeneratedAdminKey(this.currentKey()!);
    this.host.logger.info({ listen: `${addr.address}:${addr.port}`, tls: tls === undefined ? false : tls.client_ca === undefined ? 'on' : 'on, client certificates required' }, 'gatehouse admin API listening');
    return addr;
  }

  get address(): AddressInfo | undefined {
    return this.server?.address() as AddressInfo | undefined;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.allowed(req.socket.remoteAddress ?? '')) return send(res, 403, { error_msg: 'IP address not allowed' });
    const url = new URL(req.url ?? '/', 'http://admin');
    if (url.pathname === '/metrics') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error_msg: 'method not allowed' });
      const text = await this.host.metrics.render();
      res.writeHead(200, { 'content-type': this.host.metrics.contentType });
      return void res.end(req.method === 'HEAD' ? undefined : text);
    }
    const prefix = ADMIN_PREFIXES.find((p) => url.pathname.startsWith(p));
    if (!prefix) return send(res, 404, { error_msg: 'not found' });
    if (!this.keyOk(req.headers['x-api-key'])) return send(res, 401, { error_msg: 'failed to check token' });
    const rest = url.pathname.slice(prefix.length);
    let segs: string[];
    try {
      segs = rest.split('/').filter((s) => s !== '').map(decodeURIComponent);
    } catch {
      return send(res, 400, { error_msg: 'the path has a malformed percent-encoding' });
    }
    try {
      const m = this.match(req.method ?? '', segs);
      if ('refusal' in m) {
        if (m.refusal.readsBody) await this.body(req, true);
        return send(res, m.refusal.status, { error_msg: m.refusal.message });
      }
      const { route, params } = m;
      if (route.action === 'refuse') return send(res, route.refusal!.status, { error_msg: route.refusal!.message });
      await this.actions[route.action]({ req, res, kind: route.kind, params, rest });
    } catch (err) {
      // a refusal thrown by a handler (the body, the id rules): its own status and message
      if (!(err instanceof AdminError)) throw err;
      if (err instanceof BodyTooLarge) return this.tooLarge(req, res, err.message);
      send(res, err.status, { error_msg: err.message });
    }
  }

  /** The handler of each action of the route table (routes.ts). */
  private readonly actions: Record<Exclude<AdminAction, 'refuse'>, (c: Call) => Promise<void> | void> = {
    openapi: ({ res }) => {
      const text = (this.openapi ??= JSON.stringify(adminOpenApi(this.host.registry)));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    },
    plugins: ({ res }) => {
      const list = [...this.host.registry.plugins.values()].map(describePlugin);
      send(res, 200, { total: list.length, list });
    },
    plugin: ({ res, params }) => {
      const one = this.host.registry.plugins.get(params.name!);
      if (!one) return send(res, 404, { error_msg: `plugin "${params.name}" not found` });
      send(res, 200, describePlugin(one));
    },
    list: ({ res, kind }) => {
      const items = this.items(kind);
      send(res, 200, { total: items.length, list: items.map(([k, v]) => ({ key: apisixKey(kind, k), value: v })) });
    },
    get: ({ res, kind, params }) => {
      const id = pathId(kind, params)!;
      const found = this.item(kind, id);
      if (!found) return send(res, 404, { error_msg: `${kind.slice(0, -1)} "${id}" not found` });
      send(res, 200, { key: apisixKey(kind, id), value: found[1] });
    },
    refresh: async ({ res, params }) => {
      const id = pathId('secrets', params)!;
      if (!this.host.config().secrets.some((s) => s.id === id)) return send(res, 404, { error_msg: `secret resource "${id}" not found` });
      const r = await this.host.refreshSecret(id);
      send(res, 200, { key: apisixKey('secrets', id), refreshed: r.refreshed, failed: r.failed, published: r.published });
    },
    put: async ({ req, res, kind, params }) => {
      const body = (await this.body(req, true)) as Record<string, unknown>;
      const id = writeTarget(kind, 'PUT', pathId(kind, params), body);
      let created = false;
      const limit = this.limitOf(kind);
      const result = await this.host.change((doc, stored) => {
        created = putResource(doc, kind, id, body, { writeOnly: this.writeOnly(kind, id), limit, stored }).created;
      }, limit === undefined ? undefined : { kind, limit });
      this.answerWrite(res, result, kind, id, created ? 201 : 200);
    },
    post: async ({ req, res, kind }) => {
      const body = (await this.body(req, true)) as Record<string, unknown>;
      const id = postedId(body);
      const limit = this.limitOf(kind);
      const result = await this.host.change((doc, stored) => void putResource(doc, kind, id, body, { writeOnly: this.writeOnly(kind, id), limit, stored }), limit === undefined ? undefined : { kind, limit });
      this.answerWrite(res, result, kind, id, 201);
    },
    patch: async ({ req, res, kind, params }) => {
      const body = (await this.body(req, true)) as Record<string, unknown>;
      const id = writeTarget(kind, 'PATCH', pathId(kind, params), body);
      const result = await this.host.change((doc) => patchResource(doc, kind, id, body, this.writeOnly(kind, id)));
      this.answerWrite(res, result, kind, id, 200);
    },
    subpatch: async ({ req, res, kind, params, rest }) => {
      const value = await this.body(req, false);
      const id = pathId(kind, params)!;
      // the raw segments after the id, empty ones kept: "plugins//x" is refused, not read as "plugins/x";
      // their shape is checked inside the change, after the store's own refusal (403 first, as for every write)
      const raw = rest.split('/');
      let i = 0;
      for (let seen = 0; seen < (kind === 'secrets' ? 3 : 2); i++) if (raw[i] !== '') seen++;
      const sub = raw.slice(i).map(decodeURIComponent);
      const result = await this.host.change((doc) => subPatchResource(doc, kind, id, sub, value, this.writeOnly(kind, id)));
      this.answerWrite(res, result, kind, id, 200);
    },
    delete: async ({ res, kind, params }) => {
      const id = writeTarget(kind, 'DELETE', pathId(kind, params), undefined);
      const result = await this.host.change((doc) => deleteResource(doc, kind, id));
      this.answerWrite(res, result, kind, id, 'deleted');
    },
  };

  /**
   * The parsed JSON body; throws the 413 or 400 to answer.
   * @param object whether it must be a JSON object (every write but a sub-path PATCH, whose body is one attribute's value)
   */
  private async body(req: IncomingMessage, object: boolean): Promise<unknown> {
    const declared = Number(req.headers['content-length']);
    if (declared > MAX_BODY) throw new BodyTooLarge();
    const raw = await readUpTo(req, MAX_BODY);
    if (raw === null) throw new BodyTooLarge();
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new AdminError(400, 'the body is not valid JSON');
    }
    if (object && (body === null || typeof body !== 'object' || Array.isArray(body))) throw new AdminError(400, 'the body must be a JSON object');
    return body;
  }

  /** The answer to a write: the change's refusal, or the resource as now served (DELETE: which one went). */
  private answerWrite(res: ServerResponse, result: ChangeResult, kind: string, id: string, status: number | 'deleted'): void {
    if (!result.ok) return send(res, result.status, { error_msg: result.message, ...(result.issues.length ? { errors: result.issues.map((i) => `${i.path}: ${i.message}`) } : {}) });
    const key = apisixKey(kind, id);
    if (status === 'deleted') return send(res, 200, { deleted: '1', key });
    const value = this.item(kind, id)?.[1];
    send(res, status, { key, value });
  }

  /** 413 with `Connection: close`, then a lingering close: the client sees the answer, not a reset. */
  private tooLarge(req: IncomingMessage, res: ServerResponse, message: string): void {
    const text = JSON.stringify({ error_msg: message });
    lingerOnClose(req, res);
    res.writeHead(413, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' });
    res.end(text);
  }

  /** writeOnly paths of a resource (by its plugins or provider), for masking and "******" round trips. */
  private writeOnly(kind: string, id: string): WriteOnlyPaths {
    return (item) => {
      const o = { ...((item ?? {}) as Record<string, unknown>) };
      if (kind === 'secrets') o.id = id;
      return (this.fields ??= secretFieldPaths(this.host.registry))(kind as 'routes', o);
    };
  }

  /** The kind's `admin.limits` entry, read when the change runs. */
  private limitOf(kind: string): number | undefined {
    return this.host.config().admin?.limits?.[kind as keyof AdminLimits];
  }

  /** [id, redacted value] pairs of one resource kind from the live config. */
  private items(kind: string): Array<[string, unknown]> {
    const list = this.listOf(kind);
    return list.map((x) => [this.idOf(kind, x), this.redacted(kind, x)]);
  }

  /** One resource of the live config, redacted (one of 100 000 consumers is found by id, not every one looked at or redacted). */
  private item(kind: string, id: string): [string, unknown] | undefined {
    const found = this.host.resource(kind, id);
    return found === undefined ? undefined : [id, this.redacted(kind, found)];
  }

  private listOf(kind: string): readonly unknown[] {
    const c = this.host.config();
    return kind === 'routes' || kind === 'upstreams' || kind === 'consumers' || kind === 'secrets' || kind === 'ssls' ? c[kind] : [];
  }

  private idOf(kind: string, x: unknown): string {
    return kind === 'consumers' ? (x as { username: string }).username : (x as { id: string }).id;
  }

  private redacted(kind: string, x: any): unknown {
    switch (kind) {
      case 'routes':
        return x.upstream?.tls === undefined ? { ...x, plugins: this.redactPlugins(x.plugins, false) } : { ...x, plugins: this.redactPlugins(x.plugins, false), upstream: redact(x.upstream, UPSTREAM_SECRET_PATHS) };
      case 'upstreams':
        return redact(x, UPSTREAM_SECRET_PATHS);
      case 'consumers':
        return { ...x, plugins: this.redactPlugins(x.plugins, true) };
      case 'secrets': {
        const manager = x.id.slice(0, x.id.indexOf('/'));
        return redact(x, writeOnlyPaths(this.host.registry.providers.get(manager)?.schema));
      }
      case 'ssls':
        return redact(x, SSL_SECRET_PATHS);
      default:
        return x;
    }
  }

  private redactPlugins(plugins: Readonly<Record<string, unknown>>, consumer: boolean): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, conf] of Object.entries(plugins)) {
      const p = this.host.registry.plugins.get(name);
      out[name] = redact(conf, writeOnlyPaths(consumer ? p?.consumerSchema : p?.schema));
    }
    return out;
  }
}

/** The Admin API's TLS material as resolved now: what a secure context is made of, and the text it was made from. */
type TlsMaterial = { options: { cert: string; key: string; ca?: string }; text: string } | { issues: ConfigIssue[]; text: string };

/**
 * The Admin API's certificate, kept current: before each new connection's handshake, the values of
 * `admin.tls` as the live config and the secret cache hold them now (a literal PEM, or a
 * reference's current value); when they changed and the pair matches, the server's secure context
 * is replaced (`setSecureContext`: new handshakes get it, established connections keep theirs);
 * when it does not, the previous context keeps serving and the refusal is logged once, by path.
 */
class AdminTls {
  /** The text of the material serving, and of the last refused (logged once). */
  private applied = '';
  private refused = '';

  constructor(private readonly host: AdminHost) {}

  /** The resolved PEMs of `tls`, or the issues that keep them from serving (paths only, never a value). */
  material(tls: AdminTlsSettings): TlsMaterial {
    const missing: ConfigIssue[] = [];
    const value = (setting: string, v: string): string | undefined => {
      if (!looksLikeReference(v)) return v;
      const got = this.host.resolver.peek(parseReference(v));
      if (got === undefined) missing.push({ path: `admin.tls.${setting}`, message: `its reference (${v}) has no value now` });
      return got;
    };
    const cert = value('cert', tls.cert);
    const key = value('key', tls.key);
    const ca = tls.client_ca === undefined ? undefined : value('client_ca', tls.client_ca);
    const text = `${cert}\n${key}\n${ca}`;
    if (missing.length) return { issues: missing, text };
    const issues = adminTlsIssues({ cert: cert!, key: key!, client_ca: ca }, (v) => v);
    if (issues.length) return { issues, text };
    return { options: { cert: cert!, key: key!, ...(ca === undefined ? {} : { ca }) }, text };
  }

  /** `server` serves `first`: from now on, each connection first brings its context up to date. */
  serving(server: HttpsServer, first: TlsMaterial): void {
    this.applied = first.text;
    // before Node's own listener, which starts the handshake with the server's context
    server.prependListener('connection', () => {
      const tls = this.host.config().admin?.tls;
      if (tls !== undefined) this.update(server, tls);
    });
  }

  private update(server: HttpsServer, tls: AdminTlsSettings): void {
    const m = this.material(tls);
    if (m.text === this.applied || m.text === this.refused) return;
    if ('issues' in m) {
      this.refused = m.text;
      this.host.logger.error({ errors: m.issues.map((i) => `${i.path}: ${i.message}`) }, 'admin.tls: the new certificate is refused; the Admin API keeps serving the previous one');
      return;
    }
    try {
      server.setSecureContext({ ...TLS_SERVER_DEFAULTS, ...m.options });
    } catch {
      // (OpenSSL's message is not repeated: it could quote what it read)
      this.refused = m.text;
      this.host.logger.error({ errors: ['admin.tls: the certificate and key could not be loaded into a TLS context'] }, 'admin.tls: the new certificate is refused; the Admin API keeps serving the previous one');
      return;
    }
    this.applied = m.text;
    this.refused = '';
    this.host.logger.info({}, 'admin.tls: new connections get the new certificate');
  }
}

/**
 * The whole body, or null as soon as it grows past `max` (reading stops there; the caller answers
 * 413 and the lingering close drops the rest). Not `for await`: leaving that loop early destroys
 * the request, and with it the socket, before the answer is written.
 */
function readUpTo(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > max) {
        done();
        resolve(null);
      } else chunks.push(c);
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    function done(): void {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
