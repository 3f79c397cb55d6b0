// The request path: one pointer read of the current snapshot, route lookup, the route's pre-built
// hook chain, then a local response or the proxy. Nothing here parses config or builds lookup
// tables; that all happened when the snapshot was compiled.
import 'reflect-metadata';
import { ServerResponse, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { inject, injectable } from 'tsyringe';
import type { Clock, Counter, Histogram, Logger, Metrics } from '../contracts';
import { CLOCK, LOGGER, METRICS } from '../tokens';
import { RequestState } from './context';
import { discardRest, lingerOnClose } from './linger';
import { Exchange, type ProxyHost } from './proxy';
import type { UpstreamNode } from './balancer';
import type { Snapshot } from './snapshot';
import { hasMalformedEscape, hostForMatching } from './router';
import { endUnreadBody, streamOf, withoutConnectionHeaders } from './h2';

const STATUS_BODIES: Record<number, string> = {
  400: '{"message":"400 Bad Request"}',
  404: '{"message":"404 Route Not Found"}',
  408: '{"message":"408 Request Timeout"}',
  413: '{"message":"413 Request Entity Too Large"}',
  500: '{"message":"500 Internal Server Error"}',
  502: '{"message":"502 Bad Gateway"}',
  503: '{"message":"503 Service Unavailable"}',
  504: '{"message":"504 Gateway Timeout"}',
};
const JSON_HEADERS = 'application/json';
const SECRET_UNAVAILABLE = '{"message":"secret unavailable"}';

/**
 * The proxy server's response class (`createServer({ ServerResponse: GatewayResponse })`): Node's
 * response with one declared link to its request's state, which the `close` listener (one function
 * for all the plane's responses) follows to run the log phase, with no closure per request.
 */
export class GatewayResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  state: RequestState | undefined = undefined;
}

/** Serves requests from whatever snapshot `current` points to when each request starts. */
@injectable()
export class DataPlane implements ProxyHost {
  /** The live snapshot: installed by the gateway before it listens, swapped atomically on reload. */
  current!: Snapshot;
  /** Set while draining: responses ask clients to close their connections. */
  draining = false;
  private readonly logger: Logger;
  /** One JSON line per request, when the request's snapshot has `gateway.access_log`. */
  private readonly accessLogger: Logger;
  private readonly now: () => number;
  private readonly requests: Counter<'route' | 'status'>;
  private readonly latency: Histogram<'route'>;
  private readonly upstreamErrors: Counter<'route' | 'node' | 'code'>;
  /** The `close` listener of every response (`this` is the response): the log phase. */
  private readonly onResponseClose = closeListener(this);

