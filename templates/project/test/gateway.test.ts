// The gateway as gatehouse.yaml configures it, moved to a free port: every extension loads and the
// demo route answers through the demo upstream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { createLogger, FileConfigStore, startGateway } from 'gatehouse-gateway';

// compiled to dist/test/: the project is two levels up
const root = join(__dirname, '..', '..');

/** A free loopback port (bound, then released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** gatehouse.yaml as the gateway reads it, listening on `port` (the demo upstream, this gateway, moves along). */
async function configOnPort(port: number): Promise<Record<string, unknown>> {
  const raw = await new FileConfigStore(join(root, 'gatehouse.yaml')).load();
  const listen = String((raw.gateway as { listen?: unknown } | undefined)?.listen ?? '127.0.0.1:9080');
  const config = JSON.parse(JSON.stringify(raw).replaceAll(listen, `127.0.0.1:${port}`)) as Record<string, unknown>;
  // extension paths are relative to gatehouse.yaml; this config has no file, so make them absolute
  const extensions = (config.extensions ?? []) as string[];
  config.extensions = extensions.map((e) => (e.startsWith('.') || isAbsolute(e) ? resolvePath(root, e) : e));
  return config;
}

test('gatehouse.yaml loads with every extension, and the demo route answers through the demo upstream', async (t) => {
  const port = await freePort();
  const config = await configOnPort(port);
  // initialConfig: the document whose `extensions:` are loaded (as `gatehouse start` reads the file)
  const gw = await startGateway({ config, initialConfig: config, listen: `127.0.0.1:${port}`, logger: createLogger({ level: 'warn' }) });
  t.after(() => gw.close(1000));
  const res = await fetch(`http://127.0.0.1:${port}/anything`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { message: 'hello from the demo upstream' });
});
