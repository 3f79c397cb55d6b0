// Streaming through the gateway: 1 GiB each way with flat memory (gateway in its own process, RSS
// read from /proc), and client aborts that must reach the upstream without leaking connections.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { stringify as toYaml } from 'yaml';
import { definePlugin } from '../core/sdk';
import { bootGateway, gatewayFor, upstreamFor, delay, freePort, startGatehouse, tempDir, type Upstream } from './helpers/harness';

const GiB = 1024 * 1024 * 1024;
const MB = 1024 * 1024;
const CHUNK = 256 * 1024;
/** RSS growth of the gateway process allowed while 1 GiB streams through it. */
const RSS_BUDGET = 150 * MB;

// ---------------------------------------------------------------------------------------------
// helpers

/**
 * An endless-looking byte source: chunk i is a fixed random block stamped with i, so the data is
 * not periodic, is never held in memory at once, and both ends can hash it.
 */
class Pattern {
  private readonly block = randomBytes(CHUNK);
  private index = 0;
  readonly hash = createHash('sha256');
  produced = 0;
  constructor(private readonly total: number) {}
  /** The next chunk, or null at the end. */
  next(): Buffer | null {
    const left = this.total - this.produced;
    if (left <= 0) return null;
    const b = Buffer.allocUnsafe(Math.min(CHUNK, left));
    this.block.copy(b, 0, 0, b.length);
    b.writeUInt32BE(this.index++ >>> 0, 0);
    this.produced += b.length;
    this.hash.update(b);
    return b;
  }
}

/** Write `pattern` to `res` with backpressure, then end it. */
function pump(pattern: Pattern, out: ServerResponse | ClientRequest): void {
  const go = (): void => {
    for (;;) {
      if (out.destroyed) return;
      const b = pattern.next();
      if (b === null) return void out.end();
      if (!out.write(b)) return void out.once('drain', go);
    }
  };
  go();
}

const upstream = upstreamFor;
const gateway = gatewayFor;

/** The gateway as its own process (`gatehouse start -c <tmp yaml>`) on a free loopback port. */
async function gatewayProcess(t: TestContext, routes: unknown[]): Promise<{ url: string; pid: number; rss: () => number }> {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, toYaml({ gateway: { listen: `127.0.0.1:${port}`, access_log: false, log_level: 'warn', drain_timeout: 1 }, routes }));
  const proc = await startGatehouse(file, port, { GATEHOUSE_LOG_LEVEL: 'warn' });
  t.after(() => proc.kill());
  const pid = proc.child.pid!;
  return {
    url: `http://127.0.0.1:${port}`,
    pid,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024,
  };
}

/** Samples `rss` every 50 ms until stopped; reports the peak. */
function rssSampler(rss: () => number): { stop(): number } {
  let peak = rss();
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rss());
    } catch {
      // the process is gone: the test fails on its own
    }
  }, 50);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rss());
    },
  };
}

/** Resolve when `cond()` holds, polling every 10 ms; reject after `ms`. */
async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(10);
  }
}

const connections = (u: Upstream) => new Promise<number>((resolve, reject) => u.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

// ---------------------------------------------------------------------------------------------
// 1 GiB through a gateway process

test('streams a 1 GiB download through the gateway byte-exact with flat memory', { timeout: 120_000 }, async (t) => {
  let served: Pattern | undefined;
  const up = await upstream(t, (req, res) => {
    if (req.url !== '/big') return void res.end('warm');
    served = new Pattern(GiB);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(GiB) });
    pump(served, res);
  });
  const gw = await gatewayProcess(t, [{ id: 'dl', uri: '/*', upstream: { nodes: { [up.node]: 1 } } }]);
  assert.equal(await (await request(`${gw.url}/warm`)).body.text(), 'warm');
  const base = gw.rss();
  const sampler = rssSampler(gw.rss);
  const started = Date.now();
  const r = await request(`${gw.url}/big`);
  assert.equal(r.statusCode, 200);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of r.body) {
    bytes += chunk.length;
    hash.update(chunk);
  }
  const seconds = (Date.now() - started) / 1000;
  const growth = sampler.stop() - base;
  t.diagnostic(`download: 1 GiB in ${seconds.toFixed(1)} s, gateway RSS ${(base / MB).toFixed(0)} MB at rest, peak growth ${(growth / MB).toFixed(1)} MB`);
  assert.equal(bytes, GiB);
  assert.equal(hash.digest('hex'), served!.hash.digest('hex'));
  assert.ok(growth < RSS_BUDGET, `gateway RSS grew by ${(growth / MB).toFixed(1)} MB`);
});

