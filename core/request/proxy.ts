// Forwarding to upstreams with undici: streams bodies both ways with backpressure, applies the
// connect/send/read timeouts, retries on another node when it is safe, feeds passive health, and
// aborts the upstream request when the client goes away.
import { Readable } from 'node:stream';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { HashSource, UpstreamNode } from './balancer';
import type { RequestState } from './context';
import type { CompiledUpstream } from './snapshot';
import { discardRest } from './linger';
import { BodyTimer } from './body-timer';
import { isReplacedForwardingHeader, setForwardingHeaders } from './forwarded';
import { streamOf, withoutConnectionHeaders } from './h2';

/** Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), plus `expect`
 * (the data plane answers 100-continue itself) and `host` (set per pass_host). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'http2-settings', 'expect', 'host']);
const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'http2-settings']);
/** Methods that may be sent twice (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** Errors raised before anything reached the upstream: always safe to retry. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const TIMEOUT_ERRORS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'GH_SEND_TIMEOUT']);

/** The request body could not be sent within `timeout.send`. */
export class SendTimeoutError extends Error {
  readonly code = 'GH_SEND_TIMEOUT';
  constructor() {
    super('upstream did not accept the request body within timeout.send');
  }
}

/** The request body grew past its limit (the route's, else `gateway.client_max_body_size`); the upstream request is abandoned. */
export class BodyTooLargeError extends Error {
  readonly code = 'GH_BODY_TOO_LARGE';
  constructor() {
    super('request body larger than its size limit');
  }
}

/**
 * The client sent no body bytes for `gateway.client_body_timeout`, or for the upstream's
 * `timeout.send` while holding an upstream connection; the upstream request is abandoned.
 */
export class ClientBodyTimeoutError extends Error {
  readonly code = 'GH_CLIENT_BODY_TIMEOUT';
  constructor() {
    super('client sent no request body bytes in time');
  }
}

/** The client went away; the upstream request is abandoned. */
export class ClientGoneError extends Error {
  readonly code = 'GH_CLIENT_GONE';
  constructor() {
    super('client closed the connection');
  }
}

/** What the proxy needs from the data plane. */
export interface ProxyHost {
  /** Run response hooks, then `write` (sync or after async hooks). */
  startResponse(ctx: RequestState, write: () => void): void;
  /** Answer with a gateway error (502/504) through the normal local-response path. */
  respondError(ctx: RequestState, status: 502 | 503 | 504): void;
  /** Answer 413 (body over the limit) or 408 (body too slow) through the local-response path and close the connection. */
  rejectBody(ctx: RequestState, status: 408 | 413): void;
  /** An upstream attempt failed (for logs and metrics; a TLS failure's code is OpenSSL's or Node's, such as UNABLE_TO_VERIFY_LEAF_SIGNATURE); never given secret values. */
  upstreamError(ctx: RequestState, node: UpstreamNode, code: string, willRetry: boolean, upstreamId: string): void;
}

function connectionTokens(v: string | string[] | undefined): Set<string> | null {
  if (v === undefined) return null;
  const s = Array.isArray(v) ? v.join(',') : v;
  if (s.indexOf(',') === -1 && (s === 'keep-alive' || s === 'close' || s === 'Keep-Alive')) return null;
  const out = new Set<string>();
  for (const t of s.split(',')) {
    const n = t.trim().toLowerCase();
    if (n) out.add(n);
  }
  return out.size ? out : null;
}

function upstreamHeaders(ctx: RequestState, up: CompiledUpstream, node: UpstreamNode): Record<string, string | string[]> {
  const src = ctx.req.headers;
  const extra = connectionTokens(src.connection);
  const out: Record<string, string | string[]> = {};
  const trusted = ctx.fromTrustedProxy;
  for (const k in src) {
    if (HOP_BY_HOP.has(k) || isReplacedForwardingHeader(k, trusted) || (extra !== null && extra.has(k))) continue;
    const v = src[k];
    if (v !== undefined) out[k] = v;
  }
  const pass = up.config.pass_host;
  if (pass === 'pass') {
    if (src.host !== undefined) out.host = src.host;
  } else if (pass === 'node') out.host = node.key;
  else out.host = up.config.upstream_host!;
  const socket = ctx.req.socket;
  setForwardingHeaders(out, src, socket.remoteAddress ?? '', trusted, ctx.clientIp, (socket as { encrypted?: boolean }).encrypted === true, socket.localPort);
  ctx.applyUpstreamHeaderChanges(out);
  return out;
}

/**
 * The request body, read from the client only when undici first asks for it. An attempt that
 * fails before sending anything (connection refused) leaves the client stream untouched, so the
 * request can be retried on another node even when it has a body. Past `limit` bytes (0: none)
 * nothing more is passed on: the client is paused and `onTooLarge` decides. While it waits on the
 * client (not while the upstream holds it back), `timer` runs `gateway.client_body_timeout`.
 */
