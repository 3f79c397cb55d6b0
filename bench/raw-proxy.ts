// The ceiling without node:http, for the peer bench: what a Node proxy costs when the HTTP server
// layer is left out. A `net` server reads request heads itself (split on CRLF, nothing checked),
// does the same Map key check as bench/minimal-proxy.ts and the same undici Pool to the upstream,
// through `dispatch` with a plain handler, and writes the answer with one corked write.
//
// NOT a usable server: GET without a body only, no header validation, no size limits, no
// timeouts, no chunked framing, no HEAD/1xx/204 rules, no error answers. It measures how much of
// the proxies' cost is Node's HTTP server, nothing more. Env: UPSTREAM_PORT, API_KEY. Reports its
// port over IPC.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Pool, type Dispatcher } from 'undici';

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);
const DENIED_BODY = '{"message":"Invalid API key in request"}';
const DENIED = Buffer.from(`HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(DENIED_BODY)}\r\n\r\n${DENIED_BODY}`);
const END_OF_HEAD = Buffer.from('\r\n\r\n');

/** Collects the upstream answer and writes it to the client socket in one go. */
class Relay implements Dispatcher.DispatchHandler {
  private head = '';
  private readonly chunks: Buffer[] = [];
  constructor(private readonly socket: Socket) {}
  onConnect(): void {}
  onHeaders(status: number, raw: Buffer[]): boolean {
    let h = `HTTP/1.1 ${status} \r\n`;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toString('latin1');
      if (!HOP.has(name.toLowerCase())) h += `${name}: ${raw[i + 1].toString('latin1')}\r\n`;
    }
    this.head = `${h}\r\n`;
    return true;
  }
  onData(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }
  onComplete(): void {
    const s = this.socket;
    s.cork();
    s.write(this.head, 'latin1');
    for (const c of this.chunks) s.write(c);
    s.uncork();
  }
  onError(): void {
    this.socket.destroy();
  }
}

function main(): void {
  const consumers = new Map([[process.env.API_KEY ?? '', 'bench']]);
  const pool = new Pool(`http://127.0.0.1:${process.env.UPSTREAM_PORT}`, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 });

  const server = createServer({ noDelay: true }, (socket) => {
    let buf: Buffer | null = null;
    socket.on('error', () => socket.destroy());
    socket.on('data', (data: Buffer) => {
      buf = buf === null ? data : Buffer.concat([buf, data]);
      for (;;) {
        const end: number = buf.indexOf(END_OF_HEAD);
        if (end === -1) return;
        const lines = buf.toString('latin1', 0, end).split('\r\n');
        buf = end + 4 < buf.length ? buf.subarray(end + 4) : null;
        const [method, path] = lines[0].split(' ');
        const headers: Record<string, string> = {};
        for (let i = 1; i < lines.length; i++) {
          const colon = lines[i].indexOf(':');
          const name = lines[i].slice(0, colon).toLowerCase();
          if (!HOP.has(name)) headers[name] = lines[i].slice(colon + 1).trim();
        }
        const consumer = consumers.get(headers.apikey ?? '');
        if (consumer === undefined) socket.write(DENIED);
        else {
          headers['x-consumer-username'] = consumer;
          pool.dispatch({ method: method as Dispatcher.HttpMethod, path, headers, body: null }, new Relay(socket));
        }
        if (buf === null) return;
      }
    });
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

main();
