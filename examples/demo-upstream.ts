// A tiny echo server used as the quickstart's upstream: answers JSON describing the request.
import { createServer, type Server } from 'node:http';

/** Start the echo upstream. @param port default 9081 */
export function startDemoUpstream(port = 9081, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify(
        {
          method: req.method,
          url: req.url,
          headers: req.headers,
          data: Buffer.concat(chunks).toString('utf8'),
          origin: req.headers['x-real-ip'] ?? req.socket.remoteAddress,
        },
        null,
        2,
      );
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body + '\n');
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
