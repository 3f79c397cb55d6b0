// The proxy's HTTP listener: Node's server over a data plane, with the timeouts that bound a
// client, `Expect: 100-continue` handed to the data plane, malformed requests answered here, and
// the drain that closes it.
import { createServer, type Server, type ServerOptions } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { GatehouseError } from '../errors';
import { GatewayResponse, type DataPlane } from './data-plane';

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
