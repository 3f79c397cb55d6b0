// A tiny echo server used as the quickstart's upstream: /ip answers the client address (as
// httpbin), everything else JSON describing the request.
import { createServer, type Server } from 'node:http';

/** Start the demo upstream. @param port default 9081 */
export function startDemoUpstream(port = 9081, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/ip') {
      // like httpbin's /ip
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ origin: req.headers['x-real-ip'] ?? req.socket.remoteAddress }) + '\n');
      return;
    }
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

// `node dist/examples/demo-upstream.js [--port 9081]`: the demo upstream alone, for the Vault walkthrough
if (require.main === module) {
  const i = process.argv.indexOf('--port');
  startDemoUpstream(i === -1 ? 9081 : Number(process.argv[i + 1])).then(
    (s) => process.stdout.write(`demo upstream listening on http://127.0.0.1:${(s.address() as { port: number }).port}\n`),
    (err: Error) => {
      process.stderr.write(`demo upstream: ${err.message}\n`);
      process.exit(1);
    },
  );
}