test('streams a 1 GiB upload through the gateway byte-exact with flat memory', { timeout: 120_000 }, async (t) => {
  const up = await upstream(t, (req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
    });
    req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
  });
  const gw = await gatewayProcess(t, [{ id: 'ul', uri: '/*', upstream: { nodes: { [up.node]: 1 } } }]);
  assert.equal(JSON.parse(await (await request(`${gw.url}/warm`, { method: 'POST', body: 'x' })).body.text()).bytes, 1);
  const base = gw.rss();
  const sampler = rssSampler(gw.rss);
  const started = Date.now();
  const sent = new Pattern(GiB);
  const body = new Readable({
    highWaterMark: CHUNK,
    read() {
      this.push(sent.next());
    },
  });
  const r = await request(`${gw.url}/big`, { method: 'PUT', body, headers: { 'content-length': String(GiB) } });
  const got = (await r.body.json()) as { bytes: number; sha256: string };
  const seconds = (Date.now() - started) / 1000;
  const growth = sampler.stop() - base;
  t.diagnostic(`upload: 1 GiB in ${seconds.toFixed(1)} s, gateway RSS ${(base / MB).toFixed(0)} MB at rest, peak growth ${(growth / MB).toFixed(1)} MB`);
  assert.equal(r.statusCode, 200);
  assert.equal(got.bytes, GiB);
  assert.equal(got.sha256, sent.hash.digest('hex'));
  assert.ok(growth < RSS_BUDGET, `gateway RSS grew by ${(growth / MB).toFixed(1)} MB`);
});

test('an asynchronous response hook holds the upstream body back instead of buffering it', { timeout: 60_000 }, async (t) => {
  let served: Pattern | undefined;
  let writtenWhenHookDone = -1;
  const up = await upstream(t, (_req, res) => {
    served = new Pattern(512 * MB);
    res.writeHead(200, { 'content-length': String(512 * MB) });
    pump(served, res);
  });
  const slowHeaders = definePlugin({
    name: 'slow-headers',
    version: '1.0.0',
    priority: 1,
    schema: { type: 'object' },
    create: () => ({
      response: async function slowHeaders(ctx) {
        await delay(700);
        writtenWhenHookDone = served!.produced;
        ctx.setResponseHeader('x-checked', 'yes');
      },
    }),
  });
  const g = await bootGateway({ routes: [{ id: 'hook', uri: '/*', plugins: { 'slow-headers': {} }, upstream: { nodes: { [up.node]: 1 } } }] }, { extensions: [{ kind: 'plugin', plugin: slowHeaders }] });
  t.after(() => g.close());
  const r = await request(`${g.url}/big`);
  assert.equal(r.headers['x-checked'], 'yes');
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of r.body) {
    bytes += chunk.length;
    hash.update(chunk);
  }
  assert.equal(bytes, 512 * MB);
  assert.equal(hash.digest('hex'), served!.hash.digest('hex'));
  // socket buffers hold a few MB; without backpressure the upstream would have sent hundreds
  assert.ok(writtenWhenHookDone < 32 * MB, `the upstream sent ${(writtenWhenHookDone / MB).toFixed(0)} MB while the hook ran`);
});

// ---------------------------------------------------------------------------------------------
// client aborts

/** Upstream for abort tests: /down streams without end, /up?id reads the body; records when each closes. */
function abortUpstream() {
  const closed: Array<{ kind: 'down' | 'up'; at: number; complete: boolean }> = [];
  const received = new Map<string, number>();
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/down') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      pump(new Pattern(64 * GiB), res);
      res.on('close', () => closed.push({ kind: 'down', at: Date.now(), complete: res.writableFinished }));
    } else {
      const id = req.url!;
      received.set(id, 0);
      req.on('data', (d: Buffer) => received.set(id, received.get(id)! + d.length));
      req.on('end', () => res.end('complete'));
      req.on('close', () => closed.push({ kind: 'up', at: Date.now(), complete: req.complete }));
    }
  };
  return { handler, closed, received: (id: string) => received.get(id) ?? 0 };
}

