// Peer of the bench: fast-gateway (restana + fast-proxy-lite, keep-alive http.Agent to the upstream),
// proxying /ip to the upstream with the same API-key check as the others, done in its onRequest hook.
// Env: UPSTREAM_PORT, API_KEY. Reports its port over IPC.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import gateway from 'fast-gateway';

const DENIED = JSON.stringify({ message: 'Invalid API key in request' });

async function main(): Promise<void> {
  const consumers = new Map([[process.env.API_KEY ?? '', 'bench']]);
  const server = gateway({
    routes: [
      {
        prefix: '/ip',
        pathRegex: '',
        prefixRewrite: '/ip',
        target: `http://127.0.0.1:${process.env.UPSTREAM_PORT}`,
        hooks: {
          // returning true ends the request here (the hook has answered it)
          async onRequest(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
            const key = req.headers.apikey;
            const consumer = typeof key === 'string' ? consumers.get(key) : undefined;
            if (consumer !== undefined) {
              req.headers['x-consumer-username'] = consumer;
              return false;
            }
            res.writeHead(401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(DENIED) });
            res.end(DENIED);
            return true;
          },
        },
      },
    ],
  });
  const http = await server.start(0, '127.0.0.1');
  process.send?.({ port: (http.address() as AddressInfo).port });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

void main();
