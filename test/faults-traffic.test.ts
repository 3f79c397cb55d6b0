// Faults under concurrent load against a `gatehouse start` process: upstreams that refuse, reset
// or stall while many clients send requests; clients that abort uploads and downloads by the
// hundred; an invalid config file written under load; Admin API writes racing each other and the
// traffic. Each test asserts the exact statuses and then that nothing is left behind: every client
// request settled within a bound, the gateway process holds no client or upstream socket once the
// clients are gone (read from /proc), the upstreams hold none, and /metrics counted every request
// as finished (so none is still in flight).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import {
  delay,
  eventually,
  freePort,
  refusedPort,
  rssOf,
  startGatehouse,
  startTcpServer,
  tcpSocketsOf,
  tempDir,
  upstreamFor,
  waitForPort,
  type GatehouseProcess,
  type TcpServer,
  type Upstream,
} from './helpers/harness';

const ADMIN_KEY = 'faults-traffic-admin-key';
/** No client request may take longer than this; one that does is a hang. */
const BOUND_MS = 15_000;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// helpers

interface Gh {
  readonly proc: GatehouseProcess;
  readonly pid: number;
  readonly port: number;
  /** "http://127.0.0.1:<proxy port>" */
  readonly url: string;
  /** "http://127.0.0.1:<admin port>" */
  readonly admin: string;
  /** The config file it watches. */
  readonly file: string;
  /** The config file text for these data sections (same ports and admin key), to edit the file with. */
  doc(data: Record<string, unknown>, gateway?: Record<string, unknown>): string;
}

