// Hostile clients: request smuggling shapes, oversized headers, and path tricks (dot-segments,
// encoded dots and slashes, repeated slashes) that must not route around key-auth; slow headers;
// `Expect: 100-continue`, which must not invite a client to upload before key-auth let it in.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { bootGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness';
import { normalizePath } from '../core/request/data-plane';
import { parseResponse, rawConnect } from './servers/raw-http';

let up: Upstream;
let g: TestGateway;

before(async () => {
  up = await startUpstream();
  g = await bootGateway({
    routes: [
      { id: 'pub', uri: '/public/*', upstream: { nodes: { [up.node]: 1 } } },
      { id: 'priv', uri: '/private/*', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.node]: 1 } } },
    ],
    consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'hostile-test-key' } } }],
  });
});
after(async () => {
  await g?.close();
  await up?.close();
});

/** Send raw bytes; resolve with the status line of the answer. */
function raw(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(g.port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (out += d));
    s.on('close', () => resolve(out.split('\r\n')[0]));
    s.on('error', reject);
    s.write(text);
    setTimeout(() => s.end(), 200);
  });
}

test('smuggling shapes are refused with 400 and never reach the upstream', async () => {
  const before = up.seen.length;
  assert.equal(await raw('POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), 'HTTP/1.1 400 Bad Request');
  assert.equal(await raw('POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd'), 'HTTP/1.1 400 Bad Request');
  assert.equal(await raw('GET /public/a HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n'), 'HTTP/1.1 400 Bad Request', 'obs-fold');
  assert.equal(await raw('GET /public/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n'), 'HTTP/1.1 400 Bad Request');
  assert.equal(up.seen.length, before);
});

test('oversized headers get 431', async () => {
  assert.equal(await raw(`GET /public/a HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`), 'HTTP/1.1 431 Request Header Fields Too Large');
});

test('dot-segments, encoded dots and slashes and repeated slashes do not route around key-auth', async () => {
  const before = up.seen.length;
  for (const p of ['/public/../private/x', '/public/%2e%2e/private/x', '/public/%2E%2E/private/x', '/public/..%2fprivate/x', '/public/..%2Fprivate/x', '/public/..%5cprivate/x', '//private/x', '/public/./../private/x', '/./private/x']) {
    assert.equal(await raw(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), 'HTTP/1.1 401 Unauthorized', p);
  }
  assert.equal(up.seen.length, before, 'none of them reached the upstream');
  // with the key, the upstream gets the path the gateway matched
  assert.equal(await raw('GET /public/../private/x HTTP/1.1\r\nHost: x\r\napikey: hostile-test-key\r\nConnection: close\r\n\r\n'), 'HTTP/1.1 200 OK');
  assert.equal(up.seen.at(-1)!.url, '/private/x');
});

test('a path that climbs above the root is refused with 400', async () => {
  assert.equal(await raw('GET /public/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 'HTTP/1.1 400 Bad Request');
  assert.equal(await raw('GET /%2e%2e/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 'HTTP/1.1 400 Bad Request');
});

test('normalizePath: the forms it rewrites, and ordinary paths (dots in names, other escapes) left as they are', () => {
  const cases: Array<[string, string]> = [
    ['/a/b', '/a/b'],
    ['/file.json', '/file.json'],
    ['/a/.well-known/x', '/a/.well-known/x'],
    ['/a/..b/c', '/a/..b/c'],
    ['/a%20b/c%3F', '/a%20b/c%3F'],
    ['/a/./b', '/a/b'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a//b///c', '/a/b/c'],
    ['/a/%2e/b', '/a/b'],
    ['/a%2fb', '/a/b'],
    ['/..', ''],
    ['/', '/'],
  ];
  for (const [input, want] of cases) assert.equal(normalizePath(input), want, input);
});

/** Trickle request headers to `port`, one byte every 200 ms, never completing them. @returns the answer's status line and when it came */
function trickleHeaders(port: number, path: string): Promise<{ status: string; took: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    let n = 0;
    s.setEncoding('latin1');
    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n`);
    // one header byte every 200 ms: never a complete request
    const drip = setInterval(() => s.write(n++ % 2 ? 'a' : 'X'), 200);
    // no answer in 6 s: give up, so the assertion says how long it took rather than the test timing out
    const giveUp = setTimeout(() => s.destroy(), 6000);
    const done = () => {
      clearInterval(drip);
      clearTimeout(giveUp);
      resolve({ status: out.split('\r\n')[0], took: Date.now() - t0 });
    };
    s.on('data', (d: string) => (out += d));
    s.on('close', done);
    s.on('error', (e) => (out ? done() : (clearInterval(drip), clearTimeout(giveUp), reject(e))));
  });
}

test('a client that trickles its headers (slowloris) gets 408 after gateway.client_header_timeout', { timeout: 20000 }, async () => {
  const slow = await bootGateway({ gateway: { client_header_timeout: 1 }, routes: [{ id: 'pub', uri: '/public/*', upstream: { nodes: { [up.node]: 1 } } }] });
  try {
    const { status, took } = await trickleHeaders(slow.port, '/public/a');
    assert.equal(status, 'HTTP/1.1 408 Request Timeout');
    assert.ok(took >= 900 && took < 4000, `answered after ${took} ms`);
  } finally {
    await slow.close();
  }
});

test('the Admin API listener bounds its clients as the proxy does: slow headers 408, a silent connection and an idle keep-alive one closed', { timeout: 30000 }, async () => {
  const slow = await bootGateway({ gateway: { client_header_timeout: 1 }, admin: { key: 'hostile-admin-key' }, routes: [] }, { adminListen: '127.0.0.1:0' });
  try {
    const port = slow.gw.adminAddress!.port;
    // Node's defaults (60 s, checked every 30 s) let a slow client hold an Admin connection for over a minute
    const { status, took } = await trickleHeaders(port, '/apisix/admin/routes');
    assert.equal(status, 'HTTP/1.1 408 Request Timeout');
    assert.ok(took >= 900 && took < 4000, `slow headers answered after ${took} ms`);
    // a connection that never sends a byte is closed by the same header timeout
    const silent = await rawConnect(port);
    const silentAt = Date.now();
    const giveUp = setTimeout(() => silent.socket.destroy(), 6000);
    const silentClosed = (await silent.closed).at - silentAt;
    clearTimeout(giveUp);
    assert.ok(silentClosed >= 900 && silentClosed < 4000, `a silent connection closed after ${silentClosed} ms`);
    // after a response, an idle keep-alive connection is closed after the proxy's 5 s keep-alive timeout
    const idle = await rawConnect(port);
    idle.socket.write('GET /apisix/admin/routes HTTP/1.1\r\nHost: x\r\nX-API-KEY: hostile-admin-key\r\n\r\n');
    await idle.until(/^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\n/);
    const answeredAt = Date.now();
    const idleClosed = (await idle.closed).at - answeredAt;
    assert.ok(idleClosed >= 4500 && idleClosed < 8000, `an idle keep-alive connection closed after ${idleClosed} ms`);
  } finally {
    await slow.close();
  }
});

test('Expect: 100-continue is answered only after the access plugins passed: a 401 comes without 100 Continue and closes; with the key, 100 then the body goes upstream', async () => {
  const before = up.seen.length;
  const c = await rawConnect(g.port);
  c.socket.write('POST /private/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n');
  const refused = await c.until(/\r\n\r\n[^]*\}/);
  assert.ok(refused.startsWith('HTTP/1.1 401 Unauthorized\r\n'), refused.split('\r\n')[0]);
  assert.ok(!refused.includes('100 Continue'), 'no invitation to upload before authentication');
  // the body was never asked for, so it cannot be waited for: the connection is closed
  assert.equal(parseResponse(refused).headers.connection, 'close');
  const closed = await c.closed;
  assert.equal(closed.error, undefined, 'closed, not reset');
  assert.equal(c.text().match(/HTTP\/1\.1/g)?.length, 1, 'one answer only');
  assert.equal(up.seen.length, before, 'nothing reached the upstream');

  const d = await rawConnect(g.port);
  d.socket.write('POST /private/x HTTP/1.1\r\nHost: x\r\napikey: hostile-test-key\r\nContent-Length: 10\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
  await d.until(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
  d.socket.write('0123456789');
  const res = parseResponse((await d.until(/"bytes":10\}/)).slice('HTTP/1.1 100 Continue\r\n\r\n'.length));
  assert.equal(res.status, 'HTTP/1.1 200 OK');
  const got = JSON.parse(res.body);
  assert.equal(got.bytes, 10, 'the upstream received the body');
  assert.equal(got.headers.expect, undefined, 'the expectation is hop-by-hop: the gateway answered it');
  assert.equal(got.headers['x-consumer-username'], 'jack');
});

test('Expect: 100-continue on an unknown path: 404 without 100 Continue', async () => {
  const c = await rawConnect(g.port);
  c.socket.write('PUT /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n');
  const text = await c.until(/\r\n\r\n[^]*\}/);
  assert.ok(text.startsWith('HTTP/1.1 404 Not Found\r\n'), text.split('\r\n')[0]);
  assert.ok(!text.includes('100 Continue'));
  await c.closed;
});