class LazyBody extends Readable {
  started = false;
  lastProgress = 0;
  /** Body bytes read from the client. */
  received = 0;
  /** Time the gateway held the client back (its buffer full, the upstream not taking more), and since when it does (-1: not now). */
  heldMs = 0;
  heldSince = -1;
  constructor(private readonly src: IncomingMessage, private readonly now: () => number, private readonly limit: number, private readonly onTooLarge: () => void, private readonly timer: BodyTimer) {
    super({ highWaterMark: 64 * 1024 });
  }
  override _read(): void {
    const now = (this.lastProgress = this.now());
    if (this.heldSince !== -1) {
      this.heldMs += now - this.heldSince;
      this.heldSince = -1;
    }
    if (!this.src.complete) this.timer.wait();
    if (this.started) {
      this.src.resume();
      return;
    }
    this.started = true;
    this.src.on('data', this.onData);
    this.src.once('end', this.onEnd);
    this.src.once('error', this.onError);
    this.src.resume();
  }
  private readonly onData = (chunk: Buffer): void => {
    const now = this.now();
    this.lastProgress = now;
    this.timer.progress(now);
    this.received += chunk.length;
    if (this.limit !== 0 && this.received > this.limit) {
      this.src.pause();
      this.src.off('data', this.onData);
      this.timer.stop();
      this.onTooLarge();
      return;
    }
    if (!this.push(chunk)) {
      this.src.pause();
      this.timer.hold();
      this.heldSince = now;
    }
  };
  private readonly onEnd = (): void => {
    this.timer.stop();
    this.push(null);
  };
  private readonly onError = (err: Error): void => {
    this.destroy(err);
  };
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.timer.stop();
    this.src.off('data', this.onData);
    this.src.off('end', this.onEnd);
    this.src.off('error', this.onError);
    cb(err);
  }
}

/** What chash hashes on. RequestContext names the client address and path differently, so it is not one. */
function hashSource(ctx: RequestState): HashSource {
  return { remoteAddr: ctx.clientIp, uri: ctx.path, host: ctx.host, headers: ctx.headers, query: ctx.query };
}
/** roundrobin and least_conn never read the source. */
const NO_HASH_SOURCE: HashSource = Object.freeze({ remoteAddr: '', uri: '', host: '', headers: {}, query: '' });

