// The "Node floor" of the peer bench: the least a Node reverse proxy with an API-key check can do.
// node:http server, undici Pool (keep-alive) to one upstream, a Map lookup of the `apikey` header,
// and the upstream's response streamed back. Env: UPSTREAM_PORT, API_KEY. Reports its port over IPC.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

// hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded in either direction
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);
const DENIED = JSON.stringify({ message: 'Invalid API key in request' });

function main(): void {
  const upstream = `http://127.0.0.1:${process.env.UPSTREAM_PORT}`;
  const consumers = new Map([[process.env.API_KEY ?? '', 'bench']]);
  const pool = new Pool(upstream, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const key = req.headers.apikey;
    const consumer = typeof key === 'string' ? consumers.get(key) : undefined;
    if (consumer === undefined) {
      res.writeHead(401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(DENIED) });
      res.end(DENIED);
      return;
    }
    const headers: Record<string, string | string[]> = { 'x-consumer-username': consumer };
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    try {
      // undici's stream(): the response body is written straight into `res`, with backpressure
      await pool.stream({ method: req.method as 'GET', path: req.url ?? '/', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, ({ statusCode, headers: upHeaders }) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(upHeaders)) if (v !== undefined && !HOP.has(k)) out[k] = v;
        res.writeHead(statusCode, out);
        return res;
      });
    } catch {
      if (res.headersSent) return void res.destroy();
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: 'bad gateway' }));
    }
  }

  const server = createServer({ keepAliveTimeout: 5000 }, (req, res) => void handle(req, res));
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

main();
