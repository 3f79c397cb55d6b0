// Hostile clients, the two limits: gateway.client_max_body_size (413 before the body is
// read for a declared length, 413 and an aborted upstream request for a chunked body that grows
// past it, a lingering close so the client reads the answer) and admin.limits (resource counts the
// Admin API refuses to grow past, with the file store and with a real etcd shared by two gateways).
// Real HTTP throughout; raw sockets where the framing or the connection's fate is the point.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { createRegistry } from '../core/config/registry';
import { parseSize } from '../core/config/settings-check';
import { validateConfig } from '../core/config/validate';
import mocking from '../plugins/mocking';
import { FileConfigStore, MemoryConfigStore } from '../core/stores/file-store';
import { bootGateway, delay, tempDir, type TestGateway } from './helpers/harness';
import { chunk, parseResponse, rawConnect, recordingUpstream, TOO_LARGE, type Recorder } from './servers/raw-http';
import { startEtcd, type EtcdServer } from './helpers/etcd';
import { Etcd3 } from 'etcd3';

const LIMIT = 1024;
/** `p`, or a failure naming `what` after `ms` (so a regression fails fast instead of hanging). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p.finally(() => clearTimeout(timer)), new Promise<T>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]);
}

async function until<T>(what: string, check: () => T | undefined, ms = 5000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await delay(10);
  }
}

describe('gateway.client_max_body_size: config', () => {
  const registry = createRegistry([mocking], []);
  const sizeOf = (v: unknown) => {
    const r = validateConfig({ gateway: { client_max_body_size: v } }, registry);
    return r.issues ? r.issues.map((i) => `${i.path}: ${i.message}`) : r.config.gateway.client_max_body_size;
  };

  test('bytes or nginx sizes (k, m, g; either case; powers of 1024), 0 = no limit, which is the default', () => {
    assert.equal(validateConfig({}, registry).config!.gateway.client_max_body_size, 0);
    assert.equal(sizeOf(0), 0);
    assert.equal(sizeOf(2048), 2048);
    assert.equal(sizeOf('2048'), 2048);
    assert.equal(sizeOf('512k'), 512 * 1024);
    assert.equal(sizeOf('10m'), 10 * 1024 * 1024);
    assert.equal(sizeOf('10M'), 10 * 1024 * 1024);
    assert.equal(sizeOf('1g'), 1024 ** 3);
    assert.equal(parseSize('8K'), 8192);
  });

  test('anything else is refused with its path', () => {
    assert.deepEqual(sizeOf('10mb'), ['gateway.client_max_body_size: has an invalid format (must match ^[0-9]+[kKmMgG]?$)']);
    assert.deepEqual(sizeOf('1.5m'), ['gateway.client_max_body_size: has an invalid format (must match ^[0-9]+[kKmMgG]?$)']);
    assert.deepEqual(sizeOf(-1), ['gateway.client_max_body_size: must be >= 0']);
    assert.deepEqual(sizeOf(1.5), ['gateway.client_max_body_size: must be an integer or a string']);
    // a gateway setting takes $env:// references, resolved when the config is read (docs/secrets.md)
    delete process.env.GH_LIMITS_MAX_BODY;
    assert.deepEqual(sizeOf('$env://GH_LIMITS_MAX_BODY'), ['gateway.client_max_body_size: environment variable GH_LIMITS_MAX_BODY is not set']);
    process.env.GH_LIMITS_MAX_BODY = '2k';
    try {
      assert.equal(sizeOf('$env://GH_LIMITS_MAX_BODY'), 2048);
      process.env.GH_LIMITS_MAX_BODY = 'huge';
      assert.deepEqual(sizeOf('$env://GH_LIMITS_MAX_BODY'), ['gateway.client_max_body_size: has an invalid format (must match ^[0-9]+[kKmMgG]?$)'], 'the resolved value is checked like a literal');
    } finally {
      delete process.env.GH_LIMITS_MAX_BODY;
    }
    assert.deepEqual(sizeOf('$secret://vault/x/size'), ['gateway.client_max_body_size: only $env:// references are resolved in gateway and admin settings (they are needed before any secret backend starts); admin.key and admin.tls may hold any reference']);
    assert.deepEqual(sizeOf('99999999999g'), ['gateway.client_max_body_size: is too large']);
  });
});

describe('gateway.client_max_body_size: requests', () => {
  let up: Recorder;
  let early: Recorder;
  let g: TestGateway;

  before(async () => {
    up = await recordingUpstream();
    early = await recordingUpstream(true);
    g = await bootGateway(
      {
        gateway: { client_max_body_size: '1k' },
        routes: [
          { id: 'up', uri: '/up/*', upstream: { nodes: { [up.node]: 1 } } },
          { id: 'early', uri: '/early/*', upstream: { nodes: { [early.node]: 1 } } },
          { id: 'counted', uri: '/counted', upstream: { nodes: { [up.node]: 1 } } },
          { id: 'local', uri: '/local', plugins: { mocking: { response_example: 'local answer' } } },
          { id: 'auth', uri: '/auth', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.node]: 1 } } },
        ],
        consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'limits-test-key' } } }],
      },
    );
  });
  after(async () => {
    await g?.close();
    await up?.close();
    await early?.close();
  });

  test('a body of exactly the limit is proxied; one byte more is 413 and never reaches the upstream', async () => {
    const ok = await request(`${g.url}/up/exact`, { method: 'POST', body: Buffer.alloc(LIMIT, 0x61) });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(await ok.body.json(), { bytes: LIMIT });
    const seen = up.seen.length;
    const r = await request(`${g.url}/up/over`, { method: 'POST', body: Buffer.alloc(LIMIT + 1, 0x61) });
    assert.equal(r.statusCode, 413);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers.connection, 'close');
    assert.equal(await r.body.text(), TOO_LARGE);
    assert.equal(up.seen.length, seen, 'the upstream was never contacted');
  });

  test('a declared length over the limit is answered at once, without the body, and the connection is closed', async () => {
    const seen = up.seen.length;
    const c = await rawConnect(g.port);
    const t0 = Date.now();
    // headers only: the gateway must answer without waiting for a single body byte
    c.socket.write(`POST /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`);
    const res = parseResponse(await c.until(/\r\n\r\n[^]*\}/));
    assert.ok(Date.now() - t0 < 1000, `answered after ${Date.now() - t0} ms`);
    assert.equal(res.status, 'HTTP/1.1 413 Payload Too Large');
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.body, TOO_LARGE);
    // no keep-alive with an unread body: the server half-closes right after the answer, then closes
    const fin = await within(c.ended, 5000, 'FIN');
    assert.ok(fin - t0 < 1000, `FIN after ${fin - t0} ms`);
    const closed = await within(c.closed, 5000, 'close');
    assert.ok(closed.at - t0 < 3000, `closed after ${closed.at - t0} ms (idle linger is 1 s)`);
    assert.equal(c.text().match(/HTTP\/1\.1/g)?.length, 1, 'one answer only');
    assert.equal(up.seen.length, seen);
  });

  test('the limit is checked before plugins and routing: 413, not 401 or 404', async () => {
    for (const path of ['/auth', '/nowhere']) {
      const c = await rawConnect(g.port);
      c.socket.write(`PUT ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`);
      const res = parseResponse(await c.until(/\r\n\r\n[^]*\}/));
      assert.equal(res.status, 'HTTP/1.1 413 Payload Too Large', path);
      assert.equal(res.body, TOO_LARGE, path);
      await within(c.closed, 5000, path);
    }
  });

  test('Expect: 100-continue over the limit gets 413 and no 100 Continue; within it, 100 Continue and the upstream', async () => {
    const c = await rawConnect(g.port);
    c.socket.write(`POST /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: ${LIMIT + 1}\r\nExpect: 100-continue\r\n\r\n`);
    const text = await c.until(/\r\n\r\n[^]*\}/);
    assert.ok(text.startsWith('HTTP/1.1 413 Payload Too Large\r\n'), text.split('\r\n')[0]);
    assert.ok(!text.includes('100 Continue'));
    await within(c.closed, 5000, 'close');

    const d = await rawConnect(g.port);
    d.socket.write(`POST /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
    await d.until(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
    d.socket.write('0123456789');
    const res = parseResponse((await d.until(/\{"bytes":10\}/)).slice('HTTP/1.1 100 Continue\r\n\r\n'.length));
    assert.equal(res.status, 'HTTP/1.1 200 OK');
    assert.equal(res.body, '{"bytes":10}');
  });

  test('a client that writes its whole oversized body before reading still reads the 413 (lingering close)', async () => {
    const size = 8 * 1024 * 1024;
    const c = await rawConnect(g.port, { paused: true });
    c.socket.write(`POST /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
    const written = await new Promise<string | undefined>((r) => c.socket.write(Buffer.alloc(size, 0x61), (err) => r((err as NodeJS.ErrnoException | undefined)?.code)));
    assert.equal(written, undefined, 'the whole body was taken, not reset');
    c.socket.resume();
    const res = parseResponse(await c.until(/\r\n\r\n[^]*\}/));
    assert.equal(res.status, 'HTTP/1.1 413 Payload Too Large');
    assert.equal(res.body, TOO_LARGE);
    c.socket.end();
    await within(c.closed, 5000, 'close');
  });

  test('a client that never stops sending is cut off: the discarding is bounded (16 MiB / 5 s)', async () => {
    const c = await rawConnect(g.port, { halfOpen: true });
    const t0 = Date.now();
    c.socket.write(`POST /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: ${1024 ** 4}\r\n\r\n`);
    const block = Buffer.alloc(256 * 1024, 0x61);
    let sent = 0;
    let open = true;
    void c.closed.then(() => (open = false));
    const drained = () =>
      new Promise<void>((r) => {
        const done = () => {
          c.socket.off('drain', done);
          c.socket.off('close', done);
          r();
        };
        c.socket.on('drain', done);
        c.socket.on('close', done);
      });
    while (open && sent < 1024 ** 3) {
      sent += block.length;
      if (!c.socket.write(block)) await drained();
    }
    const closed = await within(c.closed, 10000, 'the server closes the connection');
    assert.ok(closed.at - t0 < 7000, `closed after ${closed.at - t0} ms`);
    // 16 MiB read and dropped, plus what the kernel buffers hold on both sides
    assert.ok(sent < 48 * 1024 * 1024, `the client got to send ${sent} bytes`);
    assert.match(c.text(), /^HTTP\/1\.1 413 Payload Too Large\r\n/);
  });

  test('a chunked body growing past the limit: 413 before the response starts, the upstream request is aborted', async () => {
    const before = up.bodies.length;
    const c = await rawConnect(g.port);
    c.socket.write('POST /up/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 3; i++) {
      c.socket.write(chunk(300));
      await delay(30);
    }
    await until('the upstream has the request', () => (up.seen.some((s) => s.url === '/up/chunked') ? true : undefined));
    assert.equal(c.text(), '', 'nothing answered while within the limit');
    const t0 = Date.now();
    c.socket.write(chunk(300)); // 1200 bytes in all
    const res = parseResponse(await c.until(/\r\n\r\n[^]*\}/));
    assert.equal(res.status, 'HTTP/1.1 413 Payload Too Large');
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.body, TOO_LARGE);
    const rec = await until('the upstream request ends', () => up.bodies.slice(before).find((b) => b.url === '/up/chunked'));
    assert.equal(rec.complete, false, 'the upstream request was aborted, not completed');
    assert.ok(rec.bytes <= 900, `the upstream got ${rec.bytes} bytes: nothing past the limit`);
    assert.ok(rec.closedAt - t0 < 2000, `aborted after ${rec.closedAt - t0} ms`);
    await within(c.ended, 5000, 'FIN');
    // the client's fault: no upstream error, no health report
    const text = await g.gw.metrics.render();
    assert.doesNotMatch(text, /upstream_errors_total\{route="up"/);
    const ok = await request(`${g.url}/up/after`, { method: 'POST', body: 'x' });
    assert.equal(ok.statusCode, 200);
    await ok.body.text();
  });

  test('a chunked body within the limit is proxied in full', async () => {
    const c = await rawConnect(g.port);
    c.socket.write(`POST /up/fits HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk(1000)}${chunk(24)}0\r\n\r\n`);
    const res = parseResponse(await c.until(/\{"bytes":\d+\}/));
    assert.equal(res.status, 'HTTP/1.1 200 OK');
    assert.equal(res.body, `{"bytes":${LIMIT}}`);
  });

  test('a chunked body passing the limit after the upstream answered cuts the response short and aborts the upstream', async () => {
    const before = early.bodies.length;
    const c = await rawConnect(g.port);
    c.socket.write(`POST /early/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(300)}`);
    await c.until(/started\n/);
    c.socket.write(chunk(1000));
    await within(c.closed, 5000, 'the response is cut short');
    assert.match(c.text(), /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(!c.text().endsWith('0\r\n\r\n'), 'the chunked response was not terminated: the client can tell it is incomplete');
    assert.ok(!c.text().includes('done'));
    const rec = await until('the upstream request ends', () => early.bodies.slice(before).find((b) => b.url === '/early/x'));
    assert.equal(rec.complete, false);
    assert.ok(rec.bytes <= 300, `the upstream got ${rec.bytes} bytes`);
  });

  test('a local answer (a plugin) with a chunked body: within the limit the connection is kept, past it it is closed', async () => {
    const c = await rawConnect(g.port);
    c.socket.write(`POST /local HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(500)}0\r\n\r\n`);
    await c.until(/local answer$/);
    c.socket.write('GET /local HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.until(/local answer[^]*local answer$/);
    c.socket.end();

    const d = await rawConnect(g.port);
    d.socket.write(`POST /local HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(500)}`);
    await d.until(/local answer$/);
    const t0 = Date.now();
    d.socket.write(chunk(600));
    const closed = await within(d.closed, 5000, 'close');
    assert.ok(closed.at - t0 < 2000, `closed after ${closed.at - t0} ms`);
    assert.equal(d.text().match(/HTTP\/1\.1/g)?.length, 1);
  });

  test('413s are counted and logged like other local responses', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await request(`${g.url}/counted`, { method: 'POST', body: Buffer.alloc(LIMIT + 1 + i) });
      assert.equal(r.statusCode, 413);
      await r.body.text();
    }
    const ok = await request(`${g.url}/counted`, { method: 'POST', body: 'fits' });
    assert.equal(ok.statusCode, 200);
    await ok.body.text();
    const text = await g.gw.metrics.render();
    assert.match(text, /gatehouse_http_requests_total\{route="counted",status="413"\} 3\n/);
    assert.match(text, /gatehouse_http_requests_total\{route="counted",status="200"\} 1\n/);
    const logged = g.logs.lines.filter((l) => l.type === 'access' && l.route === 'counted').map((l) => l.status);
    assert.deepEqual(logged, [413, 413, 413, 200]);
  });
});

test('without client_max_body_size (the default) a large body passes; a reload sets the limit at once', async () => {
  const up = await recordingUpstream();
  const doc = { routes: [{ id: 'up', uri: '/up', upstream: { nodes: { [up.node]: 1 } } }] };
  const store = new MemoryConfigStore(doc);
  const g = await bootGateway({}, { store });
  try {
    const big = await request(`${g.url}/up`, { method: 'POST', body: Buffer.alloc(5 * 1024 * 1024) });
    assert.equal(big.statusCode, 200);
    assert.deepEqual(await big.body.json(), { bytes: 5 * 1024 * 1024 });
    const gen = g.gw.snapshot.generation;
    store.set({ ...doc, gateway: { client_max_body_size: '4m' } });
    await until('reloaded', () => (g.gw.snapshot.generation > gen ? true : undefined));
    const refused = await request(`${g.url}/up`, { method: 'POST', body: Buffer.alloc(5 * 1024 * 1024) });
    assert.equal(refused.statusCode, 413);
    assert.equal(await refused.body.text(), TOO_LARGE);
  } finally {
    await g.close();
    await up.close();
  }
});

const ADMIN_KEY = 'limits-admin-key';

/** One Admin API call: status and parsed JSON answer. */
async function adminCall(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await request(`${base}${path}`, { method: method as 'GET', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.body.text();
  return { status: r.statusCode, json: text ? JSON.parse(text) : undefined };
}

const refusal = (kind: string, limit: number, stored: number) => `the ${kind} limit is reached (admin.limits.${kind}: ${limit}, stored: ${stored}): delete ${kind}, or raise admin.limits.${kind} in the config file`;
const mockRoute = (uri: string, text: string) => ({ uri, plugins: { mocking: { response_example: text } } });
const vaultResource = { uri: 'http://127.0.0.1:1', prefix: 'kv', token: 'limits-test-vault-token', kv_version: 1 };

describe('admin.limits: config', () => {
  const registry = createRegistry([mocking], []);
  test('generous defaults, each kind settable, anything else refused with its path', () => {
    assert.deepEqual(validateConfig({ admin: {} }, registry).config!.admin!.limits, { routes: 10000, upstreams: 10000, consumers: 100000, secrets: 1000, ssls: 1000 });
    assert.deepEqual(validateConfig({ admin: { limits: { routes: 5 } } }, registry).config!.admin!.limits, { routes: 5, upstreams: 10000, consumers: 100000, secrets: 1000, ssls: 1000 });
    const r = validateConfig({ admin: { limits: { routes: 0, consumers: 'many', services: 3 } } }, registry);
    assert.deepEqual(
      r.issues?.map((i) => `${i.path}: ${i.message}`),
      ['admin.limits.services: is not a known field', 'admin.limits.routes: must be >= 1', 'admin.limits.consumers: must be an integer'],
    );
  });
});

describe('admin.limits: file store', () => {
  let dir: string;
  let file: string;
  let g: TestGateway;
  let admin: string;
  const yaml = (routes: number) => `admin: { key: ${ADMIN_KEY}, limits: { routes: ${routes}, upstreams: 1, consumers: 2, secrets: 1 } }\n`;
  // what the file store holds: the data file and the journal of writes beside it
  const stored = async () => (await new FileConfigStore(file).load()) as Record<string, Array<Record<string, unknown>>>;

  before(async () => {
    dir = tempDir();
    file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, yaml(2));
    g = await bootGateway({}, { configPath: file, adminListen: '127.0.0.1:0' });
    admin = `http://127.0.0.1:${g.gw.adminAddress!.port}/apisix/admin`;
  });
  after(async () => {
    await g?.close();
  });

  test('routes: a create past the limit is refused (PUT and POST) and nothing is stored or served', async () => {
    assert.equal((await adminCall(admin, 'PUT', '/routes/r1', mockRoute('/r1', 'one'))).status, 201);
    const posted = await adminCall(admin, 'POST', '/routes', mockRoute('/r2', 'two'));
    assert.equal(posted.status, 201);
    for (const [method, path] of [['PUT', '/routes/r3'], ['POST', '/routes']]) {
      const r = await adminCall(admin, method, path, mockRoute('/r3', 'three'));
      assert.equal(r.status, 400, `${method} ${path}`);
      assert.deepEqual(r.json, { error_msg: refusal('routes', 2, 2) });
    }
    assert.equal((await adminCall(admin, 'GET', '/routes')).json.total, 2);
    assert.deepEqual((await stored()).routes.map((r) => r.id), ['r1', posted.json.value.id]);
    assert.equal((await request(`${g.url}/r3`)).statusCode, 404);
  });

  test('at the limit, updates (PUT of an existing id, PATCH) still work; a delete makes room', async () => {
    assert.equal((await adminCall(admin, 'PUT', '/routes/r1', mockRoute('/r1', 'one, replaced'))).status, 200);
    assert.equal((await adminCall(admin, 'PATCH', '/routes/r1', { desc: 'patched at the limit' })).status, 200);
    assert.equal(await request(`${g.url}/r1`).then((r) => r.body.text()), 'one, replaced');
    assert.equal((await adminCall(admin, 'DELETE', '/routes/r1')).status, 200);
    assert.equal((await adminCall(admin, 'PUT', '/routes/r3', mockRoute('/r3', 'three'))).status, 201);
    assert.equal(await request(`${g.url}/r3`).then((r) => r.body.text()), 'three');
    assert.equal((await adminCall(admin, 'PUT', '/routes/r4', mockRoute('/r4', 'four'))).status, 400);
  });

  test('upstreams, consumers (also PUT /consumers with the username in the body) and secret resources have their own limits', async () => {
    assert.equal((await adminCall(admin, 'PUT', '/upstreams/u1', { nodes: { '127.0.0.1:1980': 1 } })).status, 201);
    assert.deepEqual(await adminCall(admin, 'PUT', '/upstreams/u2', { nodes: { '127.0.0.1:1980': 1 } }), { status: 400, json: { error_msg: refusal('upstreams', 1, 1) } });
    assert.equal((await adminCall(admin, 'POST', '/upstreams', { nodes: { '127.0.0.1:1980': 1 } })).status, 400);
    assert.equal((await adminCall(admin, 'PUT', '/consumers', { username: 'c1' })).status, 201);
    assert.equal((await adminCall(admin, 'PUT', '/consumers/c2', {})).status, 201);
    assert.deepEqual(await adminCall(admin, 'PUT', '/consumers', { username: 'c3' }), { status: 400, json: { error_msg: refusal('consumers', 2, 2) } });
    assert.equal((await adminCall(admin, 'PUT', '/consumers/c1', { desc: 'updated at the limit' })).status, 200);
    assert.equal((await adminCall(admin, 'PUT', '/secrets/vault/a', vaultResource)).status, 201);
    assert.deepEqual(await adminCall(admin, 'PUT', '/secrets/vault/b', vaultResource), { status: 400, json: { error_msg: refusal('secrets', 1, 1) } });
    const data = await stored();
    assert.deepEqual([data.upstreams.length, data.consumers.length, data.secrets.length], [1, 2, 1]);
    assert.equal(data.consumers.find((c) => c.username === 'c1')!.desc, 'updated at the limit');
  });

  test('a raised limit in the config file applies to the next write (hot reload)', async () => {
    const gen = g.gw.snapshot.generation;
    writeFileSync(file, yaml(3));
    await until('the config file is reloaded', () => (g.gw.snapshot.generation > gen ? true : undefined));
    assert.equal((await adminCall(admin, 'PUT', '/routes/r4', mockRoute('/r4', 'four'))).status, 201);
    assert.deepEqual((await adminCall(admin, 'PUT', '/routes/r5', mockRoute('/r5', 'five'))).json, { error_msg: refusal('routes', 3, 3) });
  });
});

test('admin.limits: a config file already past a limit still loads and serves; creates wait until deletes bring it under', async () => {
  const dir = tempDir();
  const file = join(dir, 'gatehouse.yaml');
  const routes = ['a', 'b', 'c'].map((id) => `  - { id: ${id}, uri: /${id}, plugins: { mocking: { response_example: ${id} } } }`).join('\n');
  writeFileSync(file, `admin: { key: ${ADMIN_KEY}, limits: { routes: 2 } }\nroutes:\n${routes}\n`);
  const g = await bootGateway({}, { configPath: file, adminListen: '127.0.0.1:0' });
  const admin = `http://127.0.0.1:${g.gw.adminAddress!.port}/admin`;
  try {
    for (const id of ['a', 'b', 'c']) assert.equal(await request(`${g.url}/${id}`).then((r) => r.body.text()), id);
    assert.deepEqual((await adminCall(admin, 'PUT', '/routes/d', mockRoute('/d', 'd'))).json, { error_msg: refusal('routes', 2, 3) });
    assert.equal((await adminCall(admin, 'PATCH', '/routes/a', { desc: 'still editable' })).status, 200);
    assert.equal((await adminCall(admin, 'DELETE', '/routes/a')).status, 200);
    assert.deepEqual((await adminCall(admin, 'PUT', '/routes/d', mockRoute('/d', 'd'))).json, { error_msg: refusal('routes', 2, 2) });
    assert.equal((await adminCall(admin, 'DELETE', '/routes/b')).status, 200);
    assert.equal((await adminCall(admin, 'PUT', '/routes/d', mockRoute('/d', 'd'))).status, 201);
    assert.equal(await request(`${g.url}/d`).then((r) => r.body.text()), 'd');
  } finally {
    await g.close();
  }
});

describe('admin.limits: etcd store, two gateways on one prefix', () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.close();
  });

  test('the count is the cluster\'s: a write on one node sees the resources the other created', { timeout: 60000 }, async () => {
    const dir = tempDir();
    const mk = (name: string) => {
      const f = join(dir, `${name}.yaml`);
      writeFileSync(f, `admin: { key: ${ADMIN_KEY}, limits: { routes: 2 } }\nconfig_store: { type: etcd, endpoints: ["${etcd.endpoint}"], prefix: /gh-limits }\n`);
      return f;
    };
    const a = await bootGateway({}, { configPath: mk('a'), adminListen: '127.0.0.1:0' });
    const b = await bootGateway({}, { configPath: mk('b'), adminListen: '127.0.0.1:0' });
    const adminA = `http://127.0.0.1:${a.gw.adminAddress!.port}/admin`;
    const adminB = `http://127.0.0.1:${b.gw.adminAddress!.port}/admin`;
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      assert.equal((await adminCall(adminA, 'PUT', '/routes/r1', mockRoute('/r1', 'one'))).status, 201);
      assert.equal((await adminCall(adminB, 'PUT', '/routes/r2', mockRoute('/r2', 'two'))).status, 201);
      // A has not necessarily seen B's write through its watch yet: the count comes from etcd itself
      assert.deepEqual(await adminCall(adminA, 'PUT', '/routes/r3', mockRoute('/r3', 'three')), { status: 400, json: { error_msg: refusal('routes', 2, 2) } });
      assert.deepEqual(Object.keys(await client.getAll().prefix('/gh-limits/routes/').strings()).sort(), ['/gh-limits/routes/r1', '/gh-limits/routes/r2']);
      assert.equal((await adminCall(adminB, 'PATCH', '/routes/r1', { desc: 'updated at the limit' })).status, 200);
      assert.equal((await adminCall(adminA, 'DELETE', '/routes/r2')).status, 200);
      assert.equal((await adminCall(adminB, 'PUT', '/routes/r3', mockRoute('/r3', 'three'))).status, 201);
      assert.deepEqual(Object.keys(await client.getAll().prefix('/gh-limits/routes/').strings()).sort(), ['/gh-limits/routes/r1', '/gh-limits/routes/r3']);
    } finally {
      client.close();
      await a.close();
      await b.close();
    }
  });
});
