// The proxy's HTTP listener: Node's server over a data plane, with the timeouts that bound a
// client, `Expect: 100-continue` handed to the data plane, malformed requests answered here, and
// the drain that closes it.
import { createServer, Server, type IncomingMessage, type ServerOptions } from 'node:http';
import { Socket as NetSocket, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server as TlsServer, TLSSocket, type SecureContextOptions } from 'node:tls';
import { GatehouseError } from '../errors';
import { GatewayResponse, type DataPlane } from './data-plane';
import { readClientHello } from './client-hello';
import type { TlsEntry, TlsTable } from './tls-table';
import { h2Listener, type H2Listener } from './h2';
import { keepTlsFacts } from './tls-facts';

/**
 * The timeouts that bound a client of a gateway listener: the proxy's and the Admin API's, so a
 * slow or idle client holds neither port longer than the other.
 * @param clientHeaderTimeout seconds a client has to send its request headers (`gateway.client_header_timeout`)
 */
export function clientTimeouts(clientHeaderTimeout: number): Pick<ServerOptions, 'requestTimeout' | 'keepAliveTimeout' | 'headersTimeout' | 'connectionsCheckingInterval'> {
  // requestTimeout 0: long uploads are bounded per read (gateway.client_body_timeout, read per request
  // from the snapshot, and the upstream timeout.send with client_body_min_rate), not by a total
  // headersTimeout: a client that trickles its headers (slowloris), or opens a connection and sends
  // nothing, gets 408; the connection check runs every second (Node's default of 30 s would let it
  // hold the socket much longer)
  const headerMs = clientHeaderTimeout * 1000;
  return { requestTimeout: 0, keepAliveTimeout: 5000, headersTimeout: headerMs, connectionsCheckingInterval: Math.min(1000, headerMs) };
}

/**
 * Listen on `host:port` with a server whose requests go to `plane`.
 * @param clientHeaderTimeout seconds a client has to send its request headers (`gateway.client_header_timeout`)
 * @throws GatehouseError GH_ERR_LISTEN naming the address and the system's error code
 */