function hasBody(h: IncomingHttpHeaders): boolean {
  const cl = h['content-length'];
  return h['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/** The upstream's trailer fields as an HTTP/2 response may carry them; null when there are none. */
function responseTrailers(trailers: IncomingHttpHeaders | undefined): OutgoingHttpHeaders | null {
  if (trailers === undefined || trailers === null) return null;
  let out: OutgoingHttpHeaders | null = null;
  for (const k in trailers) {
    if (RESPONSE_HOP_BY_HOP.has(k) || k.charCodeAt(0) === 58 /* : */ || k === 'content-length') continue;
    (out ??= {})[k] = trailers[k];
  }
  return out === null ? null : withoutConnectionHeaders(out);
}

/**
 * One proxied request: all attempts (first try and retries) of it.
 * Created once per request; each attempt is one undici dispatch with this object as handler.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  private node!: UpstreamNode;
  private controller: Dispatcher.DispatchController | null = null;
  private started = false;
  private attempts = 0;
  private tried: Set<string> | null = null;
  private body: LazyBody | null = null;
  private sendTimer: NodeJS.Timeout | null = null;
  private pending: Buffer[] | null = null;
  private done = false;
  private lastWasTimeout = false;
  /** When this attempt's upstream connection was taken (undici's onRequestStart). */
  private takenAt = 0;
  /** The client's fault ends the request: 413, its body went over its limit (`ctx.bodyLimit`); 408, it went quiet. */
  private clientFault: 0 | 408 | 413 = 0;

  constructor(private readonly ctx: RequestState, private readonly up: CompiledUpstream, private readonly host: ProxyHost, private readonly now: () => number) {}

  /** Start the first attempt. */
  start(): void {
    this.attempt();
  }

  /** The client went away: abort the upstream request in progress. */
  abort(): void {
    const c = this.controller;
    if (c !== null && !c.aborted) c.abort(new ClientGoneError());
  }

  private attempt(): void {
    const { ctx, up } = this;
    const node = up.balancer.pick(up.isChash ? hashSource(ctx) : NO_HASH_SOURCE, this.tried, up.health.check);
    if (node === undefined) {
      this.host.respondError(ctx, this.lastWasTimeout ? 504 : 502);
      return;
    }
    this.node = node;
    this.attempts++;
    this.controller = null;
    this.started = false;
    up.balancer.acquire(node);
    let body: LazyBody | null = null;
    // an HTTP/2 request has a body unless its HEADERS frame ended the stream (no length or chunking says so)
    if (ctx.h2 ? !streamOf(ctx.req).endAfterHeaders : hasBody(ctx.req.headers)) body = this.body = new LazyBody(ctx.req, this.now, ctx.bodyLimit, this.bodyTooLarge, new BodyTimer(ctx.snapshot.config.gateway.client_body_timeout * 1000, this.now, () => this.bodyTimedOut()));
    const path = ctx.query === '' ? ctx.path : `${ctx.path}?${ctx.query}`;
    up.pools.get(node.key)!.dispatch(
      {
        path,
        method: ctx.method as Dispatcher.HttpMethod,
        headers: upstreamHeaders(ctx, up, node),
        body,
        headersTimeout: up.readTimeoutMs,
        bodyTimeout: up.readTimeoutMs,
        idempotent: IDEMPOTENT.has(ctx.method),
      },
      this,
    );
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.ctx.aborted) {
      controller.abort(new ClientGoneError());
      return;
    }
    if (this.clientFault !== 0) {
      controller.abort(this.clientFault === 413 ? new BodyTooLargeError() : new ClientBodyTimeoutError());
      return;
    }
    if (this.body !== null) {
      this.body.lastProgress = this.takenAt = this.now();
      this.armSendTimer(this.up.sendTimeoutMs);
    }
  }

  /** The body went over the limit: abort the upstream request; onResponseError answers the client. */
  private readonly bodyTooLarge = (): void => {
    this.endByClient(413, new BodyTooLargeError());
  };

  /**
   * The client sent nothing for `gateway.client_body_timeout` while the gateway waited on it (as
   * nginx: 408). Also when it kept an upstream connection waiting for `timeout.send` (checkSend).
   */
  private bodyTimedOut(): void {
    this.endByClient(408, new ClientBodyTimeoutError());
  }

  /** The client's body ends the request: abort the upstream request, which frees its connection; onResponseError answers the client. */
  private endByClient(status: 408 | 413, err: Error): void {
    if (this.clientFault !== 0) return;
    this.clientFault = status;
    this.clearSendTimer();
    if (this.done) {
      // the upstream has answered in full already: close the connection once that answer is out
      const { req, res } = this.ctx;
      if (res.writableFinished) req.socket.destroy();
      else res.once('finish', () => req.socket.destroy());
      return;
    }
    const c = this.controller;
    if (c !== null && !c.aborted) c.abort(err);
  }

  private armSendTimer(ms: number): void {
    this.sendTimer = setTimeout(this.checkSend, ms);
    this.sendTimer.unref();
  }

  private readonly checkSend = (): void => {
    this.sendTimer = null;
    const b = this.body;
    if (b === null || this.started || this.done || b.readableEnded) return;
    const now = this.now();
    const idle = now - b.lastProgress;
    const limit = this.up.sendTimeoutMs;
    if (idle >= limit) {
      // nothing waits in the body buffer: the upstream takes all it is given and the client is the
      // slow side. It holds an upstream connection idle (with keepalive_pool.size connections, a few
      // such clients would starve the upstream's other routes), so it gets no longer than the
      // upstream's timeout.send either: 408 as for client_body_timeout, and not the node's failure
      if (b.readableLength === 0) this.bodyTimedOut();
      else this.controller?.abort(new SendTimeoutError());
      return;
    }
    const left = this.uploadTimeLeft(b, now, limit);
    if (left <= 0) this.bodyTimedOut();
    else this.armSendTimer(Math.min(limit - idle, left));
  };

  /**
   * A client that sends a byte just under every `timeout.send` would keep the upstream connection
   * for ever on the rule above, so the whole upload is bounded too, as Apache's mod_reqtimeout
   * `MinRate`: the connection may wait on the client for `timeout.send` from when it was taken,
   * plus one second per `gateway.client_body_min_rate` bytes received, plus the time the gateway
   * itself held the client back (the upstream slow to take the body is not the client's fault).
   * An upload at or above the rate never runs out; a trickle does, whatever its pace. Infinity
   * when the rate is off, or when the gateway is not waiting on the client right now.
   */
  private uploadTimeLeft(b: LazyBody, now: number, limit: number): number {
    const rate = this.ctx.snapshot.config.gateway.client_body_min_rate;
    if (rate === 0 || b.heldSince !== -1 || b.readableLength !== 0 || this.ctx.req.complete) return Infinity;
    return limit + (b.received * 1000) / rate + b.heldMs - (now - this.takenAt);
  }

  private clearSendTimer(): void {
    if (this.sendTimer !== null) {
      clearTimeout(this.sendTimer);
      this.sendTimer = null;
    }
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // informational, handled by undici
    this.started = true;
    this.clearSendTimer();
    const { ctx, up, node } = this;
    if (up.failStatuses !== null && up.failStatuses.has(statusCode)) up.health.reportFailure(node.key);
    else up.health.reportSuccess(node.key);
    const extra = connectionTokens(headers.connection);
    const h: OutgoingHttpHeaders = {};
    for (const k in headers) {
      if (RESPONSE_HOP_BY_HOP.has(k) || (extra !== null && extra.has(k))) continue;
      h[k] = headers[k];
    }
    ctx.upstreamResponded(statusCode, h, node.key);
    if (ctx.aborted) return;
    this.pending = [];
    this.host.startResponse(ctx, this.writeHead);
    // asynchronous response hooks still run: hold the upstream body instead of buffering it
    if (this.pending !== null && !controller.paused) controller.pause();
  }

  private readonly writeHead = (): void => {
    const { ctx } = this;
    const pending = this.pending;
    this.pending = null;
    if (ctx.aborted) return;
    ctx.res.writeHead(ctx.status, ctx.h2 ? withoutConnectionHeaders(ctx.responseHeaders) : ctx.responseHeaders);
    if (pending !== null) for (const c of pending) this.write(c);
    if (this.done) this.end();
    else if (ctx.res.writableNeedDrain) ctx.res.once('drain', this.resume);
    else this.resume();
  };

  private write(chunk: Buffer): void {
    if (!this.ctx.res.write(chunk)) {
      const c = this.controller;
      if (c !== null && !c.paused) {
        c.pause();
        this.ctx.res.once('drain', this.resume);
      }
    }
  }

  private readonly resume = (): void => {
    const c = this.controller;
    if (c !== null && c.paused && !c.aborted) c.resume();
  };

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.ctx.aborted) return;
    if (this.pending !== null) this.pending.push(chunk);
    else this.write(chunk);
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.done = true;
    this.up.balancer.release(this.node);
    if (this.ctx.aborted) return;
    // the upstream's trailer fields reach an HTTP/2 client (an HTTP/1.1 response here is sent with a length or chunked without them)
    if (this.ctx.h2) this.trailers = responseTrailers(trailers);
    if (this.pending === null) this.end();
  }

  /** Trailer fields for the client: HTTP/2 only, connection-specific ones and pseudo-headers left out. */
  private trailers: OutgoingHttpHeaders | null = null;

  private end(): void {
    const t = this.trailers;
    if (t !== null) this.ctx.res.addTrailers(t);
    this.ctx.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.clearSendTimer();
    const { ctx, up, node } = this;
    up.balancer.release(node);
    if (ctx.aborted || (err as { code?: string }).code === 'GH_CLIENT_GONE') return;
    if (this.clientFault !== 0) {
      // the client's fault, not the node's: no health report, no retry, no upstream error
      this.body = null;
      if (this.started) ctx.res.destroy();
      else this.host.rejectBody(ctx, this.clientFault);
      return;
    }
    const code = (err as { code?: string }).code ?? 'UNKNOWN';
    if (this.started) {
      // headers already went to the client: all we can do is cut the response short
      up.health.reportFailure(node.key);
      this.host.upstreamError(ctx, node, code, false, up.identity);
      ctx.upstreamCut = true;
      ctx.res.destroy();
      return;
    }
    up.health.reportFailure(node.key);
    this.lastWasTimeout = TIMEOUT_ERRORS.has(code);
    const bodyUntouched = this.body === null || !this.body.started;
    const retry = this.attempts <= up.retries && bodyUntouched && (CONNECT_ERRORS.has(code) || (IDEMPOTENT.has(ctx.method) && this.body === null));
    this.host.upstreamError(ctx, node, code, retry, up.identity);
    if (retry) {
      (this.tried ??= new Set()).add(node.key);
      if (this.body !== null) {
        this.body.destroy();
        this.body = null;
      }
      this.attempt();
      return;
    }
    this.discardBody();
    this.host.respondError(ctx, this.lastWasTimeout ? 504 : 502);
  }

  /**
   * The request will not go upstream any more: drop the rest of the client's body so the client
   * (still uploading) reads our answer instead of stalling. Node only does this itself for bodies
   * nobody has started reading.
   */
  private discardBody(): void {
    const b = this.body;
    if (b === null || !b.started) return;
    this.body = null;
    b.destroy();
    const { req, snapshot } = this.ctx;
    if (!req.complete) discardRest(req, this.ctx.bodyLimit, b.received, { ms: snapshot.config.gateway.client_body_timeout * 1000, now: this.now });
  }
}
