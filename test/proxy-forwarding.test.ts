// Whole-gateway proxy tests, forwarding: real upstreams (HTTP and raw TCP) on 127.0.0.1, a real
// gateway, real clients. Requests and responses pass through whole; hop-by-hop headers stay behind;
// the forwarding headers and Host are set as configured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { gatewayFor as gateway, upstreamFor as upstream, startTcpServer } from './helpers/harness';
import { failures, generatedBody, get, getJson, hashingHandler, oneRoute, rawRequest, sha256 } from './helpers/proxy';

// ---------------------------------------------------------------------------------------------
// forwarding

test('proxies a GET with its method, path and query string delivered exactly', async (t) => {
  const up = await upstream(t);
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 } }));
  const path = '/shop/items/a%20b/%E2%9C%93?x=1&y=%2F%3F&x=2&flag&empty=';
  const body = await getJson(g.url + path);
  assert.equal(body.method, 'GET');
  assert.equal(body.url, path);
  assert.equal(body.bytes, 0);
  assert.equal(up.seen.length, 1);
});

test('proxies request bodies byte for byte for POST, PUT, PATCH and DELETE, with and without Content-Length', async (t) => {
  const up = await upstream(t, hashingHandler());
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 } }));
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
    const data = randomBytes(300_000);
    const r = await request(`${g.url}/upload?m=${method}`, { method, body: data, headers: { 'content-type': 'application/octet-stream' } });
    const got = (await r.body.json()) as any;
    assert.equal(r.statusCode, 200);
    assert.deepEqual([got.method, got.url, got.bytes, got.sha256], [method, `/upload?m=${method}`, data.length, sha256(data)]);
    assert.equal(got.headers['content-length'], String(data.length));
  }
  // a streamed body without Content-Length reaches the upstream chunked and intact
  const gen = generatedBody(1_000_000 + 17);
  const r = await request(`${g.url}/chunked`, { method: 'POST', body: gen.stream });
  const got = (await r.body.json()) as any;
  assert.deepEqual([got.bytes, got.sha256], [1_000_017, gen.sha256()]);
  assert.equal(got.headers['transfer-encoding'], 'chunked');
});

test('passes the upstream status, headers and body through unchanged', async (t) => {
  const up = await upstream(t, (req, res) => {
    if (req.url === '/created') {
      res.writeHead(201, { 'content-type': 'text/plain', 'x-custom': 'yes', 'set-cookie': ['a=1; Path=/', 'b=2; HttpOnly'], 'cache-control': 'no-store', location: '/items/7' });
      res.end('created');
    } else if (req.url === '/empty') {
      res.writeHead(204, { 'x-empty': '1' });
      res.end();
    } else {
      // an upstream error status is the upstream's answer, not a gateway error
      res.writeHead(req.url === '/missing' ? 404 : 500, { 'content-type': 'application/json' });
      res.end('{"upstream":"says no"}');
    }
  });
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 } }));
  const created = await get(`${g.url}/created`);
  assert.equal(created.status, 201);
  assert.equal(created.text, 'created');
  assert.equal(created.headers['x-custom'], 'yes');
  assert.deepEqual(created.headers['set-cookie'], ['a=1; Path=/', 'b=2; HttpOnly']);
  assert.equal(created.headers['cache-control'], 'no-store');
  assert.equal(created.headers.location, '/items/7');
  assert.equal(created.headers['content-type'], 'text/plain');
  const empty = await get(`${g.url}/empty`);
  assert.deepEqual([empty.status, empty.text, empty.headers['x-empty']], [204, '', '1']);
  const missing = await get(`${g.url}/missing`);
  assert.deepEqual([missing.status, missing.text], [404, '{"upstream":"says no"}']);
  const broken = await get(`${g.url}/broken`);
  assert.deepEqual([broken.status, broken.text], [500, '{"upstream":"says no"}']);
});

test('passes an early upstream answer (413 before the body was read) to the client', async (t) => {
  // a Node upstream answers without reading the body, then drains it (keep-alive)
  const up = await upstream(t, (_req, res) => {
    res.writeHead(413, { 'content-type': 'text/plain' });
    res.end('too large');
  });
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 } }));
  const r = await request(`${g.url}/upload`, { method: 'PUT', body: randomBytes(8 * 1024 * 1024) });
  assert.equal(r.statusCode, 413);
  assert.equal(await r.body.text(), 'too large');
  assert.deepEqual(failures(g), []);
});

