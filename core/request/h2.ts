// HTTP/2 on the TLS listener: the Node http2 server that takes the connections whose ALPN chose
// `h2`, its bounds against HTTP/2's own abuse, the idle timer of a session, and the request and
// response classes that let the data plane serve an HTTP/2 stream as it serves an HTTP/1.1 request
// (Node's compatibility API: Http2ServerRequest / Http2ServerResponse).
import { createServer, constants, Http2ServerRequest, Http2ServerResponse, type Http2Stream, type IncomingHttpHeaders as H2Headers, type ServerOptions, type ServerHttp2Session } from 'node:http2';
import { maxHeaderSize, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RequestState } from './context';

/**
 * The bounds of every HTTP/2 session (docs/tls.md "HTTP/2" lists them and why). Node's defaults are
 * written out where they are kept, so a Node upgrade that changes one does not change the gateway.
 */
export const H2_BOUNDS = {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may have open at once (nginx's http2_max_concurrent_streams); more are refused with REFUSED_STREAM. */
  maxConcurrentStreams: 128,
  /** SETTINGS_MAX_HEADER_LIST_SIZE: a request's header block, the same bytes HTTP/1.1 allows a request head (Node's `http.maxHeaderSize`, 16 KiB unless --max-http-header-size). */
  maxHeaderListSize: maxHeaderSize,
  /** Header fields in one request (pseudo-headers included); a request with more is reset with ENHANCE_YOUR_CALM. */
  maxHeaderListPairs: 128,
  /** MB of memory a session may hold in nghttp2 (queued frames, header tables, buffered data); beyond it new streams are refused, as Node's default. */
  maxSessionMemory: 10,
  /** Frames a client may send that are invalid before its session is closed (Node's default). */
  maxSessionInvalidFrames: 1000,
  /** Streams the server may refuse (over maxConcurrentStreams, memory) before the session is closed (Node's default). */
  maxSessionRejectedStreams: 100,
  /** PINGs the gateway may have sent and not yet had answered (Node's default); it sends none itself. */
  maxOutstandingPings: 10,
  /** Entries in one SETTINGS frame (Node's default). */
  maxSettings: 32,
  /** Concurrent streams the gateway assumes of a client before its SETTINGS arrive (Node's default); the gateway opens none. */
  peerMaxConcurrentStreams: 100,
} as const;

/** Response header fields that describe an HTTP/1.1 connection: illegal in HTTP/2 (RFC 9113 §8.2.2), never sent on a stream. */
const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];

/**
 * An HTTP/2 request as the data plane reads an HTTP/1.1 one: its `headers` without pseudo-headers
 * and with `:authority` as `host` (when the client sent no Host field), so plugins, routing and the
 * upstream request see the fields they would see over HTTP/1.1. `method` and `url` are Node's
 * (from `:method` and `:path`).
 */
export class GatewayH2Request extends Http2ServerRequest {
  constructor(stream: never, headers: H2Headers, options: never, rawHeaders: never) {
    super(stream, headers, options, rawHeaders);
    const h: IncomingHttpHeaders = {};
    for (const k in headers) if (k.charCodeAt(0) !== 58 /* : */) h[k] = headers[k] as string | string[];
    if (h.host === undefined && headers[':authority'] !== undefined) h.host = headers[':authority'] as string;
    Object.defineProperty(this, 'headers', { value: h, enumerable: true });
  }
}

/** The HTTP/2 server's response class: Node's, with the link to its request's state the data plane's `close` listener follows (as GatewayResponse). */
export class GatewayH2Response extends Http2ServerResponse {
  state: RequestState | undefined = undefined;
}

/** Whether a request came over HTTP/2 (`req` is then a GatewayH2Request). */
export function isH2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2;
}

/** The stream of an HTTP/2 request. */
export function streamOf(req: IncomingMessage): Http2Stream {
  return (req as unknown as Http2ServerRequest).stream;
}

/** Drop the header fields HTTP/2 forbids from a response head or trailer block. */
export function withoutConnectionHeaders(h: OutgoingHttpHeaders): OutgoingHttpHeaders {
  for (const k of CONNECTION_SPECIFIC) if (h[k] !== undefined) delete h[k];
  return h;
}