/** `gatehouse start` on free loopback ports with an Admin API, from `data` (routes, upstreams). */
async function gatehouse(t: TestContext, data: Record<string, unknown>, gateway: Record<string, unknown> = {}): Promise<Gh> {
  const dir = tempDir('gatehouse-faults-');
  const port = await freePort();
  const adminPort = await freePort();
  const file = join(dir, 'gatehouse.yaml');
  const doc = (d: Record<string, unknown>, g: Record<string, unknown> = gateway) =>
    JSON.stringify({ gateway: { listen: `127.0.0.1:${port}`, access_log: false, log_level: 'warn', drain_timeout: 1, ...g }, admin: { key: ADMIN_KEY, listen: `127.0.0.1:${adminPort}` }, ...d }, null, 2);
  writeFileSync(file, doc(data));
  const proc = await startGatehouse(file, port);
  t.after(async () => {
    await proc.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  await waitForPort(adminPort);
  return { proc, pid: proc.child.pid!, port, url: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${adminPort}`, file, doc };
}

/** Connections from clients the gateway process holds (any state but LISTEN). */
const clientSockets = (gh: Gh) => tcpSocketsOf(gh.pid).filter((s) => s.localPort === gh.port && s.state !== 'LISTEN');
/** Connections the gateway process holds to the given upstream ports. */
const upstreamSockets = (gh: Gh, ports: readonly number[]) => tcpSocketsOf(gh.pid).filter((s) => ports.includes(s.remotePort));

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** The gateway's /metrics (Prometheus text), parsed. */
async function metrics(gh: Gh): Promise<Sample[]> {
  const agent = new Agent();
  try {
    const r = await request(`${gh.admin}/metrics`, { dispatcher: agent });
    assert.equal(r.statusCode, 200);
    const out: Sample[] = [];
    for (const line of (await r.body.text()).split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) continue;
      const labels: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
      out.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return out;
  } finally {
    await agent.close();
  }
}

/** Sum of the samples named `name` whose labels include `match`. */
function total(samples: readonly Sample[], name: string, match: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}


/** Run `job(0..count-1)` with at most `concurrency` at once. */
async function pool<T>(count: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(count, concurrency) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await job(i);
      }
    }),
  );
  return out;
}

interface Outcome {
  /** 0: no response head */
  readonly status: number;
  readonly body: string;
  /** Error code while waiting for the head or reading the body; null when the body ended. */
  readonly error: string | null;
  readonly ms: number;
}

const errorCode = (err: unknown) => (err as { code?: string }).code ?? (err as Error).name;
/** Errors a client sees only when it gave up waiting: a hang, not an answer. */
const GAVE_UP = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'AbortError', 'TimeoutError']);

/** One request, bounded by BOUND_MS. `onHead` runs once, when the first body chunk arrived. */
async function send(agent: Agent, url: string, o: { method?: 'GET' | 'POST'; body?: Buffer; onHead?: () => void } = {}): Promise<Outcome> {
  const t0 = Date.now();
  let status = 0;
  try {
    const r = await request(url, { method: o.method ?? 'GET', body: o.body, dispatcher: agent, headersTimeout: BOUND_MS, bodyTimeout: BOUND_MS, signal: AbortSignal.timeout(BOUND_MS) });
    status = r.statusCode;
    const chunks: Buffer[] = [];
    let first = true;
    for await (const c of r.body) {
      chunks.push(c as Buffer);
      if (first) o.onHead?.();
      first = false;
    }
    return { status, body: Buffer.concat(chunks).toString('latin1'), error: null, ms: Date.now() - t0 };
  } catch (err) {
    return { status, body: '', error: errorCode(err), ms: Date.now() - t0 };
  }
}

/** Tally of outcomes, e.g. { "200": 40, "502": 12, "200+UND_ERR_SOCKET": 3 }. */
function tally(outs: readonly Outcome[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const o of outs) {
    const k = o.error === null ? String(o.status) : `${o.status}+${o.error}`;
    t[k] = (t[k] ?? 0) + 1;
  }
  return t;
}

/**
 * Read one HTTP/1.1 request (head, then a Content-Length or chunked body) from a raw socket, then
 * call `done` with the request target. For upstreams that misbehave once the request is in.
 */
function onRequest(socket: Socket, done: (target: string) => void): void {
  let buf = Buffer.alloc(0);
  const onData = (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    const end = buf.indexOf('\r\n\r\n');
    if (end === -1) return;
    const head = buf.subarray(0, end).toString('latin1');
    const body = buf.length - end - 4;
    const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
    if (cl ? body < Number(cl[1]) : chunked && !buf.subarray(end).includes('\r\n0\r\n\r\n')) return;
    socket.off('data', onData);
    done(head.split(' ')[1]);
  };
  socket.on('data', onData);
}

async function tcpFor(t: TestContext, onConnection: (socket: Socket) => void): Promise<TcpServer> {
  const s = await startTcpServer(onConnection);
  t.after(() => s.close());
  return s;
}

const connections = (u: Upstream) => new Promise<number>((resolve, reject) => u.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

/** Log lines of failed upstream attempts of one route. */
const failureLines = (gh: Gh, route: string) => gh.proc.logLines().filter((l) => l.msg === 'upstream request failed' && l.route === route);

// ---------------------------------------------------------------------------------------------
// 1. upstream faults under load

type Fault = 'refused' | 'reset-head' | 'reset-body' | 'slow-head' | 'slow-body';
const FAULTS: readonly Fault[] = ['refused', 'reset-head', 'reset-body', 'slow-head', 'slow-body'];

test('refused, reset, slow-header and slow-body upstreams under 400 concurrent requests: retries reach the healthy node, the rest get exact 502/504 or a cut body, nothing left hanging', { timeout: 120_000 }, async (t) => {
  const PER = 40; // requests per route; one route per fault and method
  const READ_S = 3;
  const pad = 'h'.repeat(2000);
  const healthy = await upstreamFor(t, (req, res) => {
    let bytes = 0;
    req.on('data', (d: Buffer) => (bytes += d.length));
    req.on('end', () => res.end(JSON.stringify({ name: 'healthy', method: req.method, url: req.url, bytes, pad })));
  }, 'healthy');
  const refused = await refusedPort();
  // answers part of a status line, then resets the connection
  const resetHead = await tcpFor(t, (s) =>
    onRequest(s, () => {
      s.write('HTTP/1.1 200 OK\r\nContent-Ty');
      setImmediate(() => s.resetAndDestroy());
    }),
  );
  // answers the head and half the body, then resets when the test says so: once the client has
  // the head, so the reset certainly comes after it
  const held = new Map<string, Socket>();
  const resetBody = await tcpFor(t, (s) =>
    onRequest(s, (target) => {
      held.set(target, s);
      s.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2000\r\n\r\n${'r'.repeat(1000)}`);
    }),
  );
  const resetNow = (target: string) => {
    const s = held.get(target);
    held.delete(target);
    s?.resetAndDestroy();
  };
  // takes the request, never answers
  const slowHead = await upstreamFor(t, (req) => req.resume(), 'slow-head');
  // answers the head and half the body, then nothing
  const slowBody = await upstreamFor(t, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2000' });
    res.write('s'.repeat(1000));
  }, 'slow-body');
  const faulty: Record<Fault, string> = { refused: `127.0.0.1:${refused}`, 'reset-head': resetHead.node, 'reset-body': resetBody.node, 'slow-head': slowHead.node, 'slow-body': slowBody.node };

  // one route (so one balancer) per fault and method: round robin alternates the first attempts
  // strictly (a retry's pick leaves the rotation as it was), so exactly half meet the fault
  const routes = FAULTS.flatMap((f) =>
    ['get', 'post'].map((m) => ({
      id: `${f}-${m}`,
      uri: `/${f}-${m}/*`,
      upstream: {
        nodes: { [faulty[f]]: 1, [healthy.node]: 1 },
        // read: the fault of the slow nodes; long elsewhere, so a loaded machine cannot turn a
        // healthy node's answer into a 504
        timeout: { connect: 5, send: 5, read: f.startsWith('slow') ? READ_S : 30 },
        keepalive_pool: { idle_timeout: 1 },
        // the faulty node stays in rotation whatever it does
        checks: { passive: { failures: 1_000_000 } },
      },
    })),
  );
  const gh = await gatehouse(t, { routes });
  const upstreamPorts = [healthy.port, resetHead.port, resetBody.port, slowHead.port, slowBody.port];

  const agent = new Agent({ connections: 100 });
  const body = randomBytes(8 * 1024);
  const peak = { clients: 0, upstreams: 0 };
  const sampler = setInterval(() => {
    peak.clients = Math.max(peak.clients, clientSockets(gh).length);
    peak.upstreams = Math.max(peak.upstreams, upstreamSockets(gh, upstreamPorts).length);
  }, 100);
  t.after(() => clearInterval(sampler));
  const started = Date.now();
  const out = new Map<string, Outcome[]>();
  await Promise.all(
    routes.map(async ({ id }) => {
      const post = id.endsWith('-post');
      out.set(
        id,
        await pool(PER, 6, (i) => {
          const target = `/${id}/${i}`;
          const onHead = id.startsWith('reset-body') ? () => resetNow(target) : undefined;
          return send(agent, gh.url + target, post ? { method: 'POST', body, onHead } : { onHead });
        }),
      );
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  clearInterval(sampler);
  const all = [...out.values()].flat();
  const healthySeen = (id: string) => healthy.seen.filter((s) => s.url.startsWith(`/${id}/`)).length;
  const full = (o: Outcome) => o.error === null && o.status === 200 && JSON.parse(o.body).name === 'healthy' && JSON.parse(o.body).pad === pad;
  const cut = (o: Outcome) => o.status === 200 && o.error !== null && !GAVE_UP.has(o.error);

  // nothing hung: every request settled, well within the bound
  const slowest = Math.max(...all.map((o) => o.ms));
  assert.deepEqual(all.filter((o) => o.error !== null && GAVE_UP.has(o.error)).map((o) => o.error), [], 'client requests that hung');
  const slowestBy = Object.fromEntries([...out].map(([id, outs]) => [id, Math.max(...outs.map((o) => o.ms))]));
  assert.ok(slowest < BOUND_MS, `slowest requests (ms) per route: ${JSON.stringify(slowestBy)}`);

  const H = PER / 2;
  // a reset reads as ECONNRESET, or as "other side closed" when the partial data was read first
  const RESET = ['ECONNRESET', 'UND_ERR_SOCKET'];
  /** Per route: what the clients got, and the failed attempts the gateway logged as [code, retry]. */
  const expect: Record<string, { tally: Record<string, number>; ok: (o: Outcome) => boolean; lines: [readonly string[], boolean]; healthy: number }> = {
    // connection errors are retried for every method, a body included
    'refused-get': { tally: { 200: PER }, ok: full, lines: [['ECONNREFUSED'], true], healthy: PER },
    'refused-post': { tally: { 200: PER }, ok: full, lines: [['ECONNREFUSED'], true], healthy: PER },
    // reset before the head: a GET is retried; a POST may have reached the upstream: 502, never sent twice
    'reset-head-get': { tally: { 200: PER }, ok: full, lines: [RESET, true], healthy: PER },
    'reset-head-post': { tally: { 200: H, 502: H }, ok: (o) => full(o) || o.body === '{"message":"502 Bad Gateway"}', lines: [RESET, false], healthy: H },
    // no head within timeout.read: a GET is retried then, a POST gets 504
    'slow-head-get': { tally: { 200: PER }, ok: full, lines: [['UND_ERR_HEADERS_TIMEOUT'], true], healthy: PER },
    'slow-head-post': { tally: { 200: H, 504: H }, ok: (o) => full(o) || (o.body === '{"message":"504 Gateway Timeout"}' && o.ms >= READ_S * 1000 - 100), lines: [['UND_ERR_HEADERS_TIMEOUT'], false], healthy: H },
  };
  // the head is already with the client when the upstream resets or stalls mid-body: the response
  // is cut short (the client sees the connection end early), for GET and POST alike
  for (const id of ['reset-body-get', 'reset-body-post']) expect[id] = { tally: { 200: H, [`200+${out.get(id)!.find(cut)?.error}`]: H }, ok: (o) => full(o) || cut(o), lines: [RESET, false], healthy: H };
  for (const id of ['slow-body-get', 'slow-body-post']) expect[id] = { tally: { 200: H, [`200+${out.get(id)!.find(cut)?.error}`]: H }, ok: (o) => full(o) || (cut(o) && o.ms >= READ_S * 1000 - 100), lines: [['UND_ERR_BODY_TIMEOUT'], false], healthy: H };

  // log lines come through a pipe a little after the responses: give the last ones a moment
  await eventually('every failed attempt is in the log', () => routes.every(({ id }) => failureLines(gh, id).length >= H), 3000).catch(() => undefined);
  const m = await metrics(gh);
  const codes: Record<string, string> = {};
  for (const { id } of routes) {
    const e = expect[id];
    const outs = out.get(id)!;
    const lines = failureLines(gh, id);
    codes[id] = [...new Set(lines.map((l) => l.code))].join('/');
    assert.deepEqual(tally(outs), e.tally, `${id}: statuses; failed attempts ${JSON.stringify(lines.map((l) => [l.upstream === healthy.node ? 'healthy' : 'faulty', l.code, l.retry]))}`);
    assert.deepEqual(outs.filter((o) => !e.ok(o)), [], `${id}: responses`);
    const node = faulty[id.replace(/-(get|post)$/, '') as Fault];
    assert.deepEqual(
      lines.map((l) => [l.upstream, e.lines[0].includes(l.code) ? 'expected code' : l.code, l.retry]),
      Array.from({ length: H }, () => [node, 'expected code', e.lines[1]]),
      `${id}: failed attempts`,
    );
    assert.equal(healthySeen(id), e.healthy, `${id}: requests the healthy node got`);
    // every request finished inside the gateway (none in flight); each failed attempt was counted
    assert.equal(total(m, 'gatehouse_http_requests_total', { route: id }), PER, `${id}: finished requests`);
    // counted with the status the clients got (a response the upstream cut short is not a client's 499)
    for (const st of new Set(outs.map((o) => String(o.status)))) assert.equal(total(m, 'gatehouse_http_requests_total', { route: id, status: st }), outs.filter((o) => String(o.status) === st).length, `${id}: counted as ${st}`);
    assert.equal(total(m, 'gatehouse_upstream_errors_total', { route: id }), H, `${id}: counted failures`);
  }
  assert.equal(total(m, 'gatehouse_http_requests_total', { status: '499' }), 0);
  // the faulty nodes got exactly the attempts logged: nothing was sent to them twice
  assert.deepEqual([resetHead.accepted(), resetBody.accepted(), slowHead.seen.length, slowBody.seen.length], [PER, PER, PER, PER]);

  // the clients leave: the gateway holds no client connection, and no upstream one once idle
  await agent.close();
  const clientMs = await eventually('client connections of the gateway drop to 0', () => clientSockets(gh).length === 0, 3000);
  const upMs = await eventually('upstream connections of the gateway drop to 0', () => upstreamSockets(gh, upstreamPorts).length === 0, 5000);
  await eventually('the upstreams hold no connection', async () => (await connections(healthy)) + (await connections(slowHead)) + (await connections(slowBody)) + resetHead.open() + resetBody.open() === 0, 3000);
  const retried = routes.reduce((n, { id }) => n + failureLines(gh, id).filter((l) => l.retry === true).length, 0);
  t.diagnostic(
    `${all.length} requests (60 at a time) in ${seconds.toFixed(1)} s, slowest (ms) ${JSON.stringify(slowestBy)}; ${retried} retried to the healthy node, ${H} got 502, ${H} got 504, ${2 * PER} cut short; ` +
      `gateway sockets at peak ${peak.clients} client / ${peak.upstreams} upstream, 0 client ${clientMs} ms after the clients closed, 0 upstream ${upMs} ms later; codes ${JSON.stringify(codes)}`,
  );
});

// ---------------------------------------------------------------------------------------------
// 2. client aborts by the hundred

test('256 client aborts of 1 MB uploads and downloads, 16 at a time: the upstream sees each aborted, no socket is left, RSS stays flat', { timeout: 180_000 }, async (t) => {
  const half = randomBytes(MiB / 2);
  const received = new Map<string, number>();
  let abortedDown = 0;
  let abortedUp = 0;
  let completed = 0;
  const up = await upstreamFor(t, (req, res) => {
    if (req.method === 'GET') {
      // half of a 1 MiB answer, then it waits: only the client's abort ends this exchange
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(MiB) });
      res.write(half);
      res.on('close', () => (res.writableFinished ? completed++ : abortedDown++));
      return;
    }
    const id = req.url!;
    received.set(id, 0);
    req.on('data', (d: Buffer) => received.set(id, received.get(id)! + d.length));
    req.on('end', () => {
      completed++;
      res.end('complete');
    });
    req.on('close', () => {
      if (!req.complete) abortedUp++;
    });
  });
  const gh = await gatehouse(t, { routes: [{ id: 'ab', uri: '/*', upstream: { nodes: { [up.node]: 1 }, keepalive_pool: { idle_timeout: 1 } } }] });

  /** A 1 MiB download the client drops after 256 KiB arrived. */
  const download = () =>
    new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${gh.url}/down`, { agent: false }, (res) => {
        let got = 0;
        res.on('data', (d: Buffer) => {
          got += d.length;
          if (got >= MiB / 4 && !req.destroyed) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
      req.end();
    });
  let n = 0;
  /** A 1 MiB upload the client drops once the upstream received 256 KiB of it. */
  const upload = () => {
    const id = `/up/${++n}`;
    return new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${gh.url}${id}`, { method: 'PUT', agent: false, headers: { 'content-length': String(MiB) } });
      req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
      req.on('response', () => reject(new Error('the upload was answered before it was aborted')));
      req.write(half);
      const deadline = Date.now() + BOUND_MS;
      const check = setInterval(() => {
        if ((received.get(id) ?? 0) >= MiB / 4) {
          clearInterval(check);
          req.destroy();
          resolve();
        } else if (Date.now() > deadline) {
          clearInterval(check);
          req.destroy();
          reject(new Error(`the upstream got ${received.get(id) ?? 0} bytes of ${id} within ${BOUND_MS} ms`));
        }
      }, 5);
    });
  };
  const round = () => Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? upload() : download())));

  // warm up (code paths, pools, the heap growing to its working size), then measure
  for (let i = 0; i < 4; i++) await round();
  await eventually('the warm-up exchanges closed', () => abortedDown + abortedUp === 64, 5000);
  await delay(1500);
  const base = rssOf(gh.pid);
  let peak = base;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(gh.pid));
    } catch {
      // gone: the test fails on its own
    }
  }, 50);
  t.after(() => clearInterval(sampler));
  let maxUpstreamConns = 0;
  const started = Date.now();
  for (let r = 0; r < 16; r++) {
    await round();
    maxUpstreamConns = Math.max(maxUpstreamConns, await connections(up));
  }
  const seconds = (Date.now() - started) / 1000;
  const TOTAL = 64 + 256;
  await eventually(`the upstream saw all ${TOTAL} exchanges aborted (down ${abortedDown}, up ${abortedUp})`, () => abortedDown + abortedUp === TOTAL, 5000);
  assert.deepEqual([abortedDown, abortedUp, completed], [TOTAL / 2, TOTAL / 2, 0]);
  const upMs = await eventually('the upstream holds no connection', async () => (await connections(up)) === 0, 5000);
  await eventually('the gateway holds no upstream connection', () => upstreamSockets(gh, [up.port]).length === 0, 3000);
  await eventually('the gateway holds no client connection', () => clientSockets(gh).length === 0, 3000);
  const m = await metrics(gh);
  assert.equal(total(m, 'gatehouse_http_requests_total', { route: 'ab', status: '499' }), TOTAL, 'every request finished as a client abort');
  assert.equal(total(m, 'gatehouse_http_requests_total'), TOTAL);
  clearInterval(sampler);
  await delay(1000);
  const after = rssOf(gh.pid);
  t.diagnostic(
    `256 aborted 1 MiB transfers in ${seconds.toFixed(1)} s; upstream peak ${maxUpstreamConns} connections, 0 after ${upMs} ms; ` +
      `gateway RSS ${(base / MiB).toFixed(1)} MB before, ${(peak / MiB).toFixed(1)} MB peak, ${(after / MiB).toFixed(1)} MB after`,
  );
  assert.ok(after - base < 48 * MiB, `gateway RSS grew from ${(base / MiB).toFixed(1)} to ${(after / MiB).toFixed(1)} MB`);
  assert.ok(peak - base < 96 * MiB, `gateway RSS peaked ${((peak - base) / MiB).toFixed(1)} MB above the start`);
});

