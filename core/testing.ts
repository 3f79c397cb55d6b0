// Test kit for extension authors (`gatehouse-gateway/testing`): a real gateway in-process on a free
// port, with your plugins and providers registered, an upstream that echoes what it got, a log
// capture and a fake clock — so a plugin's test is ten lines. This repository's own tests use the
// same kit (test/helpers/harness.ts only adds what drives processes and sockets).
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { resolve } from 'node:path';
import type { Clock, Extension, Logger, Plugin, ProviderServices, SecretProvider } from './contracts';
import { createLogger } from './observe/log';
import { FakeClock } from './secrets/fake-clock';
import { startGateway, type Gateway, type GatewayOptions } from './gateway';

export { FakeClock };

/** An HTTP server on 127.0.0.1 (free port) standing for an upstream. */
export interface Upstream {
  readonly server: Server;
  readonly port: number;
  /** "127.0.0.1:<port>": a node key for configs (`upstream: { nodes: { [node]: 1 } }`). */
  readonly node: string;
  /** "http://127.0.0.1:<port>" */
  readonly url: string;
  /** Requests seen, in order (method, url, headers). */
  readonly seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/**
 * Start an upstream on 127.0.0.1 (free port). Without `handler`, it answers every request with the
 * JSON `{ name, method, url, headers, bytes }` (`bytes`: the body's size) once the body is read.
 * @example const up = await startUpstream((req, res) => res.end('hi'));
 */
export async function startUpstream(handler?: (req: IncomingMessage, res: ServerResponse) => void, name = 'upstream'): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const h =
    handler ??
    ((req: IncomingMessage, res: ServerResponse) => {
      let bytes = 0;
      req.on('data', (d: Buffer) => (bytes += d.length));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ name, method: req.method, url: req.url, headers: req.headers, bytes }));
      });
    });
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    h(req, res);
  });
  const { port, node } = await listenOnLoopback(server);
  return {
    server,
    port,
    node,
    url: `http://${node}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * Start `server` listening on 127.0.0.1, on a free port.
 * @returns the port, and `node`: "127.0.0.1:<port>"
 */
export async function listenOnLoopback(server: NetServer): Promise<{ port: number; node: string }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { port, node: `127.0.0.1:${port}` };
}

/** What the echo upstream saw of one request. */
export interface EchoedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** The upstream of {@link startTestGateway}: it answers each request with the JSON of what it saw. */
export interface EchoUpstream extends Upstream {
  /** Every request received, body included. */
  readonly requests: readonly EchoedRequest[];
}

async function startEchoUpstream(): Promise<EchoUpstream> {
  const requests: EchoedRequest[] = [];
  const upstream = await startUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(seen);
      const text = JSON.stringify(seen);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  }, 'echo');
  return { ...upstream, requests };
}

/** Log lines kept in memory. */
export interface CapturedLogs {
  readonly logger: Logger;
  /** Every line, parsed (a line that is not JSON as `{ raw }`); pino's numeric `level` (30 info, 40 warn, 50 error). */
  readonly lines: Array<Record<string, any>>;
  /** Every line as written, joined by newlines. */
  text(): string;
}

/**
 * A logger whose lines are kept, parsed, for assertions (no output).
 * @param level the lowest level kept (default 'debug')
 * @example const logs = captureLogs(); …startTestGateway({ logger: logs.logger, … }); assert(logs.lines.some((l) => l.msg === '…'));
 */
export function captureLogs(level = 'debug'): CapturedLogs {
  const lines: Array<Record<string, any>> = [];
  const raw: string[] = [];
  const sink = {
    write(chunk: string) {
      scanForLeaks(chunk);
      for (const l of chunk.split('\n')) {
        if (!l) continue;
        raw.push(l);
        try {
          lines.push(JSON.parse(l) as Record<string, any>);
        } catch {
          lines.push({ raw: l });
        }
      }
    },
  };
  return { logger: createLogger({ destination: sink as unknown as NodeJS.WritableStream, level }), lines, text: () => raw.join('\n') };
}

/** The leak tap a test run may install (this repository's runner does: test/helpers/leak-tap.ts). */
interface LeakTap {
  record(stream: 'log', chunk: string): void;
  plant(source: string, value: string): void;
}

function leakTap(): LeakTap | undefined {
  return (globalThis as { [k: symbol]: LeakTap | undefined })[Symbol.for('gatehouse.leak-tap')];
}

/**
 * Have text that never reaches stdout (what a hand-written test logger keeps) scanned for planted
 * secrets, when the test run has a leak scan (this repository's runner has); otherwise nothing.
 * {@link captureLogs} does this for its own lines.
 */
export function scanForLeaks(text: string): void {
  leakTap()?.record('log', text);
}

/**
 * Mark secret values a test plants (a key in a fake Vault, a password in an env variable): when the
 * test run has a leak scan, the run fails if one of them shows up in any output. Otherwise nothing.
 * @example plantSecret('my-provider', 's3cr3t-value')
 */
export function plantSecret(source: string, ...values: readonly string[]): void {
  const tap = leakTap();
  for (const v of values) tap?.plant(source, v);
}

/**
 * Services for calling a provider's `create` directly, without a gateway.
 * @param opts.dir the folder relative paths resolve from (default the working directory)
 * @example const backend = await myProvider.create({ … }, providerServices());
 */
export function providerServices(opts: { logger?: Logger; clock?: Clock; dir?: string } = {}): ProviderServices {
  return { logger: opts.logger ?? captureLogs().logger, clock: opts.clock ?? { now: () => Date.now() }, resolvePath: (p) => resolve(opts.dir ?? process.cwd(), p) };
}

/** A response as the test sees it. */
export interface TestResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
  /** The body parsed as JSON (throws when it is not JSON). */
  json<T = any>(): T;
}

/** A gateway running in this process for a test, on 127.0.0.1 (free port). */
export interface GatewayUnderTest {
  /** "http://127.0.0.1:<port>" of the gateway. */
  readonly url: string;
  readonly port: number;
  readonly gateway: Gateway;
  /** Its log lines, unless a `logger` was given. */
  readonly logs: CapturedLogs;
  /** Send a request to the gateway. @example await gw.request('/hello', { headers: { apikey: 'k' } }) */
  request(path: string, init?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<TestResponse>;
  /** Stop the gateway (and the echo upstream of {@link startTestGateway}). */
  close(): Promise<void>;
}

/** What {@link startTestGateway} gives: a gateway and its echo upstream. */
export interface TestGateway extends GatewayUnderTest {
  /** The echo upstream: `node` ("127.0.0.1:<port>") for configs, and every request it received. */
  readonly upstream: EchoUpstream;
}

/** Your plugins and providers: definePlugin / defineProvider results. */
export type TestExtension = Plugin | SecretProvider | Extension;

/** Options of {@link bootTestGateway}: those of `startGateway`, with extensions as plain plugins and providers. */
export type BootOptions = Omit<Partial<GatewayOptions>, 'extensions'> & {
  readonly extensions?: readonly TestExtension[];
  /** Lowest level of the captured logs (default 'info'); ignored with `logger`. */
  readonly logLevel?: string;
};

export interface TestGatewayOptions {
  /**
   * The gatehouse config (as YAML would give it), or a function of the echo upstream's node
   * ("127.0.0.1:<port>") that returns it.
   * @example config: (upstream) => ({ routes: [{ id: 'r', uri: '/hi', plugins: { 'my-plugin': {} }, upstream: { nodes: { [upstream]: 1 } } }] })
   */
  readonly config: Record<string, unknown> | ((upstream: string) => Record<string, unknown>);
  readonly extensions?: readonly TestExtension[];
  /** Logger; default a {@link captureLogs} one (the gateway's `logs`). */
  readonly logger?: Logger;
  /** A clock for the gateway (rotation grace, rate windows, token expiry); default the real one. A {@link FakeClock} also drives the secret cache's timers. */
  readonly clock?: Clock;
}

function asExtension(x: TestExtension): Extension {
  if ('kind' in x && (x.kind === 'plugin' || x.kind === 'provider')) return x as Extension;
  return typeof (x as Plugin).priority === 'number' ? { kind: 'plugin', plugin: x as Plugin } : { kind: 'provider', provider: x as SecretProvider };
}

/**
 * Boot a gateway on 127.0.0.1 (free port) from a config and any other `startGateway` options (a
 * config store, an Admin API listener), without an upstream of its own.
 * @throws GatehouseError when the config is invalid (with every error path)
 * @example const gw = await bootTestGateway({ routes: [...] }, { extensions: [myPlugin] });
 */
export async function bootTestGateway(config: Record<string, unknown> | undefined, options: BootOptions = {}): Promise<GatewayUnderTest> {
  const { extensions, logLevel, ...rest } = options;
  const logs = captureLogs(logLevel ?? 'info');
  const gateway = await startGateway({
    config,
    logger: logs.logger,
    listen: '127.0.0.1:0',
    ...rest,
    ...(extensions ? { extensions: extensions.map(asExtension) } : {}),
  });
  const url = `http://127.0.0.1:${gateway.address.port}`;
  return {
    url,
    port: gateway.address.port,
    gateway,
    logs,
    async request(path, init = {}) {
      const r = await fetch(url + path, { method: init.method ?? 'GET', headers: init.headers, body: init.body });
      const body = await r.text();
      return { status: r.status, headers: r.headers, body, json: () => JSON.parse(body) };
    },
    close: () => gateway.close(1000),
  };
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
  const upstream = await startEchoUpstream();
  let booted: GatewayUnderTest;
  try {
    const config = typeof opts.config === 'function' ? opts.config(upstream.node) : opts.config;
    // a FakeClock also drives the secret cache's timers, so tests can move time for both
    const timers = opts.clock instanceof FakeClock ? opts.clock : undefined;
    booted = await bootTestGateway(config, { extensions: opts.extensions, clock: opts.clock, timers, ...(opts.logger ? { logger: opts.logger } : {}) });
  } catch (err) {
    await upstream.close();
    throw err;
  }
  return {
    ...booted,
    upstream,
    async close() {
      await booted.close();
      await upstream.close();
    },
  };
}

/** Sleep for `ms` milliseconds. */
export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` every `stepMs` until it holds; @returns the ms it took. Fails naming `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 25): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(stepMs);
  }
}