/**
 * The request body will not be read (answered before it arrived): once the response is out, end the
 * stream with RST_STREAM NO_ERROR, which asks the client to stop sending it (RFC 9113 §8.1). Over
 * HTTP/2 this replaces HTTP/1.1's `Connection: close` and lingering close: other streams go on.
 */
export function endUnreadBody(req: IncomingMessage, res: { writableFinished: boolean; once(e: 'finish', f: () => void): unknown }): void {
  const stream = streamOf(req);
  const close = () => {
    if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
  };
  if (res.writableFinished) close();
  else res.once('finish', close);
}

/** What the HTTP/2 server needs of the data plane. */
interface Plane {
  handle(req: IncomingMessage, res: never): void;
  handleContinue(req: IncomingMessage, res: never): void;
}

/** The HTTP/2 server of a TLS listener, and the sessions it has open (for drain). */
export interface H2Listener {
  /** Hand it a TLS socket whose ALPN chose `h2` (handshake done), and the raw connection under it. */
  connection(socket: Duplex, raw: Duplex | undefined): void;
  /** GOAWAY to every session: streams already open finish, no new ones; each closes when its last stream ends. */
  closeIdle(): void;
  /** Close every session now. */
  closeAll(): void;
}

/**
 * The HTTP/2 server whose requests go to `plane`, with {@link H2_BOUNDS}. A session with no open
 * stream is closed (GOAWAY) after `firstRequestMs` when it never had one (a client that connects
 * and sends no complete request, as HTTP/1.1's header timeout), else after `idleMs` (as HTTP/1.1's
 * keep-alive timeout). PINGs and SETTINGS do not keep it open; an open stream does, however long
 * the upstream takes (its own timeouts bound it).
 */
export function h2Listener(plane: Plane, firstRequestMs: number, idleMs: number): H2Listener {
  const server = createServer(
    // maxSessionInvalidFrames and maxSessionRejectedStreams are Node's (since 15.14) but not in @types/node 20
    {
      settings: { maxConcurrentStreams: H2_BOUNDS.maxConcurrentStreams, maxHeaderListSize: H2_BOUNDS.maxHeaderListSize, enablePush: false },
      maxHeaderListPairs: H2_BOUNDS.maxHeaderListPairs,
      maxSessionMemory: H2_BOUNDS.maxSessionMemory,
      maxSessionInvalidFrames: H2_BOUNDS.maxSessionInvalidFrames,
      maxSessionRejectedStreams: H2_BOUNDS.maxSessionRejectedStreams,
      maxOutstandingPings: H2_BOUNDS.maxOutstandingPings,
      maxSettings: H2_BOUNDS.maxSettings,
      peerMaxConcurrentStreams: H2_BOUNDS.peerMaxConcurrentStreams,
      Http2ServerRequest: GatewayH2Request,
      Http2ServerResponse: GatewayH2Response,
    } as ServerOptions,
    plane.handle as never,
  );
  server.on('checkContinue', plane.handleContinue as never);
  const sessions = new Set<ServerHttp2Session>();
  /** The raw connections under the sessions: the ones the listener counts, and drain waits for. */
  const conns = new Set<Duplex>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    let open = 0;
    let timer: NodeJS.Timeout | null = setTimeout(() => session.close(), firstRequestMs);
    const stopTimer = () => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    };
    session.on('stream', (stream: Http2Stream) => {
      open++;
      stopTimer();
      stream.once('close', () => {
        if (--open === 0 && !session.closed && !session.destroyed) timer = setTimeout(() => session.close(), idleMs);
      });
    });
    // a session error (a protocol violation, a bound crossed) ends the session: Node has sent GOAWAY
    session.on('error', () => session.destroy());
    session.once('close', () => {
      stopTimer();
      sessions.delete(session);
    });
  });
  return {
    connection: (socket, raw) => {
      // the client closed its side (with or without GOAWAY): the session is over (Node's HTTP/2
      // session would keep the socket open until a timeout)
      socket.once('end', () => socket.destroy());
      if (raw !== undefined) {
        conns.add(raw);
        raw.once('close', () => conns.delete(raw));
      }
      server.emit('connection', socket);
    },
    closeIdle: () => {
      for (const s of sessions) if (!s.closed) s.close();
    },
    closeAll: () => {
      for (const s of sessions) s.destroy();
      // a session whose writes are stuck (a client that stopped reading) may not get to close its socket
      for (const c of conns) c.destroy();
    },
  };
}