// ---------------------------------------------------------------------------------------------
// 3. an invalid config file under load

test('an invalid config file written under load: zero failed requests, the old config serves, one error line; then a valid edit is served', { timeout: 60_000 }, async (t) => {
  const a = await upstreamFor(t, undefined, 'A');
  const b = await upstreamFor(t, undefined, 'B');
  const route = (up: Upstream) => ({ id: 'load', uri: '/load/*', upstream: { nodes: { [up.node]: 1 } } });
  const gh = await gatehouse(t, { routes: [route(a)] }, { log_level: 'info' });
  const errorLines = () => gh.proc.logLines().filter((l) => l.level >= 50);
  const reloaded = () => gh.proc.logLines().filter((l) => l.msg === 'config reloaded');

  const agent = new Agent({ connections: 32 });
  let stop = false;
  let count = 0;
  const failed: string[] = [];
  /** One client: sequential requests; returns the upstreams it saw, in order, repeats collapsed. */
  const client = async (c: number) => {
    const seen: string[] = [];
    for (let i = 0; !stop; i++) {
      const o = await send(agent, `${gh.url}/load/${c}/${i}`);
      count++;
      if (o.status !== 200 || o.error !== null) {
        failed.push(`${o.status} ${o.error ?? ''}`);
        continue;
      }
      const name = JSON.parse(o.body).name as string;
      if (seen[seen.length - 1] !== name) seen.push(name);
    }
    return seen;
  };
  const clients = Array.from({ length: 16 }, (_, c) => client(c));
  await delay(500);

  // moves /load/* to B (fine on its own) and adds a route without nodes: none of it may apply
  writeFileSync(gh.file, gh.doc({ routes: [route(b), { id: 'broken', uri: '/broken/*', upstream: { nodes: {} } }] }));
  await eventually('the rejection is logged', () => errorLines().length > 0, 3000);
  const atRejection = count;
  await delay(1000); // time for a duplicate reload or a late half-apply to show
  assert.equal(b.seen.length, 0, 'nothing of the invalid file was applied');
  assert.ok(count - atRejection > 50, `traffic kept flowing after the rejection (${count - atRejection} requests)`);

  writeFileSync(gh.file, gh.doc({ routes: [route(b)] }));
  const pickup = await eventually('the valid edit is served', () => b.seen.length > 0, 3000);
  await delay(1000);
  stop = true;
  const seen = await Promise.all(clients);
  await agent.close();

  assert.deepEqual(failed, [], `${failed.length} of ${count} requests failed`);
  // each client (sequential requests) moved from A to B once and never back: the swap is atomic
  assert.deepEqual(seen, Array.from({ length: 16 }, () => ['A', 'B']));
  const errs = errorLines();
  assert.equal(errs.length, 1, JSON.stringify(errs));
  assert.equal(errs[0].msg, 'config reload rejected; the last good config keeps serving');
  assert.equal(errs[0].source, gh.file);
  assert.deepEqual(errs[0].errors, ['routes[1].upstream.nodes: must have at least 1 entry']);
  assert.equal(reloaded().length, 1, 'the valid edit is the one reload');
  const m = await metrics(gh);
  assert.deepEqual([total(m, 'gatehouse_http_requests_total', { route: 'load', status: '200' }), total(m, 'gatehouse_http_requests_total')], [count, count]);
  assert.equal(a.seen.length + b.seen.length, count);
  await eventually('client connections of the gateway drop to 0', () => clientSockets(gh).length === 0, 3000);
  t.diagnostic(`${count} requests from 16 clients, 0 failed; ${a.seen.length} to A, ${b.seen.length} to B; the valid edit served ${pickup} ms after it was written`);
});

