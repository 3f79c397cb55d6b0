// `npm start`: the demo upstream plus a gateway from examples/gatehouse.yaml, in one process.
// Real deployments run `gatehouse start -c gatehouse.yaml` against their own upstreams.
import { join } from 'node:path';
import { startDemoUpstream } from './demo-upstream';
import { startGateway } from '../core/gateway';
import { createLogger } from '../core/observe/log';
import { readConfigFile } from '../core/config/loader';

/**
 * The demo upstream listens where the config sends traffic: the port of the first 127.0.0.1 node
 * of its routes (9081 in examples/gatehouse.yaml). Editing the file is thus the one way to move it,
 * and the two cannot disagree. 9081 when no route has such a node.
 */
function demoUpstreamPort(doc: Record<string, unknown>): number {
  const routes = Array.isArray(doc.routes) ? (doc.routes as Array<{ upstream?: { nodes?: unknown } }>) : [];
  for (const r of routes) {
    const nodes = r.upstream?.nodes;
    // { "127.0.0.1:9081": 1 } or [{ host: 127.0.0.1, port: 9081 }]
    const list = Array.isArray(nodes) ? (nodes as Array<{ host?: unknown; port?: unknown }>) : Object.keys(nodes ?? {}).map((k) => ({ host: k.slice(0, k.lastIndexOf(':')), port: Number(k.slice(k.lastIndexOf(':') + 1)) }));
    const local = list.find((n) => n.host === '127.0.0.1' && typeof n.port === 'number');
    if (local) return local.port as number;
  }
  return 9081;
}

async function main(): Promise<void> {
  // the demo consumer's key comes from $env://DEMO_API_KEY; this is its documented demo default.
  // A key of your own is never printed: the hint lets the shell put it in
  const ownKey = process.env.DEMO_API_KEY !== undefined;
  process.env.DEMO_API_KEY ??= 'secret-key';
  const keyHint = ownKey ? `-H "apikey: $DEMO_API_KEY"` : `-H 'apikey: secret-key'`;
  const configPath = process.env.GATEHOUSE_CONFIG ?? join(__dirname, '..', '..', 'examples', 'gatehouse.yaml');
  const upstream = await startDemoUpstream(demoUpstreamPort(await readConfigFile(configPath)));
  const logger = createLogger();
  const gw = await startGateway({ configPath, logger });
  const { address, port } = gw.address;
  process.stdout.write(
    `\nGatehouse quickstart is running on http://${address}:${port}\n` +
      `  curl -i http://127.0.0.1:${port}/ip                          # 401: no key\n` +
      `  curl -i http://127.0.0.1:${port}/ip ${keyHint}  # 200 as consumer jack\n` +
      `  curl -i http://127.0.0.1:${port}/anything/hello?x=1\n` +
      `Config: ${configPath} (edit it: changes apply live). Ctrl-C stops.\n\n`,
  );
  const stop = () => {
    gw.close().finally(() => upstream.close(() => process.exit(0)));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: Error) => {
  process.stderr.write(`quickstart: ${err.message}\n`);
  process.exit(1);
});
