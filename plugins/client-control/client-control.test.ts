// client-control through a real gateway, real upstreams and raw sockets: a route's own body limit
// (smaller or larger than gateway.client_max_body_size, or 0 for none) for declared lengths,
// Expect: 100-continue and chunked bodies; a reload changing it; the config errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { MemoryConfigStore } from 'gatehouse-gateway';
import { definePlugin, GatehouseError } from 'gatehouse-gateway/sdk';
import { bootTestGateway, delay, eventually, type GatewayUnderTest } from 'gatehouse-gateway/testing';
import { chunk, parseResponse, rawConnect, recordingUpstream, TOO_LARGE, type Recorder } from '../../test/servers/raw-http';

const GATEWAY_LIMIT = 4096;
const ROUTE_LIMIT = 1024;
async function post(url: string, bytes: number): Promise<{ status: number; body: string; connection: unknown }> {
  const r = await request(url, { method: 'POST', body: Buffer.alloc(bytes, 0x61) });
  return { status: r.statusCode, body: await r.body.text(), connection: r.headers.connection };
}

describe('client-control: per-route body limits', () => {
  let up: Recorder;
  let g: GatewayUnderTest;

  before(async () => {
    up = await recordingUpstream();
    const nodes = { [up.node]: 1 };
    g = await bootTestGateway({
      gateway: { client_max_body_size: GATEWAY_LIMIT },
      routes: [
        { id: 'a', uri: '/a/*', plugins: { 'client-control': { max_body_size: ROUTE_LIMIT } }, upstream: { nodes } },
        { id: 'b', uri: '/b/*', upstream: { nodes } },
        { id: 'big', uri: '/big/*', plugins: { 'client-control': { max_body_size: 16384 } }, upstream: { nodes } },
        { id: 'zero', uri: '/zero/*', plugins: { 'client-control': { max_body_size: 0 } }, upstream: { nodes } },
        { id: 'absent', uri: '/absent', plugins: { 'client-control': {} }, upstream: { nodes } },
        { id: 'auth', uri: '/auth', plugins: { 'client-control': { max_body_size: ROUTE_LIMIT }, 'key-auth': {} }, upstream: { nodes } },
      ],
      consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'client-control-test-key' } } }],
    });
  });
  after(async () => {
    await g?.close();
    await up?.close();
  });

  test("route A's limit (1k) is exact; route B keeps the gateway's 4k; the upstream never sees an oversized body", async () => {
    assert.deepEqual(await post(`${g.url}/a/x`, ROUTE_LIMIT), { status: 200, body: `{"bytes":${ROUTE_LIMIT}}`, connection: 'keep-alive' });
    const seen = up.seen.length;
    assert.deepEqual(await post(`${g.url}/a/x`, ROUTE_LIMIT + 1), { status: 413, body: TOO_LARGE, connection: 'close' });
    assert.equal(up.seen.length, seen, 'the upstream was never contacted');
    // what A refuses, B takes; B's own limit is the gateway's
    assert.deepEqual(await post(`${g.url}/b/x`, ROUTE_LIMIT + 1), { status: 200, body: `{"bytes":${ROUTE_LIMIT + 1}}`, connection: 'keep-alive' });
    assert.deepEqual(await post(`${g.url}/b/x`, GATEWAY_LIMIT), { status: 200, body: `{"bytes":${GATEWAY_LIMIT}}`, connection: 'keep-alive' });
    const seenB = up.seen.length;
    assert.deepEqual(await post(`${g.url}/b/x`, GATEWAY_LIMIT + 1), { status: 413, body: TOO_LARGE, connection: 'close' });
    assert.equal(up.seen.length, seenB);
    // client-control without max_body_size leaves the gateway's limit
    assert.deepEqual(await post(`${g.url}/absent`, GATEWAY_LIMIT), { status: 200, body: `{"bytes":${GATEWAY_LIMIT}}`, connection: 'keep-alive' });
    assert.equal((await post(`${g.url}/absent`, GATEWAY_LIMIT + 1)).status, 413);
  });

  test('a declared length over the route limit is answered before any body byte and before the other plugins (413, not 401)', async () => {
    for (const path of ['/a/x', '/auth']) {
      const c = await rawConnect(g.port);
      const t0 = Date.now();
      c.socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${ROUTE_LIMIT + 1}\r\n\r\n`);
      const res = parseResponse(await c.until(/\r\n\r\n[^]*\}/));
      assert.ok(Date.now() - t0 < 1000, `${path}: answered after ${Date.now() - t0} ms`);
      assert.equal(res.status, 'HTTP/1.1 413 Payload Too Large', path);
      assert.equal(res.headers.connection, 'close', path);
      assert.equal(res.body, TOO_LARGE, path);
      const closed = (await c.closed).at;
      assert.ok(closed - t0 < 3000, `${path}: closed after ${closed - t0} ms (idle linger is 1 s)`);
      assert.equal(c.text().match(/HTTP\/1\.1/g)?.length, 1, 'one answer only');
    }
    // within A's limit the key-auth route answers as usual
    const r = await request(`${g.url}/auth`, { method: 'POST', body: 'x' });
    assert.equal(r.statusCode, 401);
    await r.body.text();
  });

  test("Expect: 100-continue follows the route's limit: no 100 over it, 100 within it, also above the gateway's", async () => {
    const c = await rawConnect(g.port);
    c.socket.write(`POST /a/x HTTP/1.1\r\nHost: x\r\nContent-Length: ${ROUTE_LIMIT + 1}\r\nExpect: 100-continue\r\n\r\n`);
    const text = await c.until(/\r\n\r\n[^]*\}/);
    assert.ok(text.startsWith('HTTP/1.1 413 Payload Too Large\r\n'), text.split('\r\n')[0]);
    assert.ok(!text.includes('100 Continue'));
    await c.closed;

    // 10000 bytes: over the gateway's 4k, within /big's 16k
    for (const [path, size] of [['/a/x', 10], ['/big/x', 10000]] as const) {
      const d = await rawConnect(g.port);
      d.socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
      await d.until(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
      d.socket.write('a'.repeat(size));
      const res = parseResponse((await d.until(/\{"bytes":\d+\}/)).slice('HTTP/1.1 100 Continue\r\n\r\n'.length));
      assert.equal(res.status, 'HTTP/1.1 200 OK', path);
      assert.equal(res.body, `{"bytes":${size}}`, path);
    }
  });

  test('a chunked body growing past the route limit is cut: 413, the upstream request aborted; B takes the same body', async () => {
    const before = up.bodies.length;
    const c = await rawConnect(g.port);
    c.socket.write('POST /a/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 3; i++) {
      c.socket.write(chunk(300));
      await delay(30);
    }
    await eventually('the upstream has the request', () => up.seen.some((s) => s.url === '/a/chunked'), 5000);
    assert.equal(c.text(), '', 'nothing answered while within the limit');
    c.socket.write(chunk(300)); // 1200 bytes in all
    const res = parseResponse(await c.until(/\r\n\r\n[^]*\}/));
    assert.equal(res.status, 'HTTP/1.1 413 Payload Too Large');
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.body, TOO_LARGE);
    await eventually('the upstream request ends', () => up.bodies.slice(before).some((b) => b.url === '/a/chunked'), 5000);
    const rec = up.bodies.slice(before).find((b) => b.url === '/a/chunked')!;
    assert.equal(rec.complete, false, 'the upstream request was aborted, not completed');
    assert.ok(rec.bytes <= 900, `the upstream got ${rec.bytes} bytes: nothing past the limit`);
    await c.closed;

    const d = await rawConnect(g.port);
    d.socket.write(`POST /b/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk(1200)}0\r\n\r\n`);
    const ok = parseResponse(await d.until(/\{"bytes":\d+\}/));
    assert.equal(ok.status, 'HTTP/1.1 200 OK');
    assert.equal(ok.body, '{"bytes":1200}');
  });

  test("a route allowing more than the gateway (16k against 4k): declared and chunked bodies pass up to it", async () => {
    assert.deepEqual(await post(`${g.url}/big/x`, 16384), { status: 200, body: '{"bytes":16384}', connection: 'keep-alive' });
    assert.deepEqual(await post(`${g.url}/big/x`, 16385), { status: 413, body: TOO_LARGE, connection: 'close' });
    const c = await rawConnect(g.port);
    c.socket.write(`POST /big/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk(8000)}${chunk(8000)}0\r\n\r\n`);
    const ok = parseResponse(await c.until(/\{"bytes":\d+\}/));
    assert.equal(ok.status, 'HTTP/1.1 200 OK');
    assert.equal(ok.body, '{"bytes":16000}');
    const d = await rawConnect(g.port);
    d.socket.write(`POST /big/chunked2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(8000)}${chunk(8000)}${chunk(8000)}`);
    assert.equal(parseResponse(await d.until(/\r\n\r\n[^]*\}/)).status, 'HTTP/1.1 413 Payload Too Large');
  });

  test('max_body_size 0: no limit on this route, whatever the gateway says', async () => {
    const size = 2 * 1024 * 1024;
    assert.deepEqual(await post(`${g.url}/zero/x`, size), { status: 200, body: `{"bytes":${size}}`, connection: 'keep-alive' });
    const c = await rawConnect(g.port);
    c.socket.write(`POST /zero/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk(60000)}${chunk(60000)}0\r\n\r\n`);
    const ok = parseResponse(await c.until(/\{"bytes":\d+\}/));
    assert.equal(ok.status, 'HTTP/1.1 200 OK');
    assert.equal(ok.body, '{"bytes":120000}');
  });
});

test('a reload changing max_body_size applies to the next request; removing the plugin brings back the gateway limit', async () => {
  const up = await recordingUpstream();
  const doc = (plugins: Record<string, unknown>) => ({ gateway: { client_max_body_size: GATEWAY_LIMIT }, routes: [{ id: 'r', uri: '/r', plugins, upstream: { nodes: { [up.node]: 1 } } }] });
  const store = new MemoryConfigStore(doc({ 'client-control': { max_body_size: ROUTE_LIMIT } }));
  const g = await bootTestGateway({}, { store });
  const reload = async (d: Record<string, unknown>) => {
    const gen = g.gateway.snapshot.generation;
    store.set(d);
    await eventually('reloaded', () => g.gateway.snapshot.generation > gen, 5000);
  };
  try {
    assert.equal((await post(`${g.url}/r`, 2000)).status, 413);
    await reload(doc({ 'client-control': { max_body_size: 2000 } }));
    assert.deepEqual(await post(`${g.url}/r`, 2000), { status: 200, body: '{"bytes":2000}', connection: 'keep-alive' });
    assert.equal((await post(`${g.url}/r`, 2001)).status, 413);
    await reload(doc({ 'client-control': { max_body_size: 8192 } }));
    assert.equal((await post(`${g.url}/r`, 8192)).status, 200);
    await reload(doc({}));
    assert.equal((await post(`${g.url}/r`, 8192)).status, 413, 'the gateway limit again');
    assert.equal((await post(`${g.url}/r`, GATEWAY_LIMIT)).status, 200);
  } finally {
    await g.close();
    await up.close();
  }
});

/** The issues a config with this client-control config is refused with. */
async function issuesOf(conf: unknown, extensions: NonNullable<Parameters<typeof bootTestGateway>[1]>['extensions'] = []): Promise<string[]> {
  const plugins = conf === undefined ? { 'other-limit': {}, 'bad-limit': {} } : { 'client-control': conf };
  try {
    const g = await bootTestGateway({ routes: [{ id: 'r', uri: '/r', plugins, upstream: { nodes: { '127.0.0.1:1': 1 } } }] }, { extensions });
    await g.close();
    return [];
  } catch (err) {
    assert.ok(err instanceof GatehouseError, String(err));
    return (err as GatehouseError & { issues?: Array<{ path: string; message: string }> }).issues!.map((i) => `${i.path}: ${i.message}`);
  }
}

test('schema errors name the field', async () => {
  assert.deepEqual(await issuesOf({ max_body_size: -1 }), ['routes[0].plugins.client-control.max_body_size: must be >= 0']);
  assert.deepEqual(await issuesOf({ max_body_size: 1.5 }), ['routes[0].plugins.client-control.max_body_size: must be an integer']);
  assert.deepEqual(await issuesOf({ max_body_size: '1k' }), ['routes[0].plugins.client-control.max_body_size: must be an integer']);
  assert.deepEqual(await issuesOf({ max_body_size: 2 ** 60 }), [`routes[0].plugins.client-control.max_body_size: must be <= ${Number.MAX_SAFE_INTEGER}`]);
  assert.deepEqual(await issuesOf({ max_body_size: 1, max_size: 2 }), ['routes[0].plugins.client-control.max_size: is not a known field']);
  assert.deepEqual(await issuesOf({ max_body_size: 0 }), []);
});

test("the core checks a plugin's maxBodySize; of two plugins declaring one, the higher priority wins", async () => {
  const declare = (name: string, priority: number, size: number) => ({ kind: 'plugin' as const, plugin: definePlugin({ name, version: '1.0.0', priority, schema: { type: 'object' }, maxBodySize: () => size, create: () => ({}) }) });
  assert.deepEqual(await issuesOf(undefined, [declare('other-limit', 1, 10), declare('bad-limit', 2, -5)]), ['routes[0].plugins.bad-limit: maxBodySize must be an integer >= 0 (plugin returned -5)']);

  const up = await recordingUpstream();
  const g = await bootTestGateway(
    { routes: [{ id: 'r', uri: '/r', plugins: { 'client-control': { max_body_size: 100 }, 'low-limit': {} }, upstream: { nodes: { [up.node]: 1 } } }] },
    { extensions: [declare('low-limit', 1, 10)] },
  );
  try {
    assert.equal((await post(`${g.url}/r`, 100)).status, 200, "client-control (22000) outranks low-limit (1)");
    assert.equal((await post(`${g.url}/r`, 101)).status, 413);
  } finally {
    await g.close();
    await up.close();
  }
});
