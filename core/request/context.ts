// The per-request object: one per request, methods on the prototype (no per-request closures).
// It has two layers. `Context` is what plugin hooks get: RequestContext as the SDK declares it
// (its documentation is there), plus the changes plugins asked for, kept until the core applies
// them. `RequestState` extends it with what only the core reads and writes: the matched route, the
// snapshot, the body limit, how far the response got, the proxy exchange. Hooks are typed with
// RequestContext, so none of the core's state shows in a plugin's types; and the two layers being
// one object, the split costs the request path no allocation.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Consumer, RequestContext, RouteInfo } from '../contracts';
import type { CompiledRoute, Snapshot } from './snapshot';
import { clientFromForwardedFor } from './forwarded';
import { tlsFactsOf } from './tls-facts';

const EMPTY_PARAMS: Readonly<Record<string, string | undefined>> = Object.freeze({});
const NO_ROUTE: RouteInfo = Object.freeze({ id: '', uri: '' });

/** RequestContext's data members (but the lazy `vars`), writable here: this file sets them. */
type ContextFields = { -readonly [K in keyof RequestContext as RequestContext[K] extends (...args: never[]) => unknown ? never : K extends 'vars' ? never : K]: RequestContext[K] };

// Declaration merging: the class takes its fields from RequestContext instead of listing them a
// second time. The compiler does not check that they are initialised: the constructor sets every
// one (a data member added to RequestContext is set there too), always in the same order, so every
// request has one hidden class.
export interface Context extends ContextFields {}

export class Context implements RequestContext {
  /** Header changes for the upstream request, applied when it is built. */
  protected upstreamHeaderChanges: Array<[string, string | undefined]> | null = null;
  /** Response header changes made before the response is known. */
  protected pendingResponseHeaders: Array<[string, string | string[] | undefined]> | null = null;
  /** True once response headers are in `responseHeaders` (response phase). */
  protected headersReady = false;
  /** Body of a local (plugin or core) response. */
  protected localBody: string | Buffer | undefined = undefined;
  private _vars: Map<string, unknown> | undefined = undefined;

  constructor(req: IncomingMessage, path: string, query: string, host: string, clientIp: string, params: Record<string, string | undefined> | undefined, route: RouteInfo, startTime: number) {
    this.req = req;
    this.method = req.method ?? 'GET';
    this.path = path;
    this.query = query;
    this.host = host;
    this.clientIp = clientIp;
    this.params = params ?? EMPTY_PARAMS;
    this.route = route;
    this.headers = req.headers;
    this.responded = false;
    this.status = 0;
    this.responseHeaders = {};
    this.upstreamNode = undefined;
    this.startTime = startTime;
    this.consumer = undefined;
    this.tls = tlsFactsOf(req.socket);
  }

  get vars(): Map<string, unknown> {
    return (this._vars ??= new Map());
  }

  setUpstreamHeader(name: string, value: string | undefined): void {
    (this.upstreamHeaderChanges ??= []).push([name.toLowerCase(), value]);
  }

  /** No snapshot at this layer: RequestState answers from the request's. */
  consumerIndex<I = unknown>(_plugin: string): I | undefined {
    return undefined;
  }

  setResponseHeader(name: string, value: string | string[] | undefined): void {
    const n = name.toLowerCase();
    if (this.headersReady) {
      if (value === undefined) delete this.responseHeaders[n];
      else this.responseHeaders[n] = value;
    } else (this.pendingResponseHeaders ??= []).push([n, value]);
  }

  setConsumer(consumer: Consumer): void {
    this.consumer = consumer;
    (this.upstreamHeaderChanges ??= []).push(['x-consumer-username', consumer.username]);
  }

  respond(status: number, body?: string | Buffer | object, headers?: OutgoingHttpHeaders): void {
    if (this.responded) return;
    this.responded = true;
    this.status = status;
    const h: OutgoingHttpHeaders = {};
    if (headers) for (const k of Object.keys(headers)) h[k.toLowerCase()] = headers[k];
    if (body === undefined || body === null) this.localBody = undefined;
    else if (typeof body === 'string' || Buffer.isBuffer(body)) this.localBody = body;
    else {
      this.localBody = JSON.stringify(body);
      if (h['content-type'] === undefined) h['content-type'] = 'application/json';
    }
    if (h['content-type'] === undefined && this.localBody !== undefined) h['content-type'] = 'text/plain; charset=utf-8';
    this.responseHeaders = h;
  }
}

