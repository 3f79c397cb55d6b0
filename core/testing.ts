// Test kit for extension authors: a real gateway in-process on a free port, with your plugins and
// providers registered, and a tiny echo upstream — so a plugin's test is ten lines.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock, Extension, Logger, Plugin, SecretProvider } from './contracts';
import { createLogger } from './observe/log';
import { FakeClock } from './secrets/fake-clock';
import { startGateway, type Gateway } from './gateway';
import { silentLogger } from './observe/log';

/** What the echo upstream saw of one request. */
export interface EchoedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A response as the test sees it. */
export interface TestResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
  /** The body parsed as JSON (throws when it is not JSON). */
  json<T = any>(): T;
}

export interface TestGateway {
  /** "http://127.0.0.1:<port>" of the gateway. */
  readonly url: string;
  readonly gateway: Gateway;
  /** The echo upstream: `node` ("127.0.0.1:<port>") for configs, and every request it received. */
  readonly upstream: { readonly node: string; readonly url: string; readonly requests: readonly EchoedRequest[] };
  /** Send a request to the gateway. @example await gw.request('/hello', { headers: { apikey: 'k' } }) */
  request(path: string, init?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<TestResponse>;
  /** Stop the gateway and the upstream. */
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  /**
   * The gatehouse config (as YAML would give it), or a function of the echo upstream's node
   * ("127.0.0.1:<port>") that returns it.
   * @example config: (upstream) => ({ routes: [{ id: 'r', uri: '/hi', plugins: { 'my-plugin': {} }, upstream: { nodes: { [upstream]: 1 } } }] })
   */
  readonly config: Record<string, unknown> | ((upstream: string) => Record<string, unknown>);
  /** Your plugins and providers (definePlugin / defineProvider results). */
  readonly extensions?: ReadonlyArray<Plugin | SecretProvider | Extension>;
  /** Logger; default silent. Pass `captureLogs()`'s logger to assert on log lines. */
  readonly logger?: Logger;
  /** A clock for the gateway (rotation grace, rate windows, token expiry); default the real one. */
  readonly clock?: Clock;
}

/**
 * A logger whose lines are kept, parsed, for assertions (no output).
 * @example const logs = captureLogs(); …startTestGateway({ logger: logs.logger, … }); assert(logs.lines.some((l) => l.msg === '…'));
 */
export function captureLogs(): { logger: Logger; readonly lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = [];
  const sink = {
    write(chunk: string) {
      leakTap()?.record('log', chunk);
      for (const l of chunk.split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, any>);
    },
  };
  return { logger: createLogger({ destination: sink as unknown as NodeJS.WritableStream, level: 'debug' }), lines };
}

/** The leak tap of this repository's test run (test/helpers/leak-tap.ts), when installed: captured lines are scanned for secrets too. */
function leakTap(): { record(stream: 'log', chunk: string): void } | undefined {
  return (globalThis as { [k: symbol]: { record(stream: 'log', chunk: string): void } | undefined })[Symbol.for('gatehouse.leak-tap')];
}

function asExtension(x: Plugin | SecretProvider | Extension): Extension {
  if ('kind' in x && (x.kind === 'plugin' || x.kind === 'provider')) return x as Extension;
  return typeof (x as Plugin).priority === 'number' ? { kind: 'plugin', plugin: x as Plugin } : { kind: 'provider', provider: x as SecretProvider };
}

/**
 * Boot a gateway on 127.0.0.1 (free port) with `extensions` and an echo upstream.
 * @throws GatehouseError when the config is invalid (with every error path)
 * @example
 * const gw = await startTestGateway({ extensions: [hello], config: (up) => ({ routes: [{ id: 'r', uri: '/', plugins: { hello: {} }, upstream: { nodes: { [up]: 1 } } }] }) });
 * const res = await gw.request('/');
 * assert.equal(res.headers.get('x-hello'), 'world');
 * await gw.close();
 */
export async function startTestGateway(opts: TestGatewayOptions): Promise<TestGateway> {
  const requests: EchoedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(seen);
      const text = JSON.stringify(seen);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const node = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const closeUpstream = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  let gateway: Gateway;
  try {
    const config = typeof opts.config === 'function' ? opts.config(node) : opts.config;
    // a FakeClock also drives the secret cache's timers, so tests can move time for both
    const timers = opts.clock instanceof FakeClock ? opts.clock : undefined;
    gateway = await startGateway({ config, listen: '127.0.0.1:0', logger: opts.logger ?? silentLogger(), clock: opts.clock, timers, extensions: (opts.extensions ?? []).map(asExtension) });
  } catch (err) {
    await closeUpstream();
    throw err;
  }
  const url = `http://127.0.0.1:${gateway.address.port}`;
  return {
    url,
    gateway,
    upstream: { node, url: `http://${node}`, requests },
    async request(path, init = {}) {
      const r = await fetch(url + path, { method: init.method ?? 'GET', headers: init.headers, body: init.body });
      const body = await r.text();
      return { status: r.status, headers: r.headers, body, json: () => JSON.parse(body) };
    },
    async close() {
      await gateway.close(1000);
      await closeUpstream();
    },
  };
}