  constructor(@inject(LOGGER) logger: Logger, @inject(METRICS) metrics: Metrics, @inject(CLOCK) clock: Clock) {
    this.logger = logger;
    this.accessLogger = logger.child({ type: 'access' });
    this.now = () => clock.now();
    this.requests = metrics.counter('http_requests_total', 'HTTP requests by route and status', ['route', 'status']);
    this.latency = metrics.histogram('http_request_duration_seconds', 'Request latency by route', ['route'], [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
    this.upstreamErrors = metrics.counter('upstream_errors_total', 'Failed upstream attempts', ['route', 'node', 'code']);
  }

  /** The `request` listener of the proxy server. */
  readonly handle = (req: IncomingMessage, res: GatewayResponse): void => {
    this.serve(req, res, false);
  };

  /**
   * The `checkContinue` listener: `Expect: 100-continue` is answered with `100 Continue` only
   * when the declared body is within the request's limit (the matched route's, else
   * `gateway.client_max_body_size`), so a client told 413 never sends the body at all. The
   * route is matched first: its limit may be smaller or larger than the gateway's. And only once
   * the request hooks (rewrite, access, beforeProxy) have let the request through to the upstream:
   * a client refused by key-auth, or answered by any plugin, is not invited to upload its body.
   */
  readonly handleContinue = (req: IncomingMessage, res: GatewayResponse): void => {
    this.serve(req, res, true);
  };

  private serve(req: IncomingMessage, res: GatewayResponse, expectContinue: boolean): void {
    const snap = this.current;
    snap.inflight++;
    if (!snap.config.gateway.underscores_in_headers) dropUnderscoreHeaders(req.headers);
    const url = req.url ?? '/';
    const qi = url.indexOf('?');
    const path = normalizePath(qi === -1 ? url : url.slice(0, qi));
    const query = qi === -1 ? '' : url.slice(qi + 1);
    // undefined: a Host nginx refuses (answered 400 below)
    const host = hostForMatching(req.headers.host);
    const m = host !== undefined && path.charCodeAt(0) === 47 /* / */ ? snap.router.find(req.method ?? 'GET', host, path) : null;
    const ctx = new RequestState(req, res, snap, m === null ? undefined : m.route, path, query, host ?? '', m === null ? undefined : m.params, this.now());
    res.state = ctx;
    res.once('close', this.onResponseClose);
    const max = ctx.bodyLimit;
    if (max !== 0) {
      // a declared length over the limit is refused before any plugin runs and before the body is read (as nginx)
      const cl = req.headers['content-length'];
      if (cl !== undefined && Number(cl) > max) {
        this.rejectBody(ctx);
        return;
      }
    }
    ctx.expectContinue = expectContinue;
    if (m === null) {
      // an invalid Host, a path above the root ("" from normalizePath) or with a malformed escape is 400, as nginx answers
      const status = host === undefined || path.charCodeAt(0) !== 47 || hasMalformedEscape(path) ? 400 : 404;
      ctx.respond(status, STATUS_BODIES[status], { 'content-type': JSON_HEADERS });
      this.sendLocal(ctx);
      return;
    }
    if (m.route.unavailable !== undefined) {
      // fail closed: a secret this route's plugins need is unavailable (logged when it failed)
      ctx.respond(503, SECRET_UNAVAILABLE, { 'content-type': JSON_HEADERS });
      this.sendLocal(ctx);
      return;
    }
    const hooks = m.route.requestHooks;
    if (hooks.length === 0) {
      this.afterRequestHooks(ctx);
      return;
    }
    const r = this.runRequestHooks(ctx, 0);
    if (r !== undefined) r.then(() => this.afterRequestHooks(ctx), (err) => this.hookFailed(ctx, err, 'request'));
    else if (!ctx.aborted) this.afterRequestHooks(ctx);
  }

  /** Runs request hooks from index i; returns a promise only if a hook was asynchronous. */
  private runRequestHooks(ctx: RequestState, i: number): Promise<void> | undefined {
    const route = ctx.compiled!;
    const hooks = route.requestHooks;
    for (; i < hooks.length; i++) {
      let r;
      try {
        r = hooks[i](ctx);
      } catch (err) {
        this.hookFailed(ctx, err, route.requestHookNames[i]);
        return undefined;
      }
      if (r !== undefined && typeof (r as Promise<void>).then === 'function') {
        const next = i + 1;
        return (r as Promise<void>).then(() => (ctx.responded || ctx.aborted ? undefined : this.runRequestHooks(ctx, next)));
      }
      if (ctx.responded) return undefined;
    }
    return undefined;
  }

  private afterRequestHooks(ctx: RequestState): void {
    if (ctx.aborted || ctx.sent) return;
    if (ctx.responded) {
      this.sendLocal(ctx);
      return;
    }
    const up = ctx.snapshot.upstreamOf(ctx.compiled!);
    if (up === undefined) {
      this.respondError(ctx, 503);
      return;
    }
    if (up.unavailable !== undefined) {
      // fail closed: a secret the upstream's TLS needs is unavailable (logged when it failed)
      ctx.respond(503, SECRET_UNAVAILABLE, { 'content-type': JSON_HEADERS });
      this.sendLocal(ctx);
      return;
    }
    if (ctx.expectContinue) {
      ctx.expectContinue = false;
      ctx.res.writeContinue();
    }
    const ex = new Exchange(ctx, up, this, this.now);
    ctx.exchange = ex;
    // HTTP/2: the upstream request starts after the frames read with this stream's HEADERS are
    // handled, so a stream the client reset right away (rapid reset) never reaches the upstream
    if (ctx.h2) setImmediate(startExchange, ctx, ex);
    else ex.start();
  }

  private hookFailed(ctx: RequestState, err: unknown, plugin: string): void {
    this.logger.error({ route: ctx.route.id, plugin, err: errorSummary(err) }, 'plugin hook failed');
    if (ctx.sent || ctx.aborted) return;
    ctx.replaceResponse(500, STATUS_BODIES[500], { 'content-type': JSON_HEADERS });
    this.sendLocal(ctx);
  }

  /** Send `ctx`'s local response after the response hooks. */
  sendLocal(ctx: RequestState): void {
    ctx.sent = true;
    this.startResponse(ctx, () => {
      if (ctx.aborted || ctx.res.headersSent) return;
      const body = ctx.responseBody;
      const h = ctx.responseHeaders;
      const req = ctx.req;
      if (ctx.h2) {
        // HTTP/2: the stream ends once answered, its unread body refused (the session goes on)
        if (!req.readableEnded && req.readableFlowing === null) endUnreadBody(req, ctx.res);
        withoutConnectionHeaders(h);
      } else if (!req.complete && req.readableFlowing === null && h.connection !== 'close') {
        if (ctx.expectContinue) {
          // answered without `100 Continue`: the client may never send the body (RFC 9110
          // §10.1.1), so the connection cannot wait for it; closed, lingering in case it does
          h.connection = 'close';
          lingerOnClose(req, ctx.res);
        } else {
          // drop the unread body to keep the connection (Node would, however long it is and
          // however long it takes): with a limit, at most that much (a 413 closes the connection
          // instead: see rejectBody), and a client that goes quiet for client_body_timeout is cut
          discardRest(req, ctx.bodyLimit, 0, { ms: ctx.snapshot.config.gateway.client_body_timeout * 1000, now: this.now });
        }
      }
      h['content-length'] = body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length;
      ctx.res.writeHead(ctx.status, h);
      ctx.res.end(body);
    });
  }

  startResponse(ctx: RequestState, write: () => void): void {
    ctx.applyPendingResponseHeaders();
    if (this.draining && !ctx.h2) ctx.responseHeaders.connection = 'close';
    const route = ctx.compiled;
    if (route === undefined || route.responseHooks.length === 0) {
      write();
      return;
    }
    const hooks = route.responseHooks;
    for (let i = 0; i < hooks.length; i++) {
      let r;
      try {
        r = hooks[i](ctx);
      } catch (err) {
        this.logger.error({ route: route.id, plugin: route.responseHookNames[i], err: errorSummary(err) }, 'plugin response hook failed');
        continue;
      }
      if (r !== undefined && typeof (r as Promise<void>).then === 'function') {
        const rest = hooks.slice(i + 1);
        (r as Promise<void>)
          .then(async () => {
            for (const h of rest) await h(ctx);
          })
          .catch((err) => this.logger.error({ route: route.id, err: errorSummary(err) }, 'plugin response hook failed'))
          .then(write);
        return;
      }
    }
    write();
  }

  /**
   * 413: the body is over its limit, `ctx.bodyLimit` (declared, or counted while streaming); 408:
   * the client stopped sending it (`gateway.client_body_timeout`, or the upstream's `timeout.send`
   * while it held an upstream connection). The connection is closed after the answer, with the
   * rest of the body unread but for a bounded lingering close.
   */
  rejectBody(ctx: RequestState, status: 408 | 413 = 413): void {
    if (ctx.aborted || ctx.sent) return;
    if (ctx.h2) {
      // HTTP/2: the stream alone is ended (sendLocal), not the session
      ctx.replaceResponse(status, STATUS_BODIES[status], { 'content-type': JSON_HEADERS });
      if (!ctx.req.readableEnded) endUnreadBody(ctx.req, ctx.res);
    } else {
      ctx.replaceResponse(status, STATUS_BODIES[status], { 'content-type': JSON_HEADERS, connection: 'close' });
      if (!ctx.req.complete) lingerOnClose(ctx.req, ctx.res);
    }
    this.sendLocal(ctx);
  }

  respondError(ctx: RequestState, status: 502 | 503 | 504): void {
    if (ctx.aborted || ctx.sent) return;
    ctx.replaceResponse(status, STATUS_BODIES[status], { 'content-type': JSON_HEADERS });
    this.sendLocal(ctx);
  }

  upstreamError(ctx: RequestState, node: UpstreamNode, code: string, willRetry: boolean, upstreamId: string): void {
    this.upstreamErrors.inc({ route: ctx.route.id, node: node.key, code });
    this.logger.warn({ route: ctx.route.id, upstream: node.key, upstream_id: upstreamId, code, retry: willRetry }, 'upstream request failed');
  }

  /** Log phase: runs once per request when the response is finished or the client left. */
  finish(ctx: RequestState): void {
    const res = ctx.res;
    if (!res.writableFinished) {
      ctx.aborted = true;
      const ex = ctx.exchange;
      if (ex !== undefined) ex.abort();
    }
    const route = ctx.compiled;
    if (route !== undefined) {
      const logs = route.logHooks;
      for (let i = 0; i < logs.length; i++) {
        try {
          logs[i](ctx);
        } catch (err) {
          this.logger.error({ route: route.id, plugin: route.logHookNames[i], err: errorSummary(err) }, 'plugin log hook failed');
        }
      }
    }
    // 499 as nginx: client closed request; a response the upstream cut short keeps the status sent
    const status = ctx.aborted && !ctx.upstreamCut ? 499 : ctx.status;
    const seconds = (this.now() - ctx.startTime) / 1000;
    const routeId = ctx.route.id;
    this.requests.inc({ route: routeId, status });
    this.latency.observe({ route: routeId }, seconds);
    if (ctx.snapshot.config.gateway.access_log) {
      // the path only: query strings may carry credentials (?apikey=)
      this.accessLogger.info({ route: routeId || null, method: ctx.method, path: ctx.path, status, latency_ms: Math.round(seconds * 1e6) / 1e3, upstream: ctx.upstreamNode ?? null, consumer: ctx.consumer?.username ?? null, client: ctx.clientIp, request_id: (ctx.vars.get('request_id') as string | undefined) ?? null });
    }
    ctx.snapshot.done();
  }
}

/**
 * Forget the request headers whose names contain `_`, as nginx does by default
 * (`underscores_in_headers off`): neither plugins nor the upstream see them. Many frameworks fold
 * `_` and `-` together (CGI's HTTP_X_CONSUMER_USERNAME), so `X_Consumer_Username` would stand
 * beside, or in for, the X-Consumer-Username the gateway sets. The request itself goes on.
 */
function dropUnderscoreHeaders(h: IncomingHttpHeaders): void {
  for (const k in h) if (k.indexOf('_') !== -1) delete h[k];
}

/** Anything that can hide a dot-segment or an extra separator: "/.", "%2e", "%2f", "%5c", "\\", "//". */
const SUSPECT = /\/\.|%2[ef]|%5c|\\|\/\//i;

/**
 * The path the gateway routes on and forwards, as nginx does: "." and ".." segments removed
 * (also when written %2e, or around %2f / backslash separators), repeated slashes merged. So
 * `/public/../private/x` is routed — and checked by the private route's plugins — as
 * `/private/x`, and an upstream that normalises paths itself sees the same path the gateway
 * matched. A path that climbs above the root is refused (returned as "", answered 400).
 * Other percent-encoded octets are left as they are.
 */
export function normalizePath(path: string): string {
  if (path.charCodeAt(0) !== 47 || !SUSPECT.test(path)) return path;
  const segs = path.replace(/%2e/gi, '.').replace(/%2f|%5c|\\/gi, '/').split('/');
  const out: string[] = [];
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i];
    const last = i === segs.length - 1;
    if (s === '' && !last) continue;
    // a last "." or ".." leaves the directory: "/a/." is "/a/" (RFC 3986 5.2.4), as "/a/b/.." is
    if (s === '.') {
      if (last) out.push('');
      continue;
    }
    if (s === '..') {
      if (out.length === 0) return '';
      out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return '/' + out.join('/');
}

function startExchange(ctx: RequestState, ex: Exchange): void {
  if (ctx.aborted) return;
  const stream = streamOf(ctx.req);
  // reset by the client (Node closes the stream at once, but destroys it only once its body is read)
  if (stream.closed) stream.destroy();
  else ex.start();
}

function closeListener(plane: DataPlane): (this: GatewayResponse) => void {
  return function onResponseClose(this: GatewayResponse): void {
    plane.finish(this.state!);
  };
}

/** Error details safe to log: name, code and message (never values from a request or a secret). */
export function errorSummary(err: unknown): { type: string; code?: string; message: string } {
  if (err instanceof Error) return { type: err.name, code: (err as { code?: string }).code, message: err.message };
  return { type: typeof err, message: String(err) };
}
