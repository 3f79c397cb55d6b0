// `npm start`: the demo upstream plus a gateway from examples/gatehouse.yaml, in one process.
// Real deployments run `gatehouse start -c gatehouse.yaml` against their own upstreams.
import { join } from 'node:path';
import { startDemoUpstream } from './demo-upstream';
import { startGateway } from '../core/gateway';
import { createLogger } from '../core/log';

async function main(): Promise<void> {
  // the demo consumer's key comes from $env://DEMO_API_KEY; this is its documented demo default.
  // A key of your own is never printed: the hint lets the shell put it in
  const ownKey = process.env.DEMO_API_KEY !== undefined;
  process.env.DEMO_API_KEY ??= 'secret-key';
  const keyHint = ownKey ? `-H "apikey: $DEMO_API_KEY"` : `-H 'apikey: secret-key'`;
  const configPath = process.env.GATEHOUSE_CONFIG ?? join(__dirname, '..', '..', 'examples', 'gatehouse.yaml');
  const upstream = await startDemoUpstream(Number(process.env.DEMO_UPSTREAM_PORT ?? 9081));
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