export async function listenProxy(plane: DataPlane, host: string, port: number, clientHeaderTimeout: number): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer({ ServerResponse: GatewayResponse, ...clientTimeouts(clientHeaderTimeout) }, plane.handle);
  // 100 Continue only for bodies within the request's limit, once the request hooks let the
  // request through to the upstream (Node would send it for all, at once)
  server.on('checkContinue', plane.handleContinue);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new GatehouseError('GH_ERR_LISTEN', `${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
    server.listen(port, host, () => resolve());
  });
  server.on('clientError', onClientError);
  return { server, address: server.address() as AddressInfo };
}

/** TLS protocol settings of the proxy's TLS listener: TLS 1.2 and 1.3 only, Node's (OpenSSL's) modern cipher defaults. */
export const TLS_SERVER_DEFAULTS: Pick<SecureContextOptions, 'minVersion'> = { minVersion: 'TLSv1.2' };

/** A fatal TLS alert record: unrecognized_name (112), for a server name the table lacks. */
const ALERT_UNRECOGNIZED_NAME = Buffer.from([21, 3, 3, 0, 2, 2, 112]);

/**
 * The TLS listener's HTTP server: Node's HTTP/1.1 server, which listens, counts the connections and
 * drains them, plus the HTTP/2 server its `h2` connections go to, whose sessions it closes with its own.
 */
class TlsProxyServer extends Server<typeof IncomingMessage, typeof GatewayResponse> {
  h2: H2Listener | undefined = undefined;

  override closeIdleConnections(): void {
    super.closeIdleConnections();
    this.h2?.closeIdle();
  }

  override closeAllConnections(): void {
    super.closeAllConnections();
    this.h2?.closeAll();
  }
}

/**
 * Listen for TLS on `host:port` with a server whose requests go to `plane`. Each connection's
 * ClientHello is read first (client-hello.ts) and its certificate chosen from `table()` (the current
 * snapshot's): by server name, or the table's fallback for a client that sends none; the handshake
 * then runs on that certificate's whole context (all its certificates: OpenSSL picks RSA or ECDSA
 * by what the client supports). A name the table lacks, or no name and no fallback, gets a fatal
 * `unrecognized_name` alert; bytes that are no ClientHello close the connection; a ClientHello, or
 * a handshake, that has not arrived (finished) within the client header timeout closes it too.
 * Nothing of these reaches the data plane. Session resumption is OpenSSL's (tickets; TLS 1.3
 * resumption by ticket). ALPN offers `h2` (when `http2`) and `http/1.1`: a connection that chose
 * `h2` goes to an HTTP/2 server (h2.ts) over the same data plane, any other to the HTTP/1.1 one.
 * Each TLS socket keeps its TLS facts (tls-facts.ts) for the requests on it.
 * @throws GatehouseError GH_ERR_LISTEN naming the address and the system's error code
 */
export async function listenProxyTls(plane: DataPlane, host: string, port: number, clientHeaderTimeout: number, table: () => TlsTable, http2 = true): Promise<{ server: Server; address: AddressInfo }> {
  const timeouts = clientTimeouts(clientHeaderTimeout);
  const server = new TlsProxyServer({ ServerResponse: GatewayResponse, ...timeouts }, plane.handle);
  server.on('checkContinue', plane.handleContinue);
  const alpn = http2 ? ['h2', 'http/1.1'] : ['http/1.1'];
  const h2 = http2 ? (server.h2 = h2Listener(plane, timeouts.headersTimeout!, timeouts.keepAliveTimeout!)) : undefined;
  // the HTTP server listens itself (close, drain and its connection tracking stay its own), but each
  // raw connection goes through the ClientHello first, and HTTP gets the TLS socket
  const httpConnection = server.listeners('connection')[0] as (socket: Duplex) => void;
  server.removeAllListeners('connection');
  /** A TLS socket whose handshake is done: to HTTP/2 or HTTP/1.1 by what ALPN chose. */
  const secured = (socket: TLSSocket, raw: Socket | undefined, servername: string | undefined, verified: boolean): void => {
    keepTlsFacts(socket, servername, verified);
    if (h2 !== undefined && socket.alpnProtocol === 'h2') h2.connection(socket, raw);
    else httpConnection.call(server, socket);
  };
  // one TLS server per SSL resource that verifies clients, made at its first connection and let
  // go of with the table entry; it hands HTTP only connections whose certificate it verified
  const mtls = new WeakMap<TlsEntry, TlsServer>();
  const mtlsServer = (entry: TlsEntry): TlsServer => {
    let s = mtls.get(entry);
    if (s === undefined) {
      const depth = entry.clientAuth!.depth;
      s = new TlsServer({ ...entry.clientAuth!.options, requestCert: true, rejectUnauthorized: true, ALPNProtocols: alpn, handshakeTimeout: timeouts.headersTimeout });
      s.on('secureConnection', (socket: TLSSocket) => {
        // verified against the CA by Node; a chain longer than the resource's depth is refused too
        if (chainDepth(socket) > depth) {
          socket.destroy();
          return;
        }
        socket.once('close', () => rawOf(socket)?.destroy());
        secured(socket, rawOf(socket), (socket as { servername?: string | false | null }).servername || undefined, true);
      });
      s.on('tlsClientError', (_err, socket) => {
        socket.destroy();
        rawOf(socket)?.destroy();
      });
      mtls.set(entry, s);
    }
    return s;
  };
  server.on('connection', (raw: Socket) =>
    preread(raw, timeouts.headersTimeout!, (servername) => {
      const entry = table().select(servername);
      if (entry === undefined) {
        // the alert, then the connection closes (the client's own end is not waited for)
        raw.end(ALERT_UNRECOGNIZED_NAME, () => raw.destroy());
        return;
      }
      if (entry.clientAuth !== undefined) {
        // client certificates: a TLS server of Node's own verifies them (a bare TLS socket does not)
        mtlsServer(entry).emit('connection', raw);
        return;
      }
      const socket = new TLSSocket(raw, { isServer: true, secureContext: entry.context, ALPNProtocols: alpn });
      // a failed handshake is the client's: closed, not answered (the HTTP layer answers only requests)
      socket.once('error', () => socket.destroy());
      // the raw socket is the one the server counts (close and drain wait for it): it ends with the TLS socket
      socket.once('close', () => raw.destroy());
      // the handshake is bounded like the ClientHello (the HTTP server's timeouts start after it)
      const handshake = setTimeout(() => socket.destroy(), timeouts.headersTimeout!);
      socket.once('close', () => clearTimeout(handshake));
      socket.once('secure', () => {
        clearTimeout(handshake);
        // as Node's TLS server marks its sockets at 'secureConnection' (Node's HTTP/2 session waits
        // for a socket still marked connecting)
        (socket as { secureConnecting?: boolean }).secureConnecting = false;
        secured(socket, raw, servername, false);
      });
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new GatehouseError('GH_ERR_LISTEN', `${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
    server.listen(port, host, () => resolve());
  });
  server.on('clientError', onClientError);
  return { server, address: server.address() as AddressInfo };
}

