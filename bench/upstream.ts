// Bench upstream (runs in its own child process): a node:http server answering a fixed ~100-byte JSON body.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The body every request gets; fixed so both targets move exactly the same bytes. */
export const UPSTREAM_BODY = Buffer.from(JSON.stringify({ service: 'gatehouse-bench-upstream', ok: true, items: [1, 2, 3, 4, 5], note: 'fixed response body' }));

// Built once: the upstream must cost the same per request in both targets, and as little as possible.
const HEADERS = { 'content-type': 'application/json', 'content-length': String(UPSTREAM_BODY.length) };

function answer(req: IncomingMessage, res: ServerResponse): void {
  // drain any request body so the keep-alive connection stays usable
  req.resume();
  res.writeHead(200, HEADERS);
  res.end(UPSTREAM_BODY);
}

function main(): void {
  const server = createServer(answer);
  server.listen(0, '127.0.0.1', function reportPort() {
    const { port } = server.address() as AddressInfo;
    process.send?.({ port });
  });
  // The IPC channel closes when the bench process dies in any way (even SIGKILL): never outlive it.
  process.on('disconnect', function parentGone() {
    process.exit(0);
  });
  process.on('SIGTERM', function stop() {
    process.exit(0);
  });
}

if (require.main === module) main();
