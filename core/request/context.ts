// The per-request context: one object per request, methods on the prototype (no per-request
// closures), handed to every plugin hook.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Consumer, RequestContext, RouteInfo } from '../contracts';
import type { CompiledRoute, Snapshot } from './snapshot';

const EMPTY_PARAMS: Readonly<Record<string, string | undefined>> = Object.freeze({});

export class Context implements RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  method: string;
  path: string;
  query: string;
  readonly host: string;
  readonly clientIp: string;
  readonly params: Readonly<Record<string, string | undefined>>;
  readonly headers: IncomingHttpHeaders;
  readonly startTime: number;
  readonly snapshot: Snapshot;
  readonly compiled: CompiledRoute | undefined;
  status = 0;
  responded = false;
  responseHeaders: OutgoingHttpHeaders = {};
  upstreamNode: string | undefined = undefined;
  /** Body of a local (plugin or core) response. */
  localBody: string | Buffer | undefined = undefined;
  /** Header changes for the upstream request, applied when it is built. */
  upstreamHeaderChanges: Array<[string, string | undefined]> | null = null;
  /** Response header changes made before the response is known. */
  pendingResponseHeaders: Array<[string, string | string[] | undefined]> | null = null;
  /** True once response headers are in `responseHeaders` (response phase). */
  headersReady = false;
  /** A local response is being sent (set once, by the data plane). */
  sent = false;
  /** The client went away before the response finished. */
  aborted = false;
  /** The upstream failed after the head went to the client, and the gateway cut the response short. */
  upstreamCut = false;
  /** Set when the upstream request must be aborted if the client goes away. */
  abortUpstream: ((reason: Error) => void) | undefined = undefined;
  consumer: Consumer | undefined = undefined;
  /** This request's body limit in bytes (0: none): the route's, else `gateway.client_max_body_size`. */
  readonly bodyLimit: number;
  private _vars: Map<string, unknown> | undefined = undefined;

  constructor(req: IncomingMessage, res: ServerResponse, snapshot: Snapshot, compiled: CompiledRoute | undefined, path: string, query: string, host: string, params: Record<string, string | undefined> | undefined, startTime: number) {
    this.req = req;
    this.res = res;
    this.method = req.method ?? 'GET';
    this.path = path;
    this.query = query;
    this.host = host;
    this.clientIp = req.socket.remoteAddress ?? '';
    this.params = params ?? EMPTY_PARAMS;
    this.headers = req.headers;
    this.snapshot = snapshot;
    this.compiled = compiled;
    this.bodyLimit = compiled === undefined ? snapshot.config.gateway.client_max_body_size : compiled.bodyLimit;
    this.startTime = startTime;
  }

  get route(): RouteInfo {
    return this.compiled?.info ?? NO_ROUTE;
  }

  get vars(): Map<string, unknown> {
    return (this._vars ??= new Map());
  }

  setUpstreamHeader(name: string, value: string | undefined): void {
    (this.upstreamHeaderChanges ??= []).push([name.toLowerCase(), value]);
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

  /** Move pending header changes into `responseHeaders` and mark them ready. */
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

const NO_ROUTE: RouteInfo = Object.freeze({ id: '', uri: '' });