/**
 * The raw connection a TLS server's socket wraps: the one the HTTP server counts, ended with it.
 * (Node keeps it as `_parent`; no public property names it.)
 */
function rawOf(socket: TLSSocket): Socket | undefined {
  const parent = (socket as { _parent?: unknown })._parent;
  return parent instanceof NetSocket ? parent : undefined;
}

/** How many certificates the client's chain has above its own one, up to the trusted CA (1: the CA signed it). */
function chainDepth(socket: TLSSocket): number {
  let cert = socket.getPeerCertificate(true);
  let depth = 0;
  const seen = new Set<string>();
  // the chain ends at a self-signed certificate (issuerCertificate is itself)
  while (cert?.issuerCertificate !== undefined && cert.issuerCertificate.fingerprint256 !== cert.fingerprint256 && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    cert = cert.issuerCertificate;
    depth++;
  }
  return depth;
}

/** Read a connection's ClientHello, then hand it on (paused, with what was read put back) with the server name it asked for. */
function preread(raw: Socket, timeoutMs: number, chosen: (servername: string | undefined) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => raw.destroy(), timeoutMs);
  const done = () => {
    clearTimeout(timer);
    raw.off('data', onData);
    raw.off('error', onError);
    raw.off('close', onClose);
  };
  const onError = () => raw.destroy();
  const onClose = () => clearTimeout(timer);
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const hello = readClientHello(buf);
    if (hello.kind === 'more') return;
    done();
    if (hello.kind === 'not-tls') {
      raw.destroy();
      return;
    }
    raw.pause();
    raw.unshift(buf);
    chosen(hello.servername);
  };
  raw.on('data', onData);
  raw.on('error', onError);
  raw.on('close', onClose);
}

/**
 * Stop accepting connections and close each one as it goes idle; after `timeoutMs`, call `onLate`
 * and close the rest. Resolves when every connection is closed.
 */
export async function drain(server: Server, timeoutMs: number, onLate: () => void): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const sweep = setInterval(() => server.closeIdleConnections(), 25);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
  const late = await Promise.race([closed.then(() => false), timedOut]);
  clearInterval(sweep);
  clearTimeout(timer);
  if (late) {
    onLate();
    server.closeAllConnections();
    await closed;
  }
}

/** Malformed requests never reach the data plane: answer them here, as nginx does. */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || (socket as { _httpMessage?: unknown })._httpMessage) {
    socket.destroy();
    return;
  }
  const [status, text] =
    err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request'];
  const body = JSON.stringify({ message: `${status} ${text}` });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