/**
 * Gateway config for abort tests. undici 7 opens one spare connection after a running request is
 * aborted (nodejs/undici#5845: the aborted request is re-queued and a socket is connected for it
 * before it is dropped); that socket idles in the pool until the keep-alive idle timeout. A 1 s
 * idle timeout lets "no connection left" be checked within seconds.
 */
function abortConfig(up: Upstream): Record<string, unknown> {
  return { routes: [{ id: 'ab', uri: '/*', upstream: { nodes: { [up.node]: 1 }, keepalive_pool: { idle_timeout: 1 } } }] };
}

/** A download through node:http that destroys its connection after `after` bytes; resolves with the time it did. */
function abortedDownload(url: string, after: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/down`, { agent: false }, (res) => {
      let got = 0;
      res.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= after && !req.destroyed) {
          req.destroy();
          resolve(Date.now());
        }
      });
    });
    req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
    req.end();
  });
}

let uploads = 0;

/** An upload through node:http that destroys its connection once the upstream received `after` bytes of it. */
function abortedUpload(url: string, upstreamReceived: (id: string) => number, after: number): Promise<number> {
  const id = `/up?n=${++uploads}`;
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}${id}`, { method: 'PUT', agent: false, headers: { 'content-length': String(64 * GiB) } });
    req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
    req.on('response', () => reject(new Error('the upload was answered before it was aborted')));
    pump(new Pattern(64 * GiB), req);
    const check = setInterval(() => {
      if (upstreamReceived(id) >= after) {
        clearInterval(check);
        req.destroy();
        resolve(Date.now());
      }
    }, 5);
  });
}

test('a client abort mid-download closes the upstream response within a second', async (t) => {
  const a = abortUpstream();
  const up = await upstream(t, a.handler);
  const g = await gateway(t, abortConfig(up));
  const abortedAt = await abortedDownload(g.url, 4 * MB);
  await until(() => a.closed.length === 1, 2000, 'the upstream response to close');
  const c = a.closed[0];
  assert.equal(c.kind, 'down');
  assert.equal(c.complete, false);
  assert.ok(c.at - abortedAt < 1000, `upstream closed ${c.at - abortedAt} ms after the client left`);
  await until(async () => (await connections(up)) === 0, 3000, 'the upstream connections to close');
});

test('a client abort mid-upload aborts the upstream request within a second', async (t) => {
  const a = abortUpstream();
  const up = await upstream(t, a.handler);
  const g = await gateway(t, abortConfig(up));
  const abortedAt = await abortedUpload(g.url, a.received, 4 * MB);
  await until(() => a.closed.length === 1, 2000, 'the upstream request to close');
  const c = a.closed[0];
  assert.equal(c.kind, 'up');
  assert.equal(c.complete, false, 'the upstream must see an aborted request, not a complete body');
  assert.ok(c.at - abortedAt < 1000, `upstream request closed ${c.at - abortedAt} ms after the client left`);
  await until(async () => (await connections(up)) === 0, 3000, 'the upstream connections to close');
});

test('many aborted downloads and uploads leave no upstream connection or in-flight request behind', { timeout: 60_000 }, async (t) => {
  const a = abortUpstream();
  const up = await upstream(t, a.handler);
  const g = await gateway(t, abortConfig(up));
  let peak = 0;
  const watcher = setInterval(async () => (peak = Math.max(peak, await connections(up))), 5);
  t.after(() => clearInterval(watcher));
  for (let round = 0; round < 5; round++) {
    // eight at once: four downloads cut after 1 MB, four uploads cut after 1 MB reached the upstream
    const downloads = Array.from({ length: 4 }, () => abortedDownload(g.url, 1 * MB));
    const uploads = Array.from({ length: 4 }, () => abortedUpload(g.url, a.received, 1 * MB));
    await Promise.all([...downloads, ...uploads]);
  }
  clearInterval(watcher);
  assert.ok(peak >= 4, `the upstream should have held several connections at once (peak ${peak})`);
  await until(() => a.closed.length === 40, 3000, `all 40 upstream exchanges to close (${a.closed.length})`);
  assert.ok(a.closed.every((c) => !c.complete), 'every upstream exchange was cut short');
  await until(async () => (await connections(up)) === 0, 3000, 'upstream connections to drop to 0');
  await until(() => g.gw.snapshot.inflight === 0, 3000, 'in-flight requests to drop to 0');
});