/**
 * The core's per-request state, written by the data plane and the proxy only; plugins get the same
 * object as a RequestContext. The core sets the fields a hook reads only through the methods below.
 */
export class RequestState extends Context {
  readonly res: ServerResponse;
  /** The snapshot the request started on: counted in when it starts, out by the log phase. */
  readonly snapshot: Snapshot;
  /** The matched route, if any (none: the request is answered 400 or 404). */
  readonly compiled: CompiledRoute | undefined;
  /** This request's body limit in bytes (0: none): the route's, else `gateway.client_max_body_size`. */
  readonly bodyLimit: number;
  /** A local response is being sent (set once, by the data plane). */
  sent = false;
  /** The client went away before the response finished. */
  aborted = false;
  /** The upstream failed after the head went to the client, and the gateway cut the response short. */
  upstreamCut = false;
  /** The client sent `Expect: 100-continue` and has not been sent `100 Continue` yet. */
  expectContinue = false;
  /** The proxy's exchange once the request went upstream: the log phase aborts it if the client left. */
  exchange: { abort(): void } | undefined = undefined;
  /** The connection's peer is one of `gateway.trusted_proxies`: its forwarding headers are believed. */
  readonly fromTrustedProxy: boolean;
  /** The request came over HTTP/2 (`req` and `res` are Node's HTTP/2 compatibility objects: h2.ts). */
  readonly h2: boolean;

  constructor(req: IncomingMessage, res: ServerResponse, snapshot: Snapshot, compiled: CompiledRoute | undefined, path: string, query: string, host: string, params: Record<string, string | undefined> | undefined, startTime: number) {
    const peer = req.socket.remoteAddress ?? '';
    const trusted = snapshot.trustedProxies;
    const fromTrustedProxy = trusted !== null && trusted(peer);
    super(req, path, query, host, fromTrustedProxy ? clientFromForwardedFor(req.headers['x-forwarded-for'], peer, trusted) : peer, params, compiled === undefined ? NO_ROUTE : compiled.info, startTime);
    this.fromTrustedProxy = fromTrustedProxy;
    this.h2 = req.httpVersionMajor === 2;
    this.res = res;
    this.snapshot = snapshot;
    this.compiled = compiled;
    this.bodyLimit = compiled === undefined ? snapshot.config.gateway.client_max_body_size : compiled.bodyLimit;
  }

  override consumerIndex<I = unknown>(plugin: string): I | undefined {
    return this.snapshot.indexes.get(plugin) as I | undefined;
  }

  /** The body of the local response `respond` set, if any. */
  get responseBody(): string | Buffer | undefined {
    return this.localBody;
  }

  /** Answer with the core's own response instead of whatever a plugin responded. */
  replaceResponse(status: number, body: string, headers: OutgoingHttpHeaders): void {
    this.responded = false;
    this.respond(status, body, headers);
  }

  /** The upstream's response head arrived from `node` ("host:port"); hop-by-hop headers already dropped. */
  upstreamResponded(status: number, headers: OutgoingHttpHeaders, node: string): void {
    this.status = status;
    this.responseHeaders = headers;
    this.upstreamNode = node;
  }

  /** Apply the hooks' upstream header changes, in call order, to the headers sent upstream. */
  applyUpstreamHeaderChanges(out: Record<string, string | string[]>): void {
    const changes = this.upstreamHeaderChanges;
    if (changes === null) return;
    for (const [n, v] of changes) {
      if (v === undefined) delete out[n];
      else out[n] = v;
    }
  }

  /** Move pending header changes into `responseHeaders` and mark them ready (the response phase starts). */
  applyPendingResponseHeaders(): void {
    this.headersReady = true;
    const p = this.pendingResponseHeaders;
    if (p === null) return;
    for (const [n, v] of p) {
      if (v === undefined) delete this.responseHeaders[n];
      else this.responseHeaders[n] = v;
    }
    this.pendingResponseHeaders = null;
  }
}