// ---------------------------------------------------------------------------------------------
// 4. Admin API writes racing each other and the traffic

async function adminCall(gh: Gh, method: 'GET' | 'PUT' | 'DELETE', path: string, body?: string | object): Promise<{ status: number; json: any }> {
  const r = await request(`${gh.admin}/apisix/admin${path}`, {
    method,
    headers: { 'x-api-key': ADMIN_KEY, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    headersTimeout: BOUND_MS,
  });
  const text = await r.body.text();
  return { status: r.statusCode, json: text ? JSON.parse(text) : undefined };
}

/** Fisher–Yates, so each round's writes start in a different order. */
function shuffled<T>(xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Traffic that runs until stopped: `check` judges each response; every other outcome is a failure. */
function traffic(agent: Agent, urls: () => string[], clients: number, check: (o: Outcome, url: string) => string | null): { stop(): Promise<{ count: number; problems: string[] }> } {
  let stopped = false;
  let count = 0;
  const problems: string[] = [];
  const runs = Array.from({ length: clients }, async (_, c) => {
    for (let i = 0; !stopped; i++) {
      const list = urls();
      const url = list[(c + i) % list.length];
      const o = await send(agent, url);
      count++;
      const p = check(o, url);
      if (p !== null) problems.push(p);
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(runs);
      return { count, problems };
    },
  };
}

test('racing Admin API PUTs of one route, valid and invalid, under traffic: only 200 or 400, the stored route is one valid body whole, traffic never sees a mix', { timeout: 120_000 }, async (t) => {
  const ups = await Promise.all([0, 1, 2, 3].map((i) => upstreamFor(t, undefined, `u${i}`)));
  // three fields of one body that traffic can see together: the node, the Host it is sent, a header
  const body = (v: number) => ({
    uri: '/race/*',
    desc: `version ${v}`,
    labels: { version: `v${v}` },
    upstream: { nodes: { [ups[v % 4].node]: 1 }, pass_host: 'rewrite', upstream_host: `v${v}.race.test` },
    plugins: { 'proxy-rewrite': { headers: { set: { 'x-version': `v${v}` } } } },
  });
  /** What GET answers for body(v): the same fields, normalised. */
  const shown = (v: number) => ({ uris: ['/race/*'], desc: `version ${v}`, labels: { version: `v${v}` }, nodes: [{ host: '127.0.0.1', port: ups[v % 4].port, weight: 1 }], pass_host: 'rewrite', upstream_host: `v${v}.race.test`, plugins: { 'proxy-rewrite': { headers: { set: { 'x-version': `v${v}` } } } } });
  const project = (value: any) => ({ uris: value.uris, desc: value.desc, labels: value.labels, nodes: value.upstream?.nodes, pass_host: value.upstream?.pass_host, upstream_host: value.upstream?.upstream_host, plugins: value.plugins });
  const gh = await gatehouse(t, { routes: [{ id: 'race', ...body(0) }] });
  const dataFile = gh.file.replace(/\.yaml$/, '.data.json');

  const agent = new Agent({ connections: 32 });
  const versionsSeen = new Set<string>();
  const load = traffic(agent, () => [`${gh.url}/race/x`], 12, (o) => {
    if (o.status !== 200 || o.error !== null) return `${o.status} ${o.error ?? o.body}`;
    const got = JSON.parse(o.body) as { name: string; headers: Record<string, string> };
    const v = Number(/^v(\d+)$/.exec(got.headers['x-version'] ?? '')?.[1] ?? NaN);
    versionsSeen.add(got.headers['x-version']);
    if (!(got.headers.host === `v${v}.race.test` && got.name === `u${v % 4}`)) return `mixed: ${got.name}, host ${got.headers.host}, x-version ${got.headers['x-version']}`;
    return null;
  });

  const ROUNDS = 5;
  const VALID = 8;
  const statuses: Record<string, number> = {};
  for (let round = 0; round < ROUNDS; round++) {
    const versions = Array.from({ length: VALID }, (_, k) => round * VALID + k + 1);
    const bad = round * VALID + 100;
    const invalid: Array<[string, string, RegExp]> = [
      ['not JSON', '{"uri": "/race/*", "upstream": ', /^the body is not valid JSON$/],
      ['no nodes', JSON.stringify({ ...body(bad), upstream: { nodes: {} } }), /upstream\.nodes: must have at least 1 entry/],
      ['unknown upstream_id', JSON.stringify({ ...body(bad + 1), upstream: undefined, upstream_id: 'missing' }), /upstream_id: refers to unknown upstream "missing"/],
      ['bad plugin config', JSON.stringify({ ...body(bad + 2), plugins: { 'proxy-rewrite': { uri: 'no-slash' } } }), /proxy-rewrite/],
      ['unknown plugin', JSON.stringify({ ...body(bad + 3), plugins: { 'no-such-plugin': {} } }), /no-such-plugin/],
      ['id mismatch', JSON.stringify({ ...body(bad + 4), id: 'other' }), /^id "other" in the body does not match "race" in the path$/],
    ];
    const writes = shuffled([...versions.map((v) => ({ v, raw: JSON.stringify(body(v)), err: null as RegExp | null, what: `v${v}` })), ...invalid.map(([what, raw, err]) => ({ v: -1, raw, err, what }))]);
    const answers = await Promise.all(writes.map((w) => adminCall(gh, 'PUT', '/routes/race', w.raw).then((r) => ({ w, r }))));
    for (const { w, r } of answers) {
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (w.err === null) {
        assert.equal(r.status, 200, `${w.what}: ${JSON.stringify(r.json)}`);
        // the answer shows what this write stored, whole, whatever the others did meanwhile
        assert.deepEqual(project(r.json.value), shown(w.v), `${w.what}: the answer is its own body`);
      } else {
        assert.equal(r.status, 400, `${w.what}: ${JSON.stringify(r.json)}`);
        assert.match(r.json.error_msg, w.err, w.what);
      }
    }
    // what GET answers is one of this round's valid bodies, whole, and it is what is served and stored
    const got = await adminCall(gh, 'GET', '/routes/race');
    const n = Number(/^version (\d+)$/.exec(got.json.value.desc)?.[1]);
    assert.ok(versions.includes(n), `round ${round}: GET shows version ${got.json.value.desc}`);
    assert.deepEqual(project(got.json.value), shown(n), `round ${round}: GET shows one body whole`);
    const stored = (JSON.parse(readFileSync(dataFile, 'utf8')) as { routes: Array<Record<string, unknown>> }).routes;
    assert.deepEqual(stored, [{ id: 'race', ...body(n) }], `round ${round}: the stored route is body v${n} exactly`);
    for (let i = 0; i < 5; i++) {
      const o = await send(agent, `${gh.url}/race/check`);
      assert.equal(JSON.parse(o.body).headers['x-version'], `v${n}`, `round ${round}: GET shows v${n}, traffic is served by it`);
    }
  }
  const { count, problems } = await load.stop();
  await agent.close();
  assert.deepEqual(problems, [], `${problems.length} of ${count} requests were wrong`);
  assert.deepEqual(statuses, { 200: ROUNDS * VALID, 400: ROUNDS * 6 });
  assert.ok(versionsSeen.size > ROUNDS, `traffic saw only ${[...versionsSeen].join(', ')}`);
  const errors = gh.proc.logLines().filter((l) => l.level >= 50);
  assert.deepEqual(errors, [], 'nothing was logged as an error');
  t.diagnostic(`${ROUNDS * (VALID + 6)} racing PUTs: ${JSON.stringify(statuses)}; ${count} requests during them, 0 failed, 0 mixed, ${versionsSeen.size} versions served`);
});

test('racing PUT and DELETE of upstreams that routes reference, under traffic: refused consistently, no route ever points at a missing upstream', { timeout: 120_000 }, async (t) => {
  const A = await upstreamFor(t, undefined, 'A');
  const B = await upstreamFor(t, undefined, 'B');
  const gh = await gatehouse(t, { upstreams: [{ id: 'shared', nodes: { [A.node]: 1 } }], routes: [{ id: 'via-shared', uri: '/via/*', upstream_id: 'shared' }] });
  const agent = new Agent({ connections: 32 });
  /** Routes that must answer 200 right now (besides /via/*), by path prefix. */
  const live = new Set<string>();
  const load = traffic(agent, () => [`${gh.url}/via/x`, ...[...live].map((p) => `${gh.url}${p}x`)], 10, (o, url) => {
    if (o.error !== null || o.status >= 500) return `${url}: ${o.status} ${o.error ?? o.body}`;
    if (url.includes('/via/') && o.status !== 200) return `${url}: ${o.status}`;
    return null;
  });

  // PUTs and DELETEs of the referenced upstream at once: every DELETE refused, every PUT applied
  const referenced = 'upstream "shared" is still used by routes: via-shared';
  for (let round = 0; round < 3; round++) {
    const ops = shuffled([...Array.from({ length: 6 }, (_, k) => ({ del: false, node: k % 2 ? B : A })), ...Array.from({ length: 6 }, () => ({ del: true, node: A }))]);
    const rs = await Promise.all(ops.map((op) => (op.del ? adminCall(gh, 'DELETE', '/upstreams/shared') : adminCall(gh, 'PUT', '/upstreams/shared', { nodes: { [op.node.node]: 1 } }))));
    rs.forEach((r, i) => {
      if (ops[i].del) assert.deepEqual([r.status, r.json.error_msg], [400, referenced]);
      else assert.equal(r.status, 200, JSON.stringify(r.json));
    });
    const shown = await adminCall(gh, 'GET', '/upstreams/shared');
    assert.equal(shown.status, 200);
    const port = shown.json.value.nodes[0].port as number;
    for (let i = 0; i < 4; i++) assert.equal(JSON.parse((await send(agent, `${gh.url}/via/check`)).body).name, port === A.port ? 'A' : 'B', 'the upstream GET shows is the one served');
  }

  /** Two calls at once, the first sent first on even rounds and second on odd ones. */
  const both = async <T>(k: number, x: () => Promise<T>, y: () => Promise<T>): Promise<[T, T]> => {
    if (k % 2 === 0) return Promise.all([x(), y()]);
    const [b, a] = await Promise.all([y(), x()]);
    return [a, b];
  };

  // DELETE of a route and of its upstream at once: the route always goes; the upstream goes only
  // when its DELETE came second (else refused, and deleted after)
  const outcomes: Record<string, number> = {};
  for (let k = 0; k < 10; k++) {
    assert.equal((await adminCall(gh, 'PUT', `/upstreams/tmp${k}`, { nodes: { [A.node]: 1 } })).status, 201);
    assert.equal((await adminCall(gh, 'PUT', `/routes/r${k}`, { uri: `/r${k}/*`, upstream_id: `tmp${k}` })).status, 201);
    live.add(`/r${k}/`);
    const [route, upstream] = await both(k, () => adminCall(gh, 'DELETE', `/routes/r${k}`), () => adminCall(gh, 'DELETE', `/upstreams/tmp${k}`));
    live.delete(`/r${k}/`);
    assert.equal(route.status, 200);
    assert.ok(upstream.status === 200 || (upstream.status === 400 && upstream.json.error_msg === `upstream "tmp${k}" is still used by routes: r${k}`), JSON.stringify(upstream));
    const key = `route deleted, upstream ${upstream.status === 200 ? 'deleted' : 'refused'}`;
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    if (upstream.status === 400) assert.equal((await adminCall(gh, 'DELETE', `/upstreams/tmp${k}`)).status, 200);
    assert.equal((await send(agent, `${gh.url}/r${k}/x`)).status, 404);
  }

  // PUT of a route naming an upstream, and DELETE of that upstream, at once: exactly one wins
  for (let k = 0; k < 10; k++) {
    assert.equal((await adminCall(gh, 'PUT', `/upstreams/pair${k}`, { nodes: { [B.node]: 1 } })).status, 201);
    const [route, upstream] = await both(k, () => adminCall(gh, 'PUT', `/routes/s${k}`, { uri: `/s${k}/*`, upstream_id: `pair${k}` }), () => adminCall(gh, 'DELETE', `/upstreams/pair${k}`));
    const pair = `${route.status}/${upstream.status}`;
    outcomes[`route ${route.status}, upstream DELETE ${upstream.status}`] = (outcomes[`route ${route.status}, upstream DELETE ${upstream.status}`] ?? 0) + 1;
    if (route.status === 201) {
      assert.deepEqual([pair, upstream.json.error_msg], ['201/400', `upstream "pair${k}" is still used by routes: s${k}`]);
      assert.equal((await send(agent, `${gh.url}/s${k}/x`)).status, 200);
      live.add(`/s${k}/`);
    } else {
      assert.equal(pair, '400/200', JSON.stringify(route.json));
      assert.match(route.json.error_msg, new RegExp(`upstream_id: refers to unknown upstream "pair${k}"`));
      assert.equal((await send(agent, `${gh.url}/s${k}/x`)).status, 404);
    }
  }

  const { count, problems } = await load.stop();
  await agent.close();
  assert.deepEqual(problems, [], `${problems.length} of ${count} requests were wrong`);
  // both orders of each pair happened, so both sides of each race were checked
  assert.deepEqual(Object.keys(outcomes).sort(), ['route 201, upstream DELETE 400', 'route 400, upstream DELETE 200', 'route deleted, upstream deleted', 'route deleted, upstream refused'], JSON.stringify(outcomes));
  // the end state: every route's upstream_id names an upstream that exists, in what GET shows and what is stored
  const routes = (await adminCall(gh, 'GET', '/routes')).json.list.map((i: { value: Record<string, unknown> }) => i.value);
  const upstreams = new Set((await adminCall(gh, 'GET', '/upstreams')).json.list.map((i: { value: { id: string } }) => i.value.id));
  const dangling = routes.filter((r: Record<string, unknown>) => r.upstream_id !== undefined && !upstreams.has(r.upstream_id));
  assert.deepEqual(dangling, []);
  const stored = JSON.parse(readFileSync(gh.file.replace(/\.yaml$/, '.data.json'), 'utf8')) as { routes: Array<{ upstream_id?: string }>; upstreams: Array<{ id: string }> };
  assert.deepEqual(stored.routes.filter((r) => r.upstream_id !== undefined && !stored.upstreams.some((u) => u.id === r.upstream_id)), []);
  assert.deepEqual(gh.proc.logLines().filter((l) => l.level >= 50), [], 'nothing was logged as an error');
  t.diagnostic(`${count} requests during the races, 0 failed; outcomes ${JSON.stringify(outcomes)}`);
});
