// The proxy's HTTP listener: Node's server over a data plane, with the timeouts that bound a
// client, `Expect: 100-continue` handed to the data plane, malformed requests answered here, and
// the drain that closes it.
import { createServer, type Server, type ServerOptions } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket, type SecureContextOptions } from 'node:tls';
import { GatehouseError } from '../errors';
import { GatewayResponse, type DataPlane } from './data-plane';
import { readClientHello } from './client-hello';
import type { TlsTable } from './tls-table';

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
 * Listen for TLS on `host:port` with a server whose requests go to `plane`. Each connection's
 * ClientHello is read first (client-hello.ts) and its certificate chosen from `table()` (the current
 * snapshot's): by server name, or the table's fallback for a client that sends none; the handshake
 * then runs on that certificate's whole context (all its certificates: OpenSSL picks RSA or ECDSA
 * by what the client supports). A name the table lacks, or no name and no fallback, gets a fatal
 * `unrecognized_name` alert; bytes that are no ClientHello close the connection; a ClientHello
 * that has not arrived within the client header timeout closes it too. Nothing of these reaches the
 * data plane. Session resumption is OpenSSL's (tickets; TLS 1.3 resumption by ticket).
 * @throws GatehouseError GH_ERR_LISTEN naming the address and the system's error code
 */
export async function listenProxyTls(plane: DataPlane, host: string, port: number, clientHeaderTimeout: number, table: () => TlsTable): Promise<{ server: Server; address: AddressInfo }> {
  const timeouts = clientTimeouts(clientHeaderTimeout);
  const server = createServer({ ServerResponse: GatewayResponse, ...timeouts }, plane.handle);
  server.on('checkContinue', plane.handleContinue);
  // the HTTP server listens itself (close, drain and its connection tracking stay its own), but each
  // raw connection goes through the ClientHello first, and HTTP gets the TLS socket
  const httpConnection = server.listeners('connection')[0] as (socket: Duplex) => void;
  server.removeAllListeners('connection');
  server.on('connection', (raw: Socket) =>
    preread(raw, timeouts.headersTimeout!, (servername) => {
      const entry = table().select(servername);
      if (entry === undefined) {
        // the alert, then the connection closes (the client's own end is not waited for)
        raw.end(ALERT_UNRECOGNIZED_NAME, () => raw.destroy());
        return;
      }
      const socket = new TLSSocket(raw, { isServer: true, secureContext: entry.context, ALPNProtocols: ['http/1.1'] });
      // a failed handshake is the client's: closed, not answered (the HTTP layer answers only requests)
      socket.once('error', () => socket.destroy());
      // the raw socket is the one the server counts (close and drain wait for it): it ends with the TLS socket
      socket.once('close', () => raw.destroy());
      httpConnection.call(server, socket);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new GatehouseError('GH_ERR_LISTEN', `${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
    server.listen(port, host, () => resolve());
  });
  server.on('clientError', onClientError);
  return { server, address: server.address() as AddressInfo };
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