test('strips hop-by-hop request headers, including those the client names in Connection', async (t) => {
  const up = await upstream(t);
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 } }));
  const head = [
    'POST /hop HTTP/1.1',
    'Host: gw.example.test',
    'Connection: close, X-Hop-Req',
    'Keep-Alive: timeout=77',
    'Proxy-Connection: keep-alive',
    'TE: trailers',
    'Upgrade: websocket',
    'X-Hop-Req: per-connection',
    'X-End-To-End: kept',
    'Transfer-Encoding: chunked',
    '',
  ].join('\n');
  const r = await rawRequest(g.port, head, '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
  assert.equal(r.status, 200, r.body.toString());
  const seen = JSON.parse(r.body.toString());
  const h = seen.headers as Record<string, string>;
  assert.equal(seen.bytes, 11, 'the chunked body is re-framed, not lost');
  assert.equal(h['x-end-to-end'], 'kept');
  for (const name of ['keep-alive', 'proxy-connection', 'te', 'upgrade', 'x-hop-req']) assert.equal(h[name], undefined, `${name} must not be forwarded`);
  assert.ok(!/x-hop-req|close/i.test(h.connection ?? ''), `connection header forwarded: ${h.connection}`);
  // the gateway frames the upstream body itself: chunked from its own stream, not copied from the client
  assert.equal(h['transfer-encoding'], 'chunked');
  assert.equal(h['content-length'], undefined);
});

test('strips hop-by-hop response headers, including those the upstream names in Connection', async (t) => {
  const raw = await startTcpServer((socket) => {
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      buf = '';
      socket.write(
        [
          'HTTP/1.1 200 OK',
          'Connection: keep-alive, X-Hop-Resp',
          'Keep-Alive: timeout=99, max=7',
          'Proxy-Connection: keep-alive',
          'TE: trailers',
          'Upgrade: h2c',
          'Trailer: X-Checksum',
          'X-Hop-Resp: per-connection',
          'X-End-To-End: kept',
          'Content-Type: text/plain',
          'Transfer-Encoding: chunked',
          '',
          '5',
          'hello',
          '6',
          ' world',
          '0',
          '',
          '',
        ].join('\r\n'),
      );
    });
  });
  t.after(() => raw.close());
  const g = await gateway(t, oneRoute({ nodes: { [raw.node]: 1 } }));
  const r = await rawRequest(g.port, 'GET /hop HTTP/1.1\nHost: gw.example.test\nConnection: close\n');
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'hello world');
  const names = r.headers.map(([k]) => k);
  const value = (n: string) => r.headers.filter(([k]) => k === n).map(([, v]) => v);
  assert.deepEqual(value('x-end-to-end'), ['kept']);
  assert.deepEqual(value('content-type'), ['text/plain']);
  for (const name of ['proxy-connection', 'te', 'upgrade', 'trailer', 'x-hop-resp']) assert.ok(!names.includes(name), `${name} must not be passed to the client`);
  assert.ok(!value('keep-alive').includes('timeout=99, max=7'), 'the upstream Keep-Alive must not be passed on');
  assert.deepEqual(value('connection'), ['close'], 'Connection describes the client connection only');
  assert.deepEqual(value('transfer-encoding'), ['chunked']);
});

test('sets X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and X-Real-IP, replacing spoofed values', async (t) => {
  const up = await upstream(t);
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 } }));
  const spoofed = await getJson(`${g.url}/fwd`, {
    host: 'shop.example.test:8443',
    'x-forwarded-for': '203.0.113.7, 198.51.100.2',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'evil.example.test',
    'x-real-ip': '198.51.100.66',
  });
  // a client is not a trusted proxy: its X-Forwarded-For is dropped, not appended to
  assert.equal(spoofed.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(spoofed.headers['x-forwarded-proto'], 'http');
  assert.equal(spoofed.headers['x-forwarded-host'], 'shop.example.test:8443');
  assert.equal(spoofed.headers['x-real-ip'], '127.0.0.1');
  const plain = await getJson(`${g.url}/fwd`, { host: 'shop.example.test' });
  assert.equal(plain.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(plain.headers['x-forwarded-host'], 'shop.example.test');
  assert.equal(plain.headers['x-real-ip'], '127.0.0.1');
  assert.equal(plain.headers['x-forwarded-proto'], 'http');
});

test('pass_host: pass keeps the client Host, node sends the node address, rewrite sends upstream_host', async (t) => {
  const up = await upstream(t);
  const g = await gateway(t, {
    routes: [
      { id: 'pass', uri: '/pass', upstream: { nodes: { [up.node]: 1 }, pass_host: 'pass' } },
      { id: 'node', uri: '/node', upstream: { nodes: { [up.node]: 1 }, pass_host: 'node' } },
      { id: 'rewrite', uri: '/rewrite', upstream: { nodes: { [up.node]: 1 }, pass_host: 'rewrite', upstream_host: 'internal.example.test' } },
      { id: 'default', uri: '/default', upstream: { nodes: { [up.node]: 1 } } },
    ],
  });
  const host = { host: 'client.example.test:9080' };
  assert.equal((await getJson(`${g.url}/pass`, host)).headers.host, 'client.example.test:9080');
  assert.equal((await getJson(`${g.url}/node`, host)).headers.host, up.node);
  assert.equal((await getJson(`${g.url}/rewrite`, host)).headers.host, 'internal.example.test');
  assert.equal((await getJson(`${g.url}/default`, host)).headers.host, 'client.example.test:9080', 'pass is the default');
});
