// Slow request bodies (slow POST): gateway.client_body_timeout ends a request whose body stops
// coming with 408, and a client that stops sending cannot hold an upstream connection longer than
// the upstream's timeout.send, so a few such clients cannot starve an upstream's small keep-alive
// pool. Against a `gatehouse start` process, whose sockets are read from /proc: nothing may be left
// open on either side.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent } from 'undici';
import { createRegistry } from '../core/config/registry';
import { validateConfig } from '../core/config/validate';
import { restartOnlyChanges } from '../core/config/restart-only';
import { eventually, upstreamFor, type Upstream } from './helpers/harness';
import { clientSockets, connections, failureLines, gatehouse, send, upstreamSockets } from './helpers/faults-traffic';
import { parseResponse, rawConnect, type Raw } from './servers/raw-http';

const TIMEOUT_BODY = '{"message":"408 Request Timeout"}';

test('gateway.client_body_timeout: seconds, 60 by default (nginx\'s), above 0 and at most an hour; a reload changing it applies without a restart', () => {
  const registry = createRegistry([], []);
  const check = (v: unknown) => {
    const r = validateConfig({ gateway: { client_body_timeout: v } }, registry);
    return r.issues ? r.issues.map((i) => `${i.path}: ${i.message}`) : r.config.gateway.client_body_timeout;
  };
  assert.equal(validateConfig({}, registry).config!.gateway.client_body_timeout, 60);
  assert.equal(check(0.5), 0.5);
  assert.deepEqual(check(0), ['gateway.client_body_timeout: must be > 0']);
  assert.deepEqual(check(3601), ['gateway.client_body_timeout: must be <= 3600']);
  assert.deepEqual(check('soon'), ['gateway.client_body_timeout: must be a number']);
  // read per request from the request's snapshot: not one of the settings read only at start
  const a = validateConfig({ gateway: { client_body_timeout: 60 } }, registry).config!;
  const b = validateConfig({ gateway: { client_body_timeout: 5 } }, registry).config!;
  assert.deepEqual(restartOnlyChanges(a, b), []);
});

/** An upstream that answers GETs at once and records each upload: bytes received, whether its body ended, when it closed. */
async function recorder(t: TestContext): Promise<Upstream & { uploads: Array<{ url: string; bytes: number; complete: boolean; closedAt: number }> }> {
  const uploads: Array<{ url: string; bytes: number; complete: boolean; closedAt: number }> = [];
  const up = await upstreamFor(t, (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET') {
      req.resume();
      res.end('fast');
      return;
    }
    const rec = { url: req.url ?? '', bytes: 0, complete: false, closedAt: 0 };
    uploads.push(rec);
    req.on('data', (d: Buffer) => (rec.bytes += d.length));
    req.on('end', () => {
      rec.complete = true;
      res.end(JSON.stringify({ bytes: rec.bytes }));
    });
    req.on('close', () => (rec.closedAt = Date.now()));
  });
  return Object.assign(up, { uploads });
}

/** A raw client posting `declared` bytes: `first` at once, then one byte every `everyMs` until the server closes. */
async function trickle(port: number, path: string, declared: number, first: string, everyMs: number): Promise<Raw & { started: number }> {
  const c = await rawConnect(port);
  const started = Date.now();
  c.socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${declared}\r\n\r\n${first}`);
  if (everyMs > 0) {
    const drip = setInterval(() => (c.socket.writable ? c.socket.write('a') : undefined), everyMs);
    void c.closed.then(() => clearInterval(drip));
  }
  return Object.assign(c, { started });
}

test('two clients trickling bodies into a keepalive_pool of 2 are cut at timeout.send with 408; the upstream\'s other route keeps answering', { timeout: 60_000 }, async (t) => {
  const up = await recorder(t);
  const gh = await gatehouse(t, {
    upstreams: [{ id: 'small', nodes: { [up.node]: 1 }, retries: 0, keepalive_pool: { size: 2, idle_timeout: 1 }, timeout: { connect: 2, send: 1, read: 10 } }],
    routes: [
      { id: 'upload', uri: '/upload/*', upstream_id: 'small' },
      { id: 'fast', uri: '/fast', upstream_id: 'small' },
    ],
  });
  // client_body_timeout stays at its default (60 s): what frees the connections is timeout.send
  const clients = await Promise.all([1, 2].map((i) => trickle(gh.port, `/upload/${i}`, 100, 'a', 1500)));
  await eventually('both uploads hold an upstream connection', () => up.uploads.length === 2, 5000);

  // the pool's two connections are taken: every GET of the other route waits for one to be freed
  const agent = new Agent({ connections: 1 });
  t.after(() => agent.close().catch(() => undefined));
  const outs = [];
  const t0 = Date.now();
  while (Date.now() - t0 < 3000) outs.push(await send(agent, `${gh.url}/fast`));
  assert.deepEqual([...new Set(outs.map((o) => `${o.status} ${o.body}`))], ['200 fast']);
  const slowest = Math.max(...outs.map((o) => o.ms));
  assert.ok(slowest < 3000, `a GET waited ${slowest} ms for an upstream connection (timeout.send is 1 s)`);
  assert.ok(outs.length > 10, `only ${outs.length} GETs answered in 3 s`);
  await agent.close();

  for (const c of clients) {
    const res = parseResponse(await c.until(/\r\n\r\n[^]*\}/, 5000));
    assert.equal(res.status, 'HTTP/1.1 408 Request Timeout');
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.body, TIMEOUT_BODY);
    const closed = await c.closed;
    assert.ok(closed.at - c.started < 5000, `the trickling client was closed after ${closed.at - c.started} ms`);
  }
  // the upstream saw both requests aborted, each with the one byte that came before the stall
  await eventually('the upstream sees both uploads end', () => up.uploads.every((u) => u.closedAt > 0), 3000);
  assert.deepEqual(up.uploads.map((u) => [u.bytes, u.complete]), [[1, false], [1, false]]);
  // the client's fault: not an upstream failure, the node stays healthy
  assert.deepEqual(failureLines(gh, 'upload'), []);

  await eventually('the gateway holds no client connection', () => clientSockets(gh).length === 0, 3000);
  await eventually('the gateway holds no upstream connection', () => upstreamSockets(gh, [up.port]).length === 0, 5000);
  await eventually('the upstream holds no connection', async () => (await connections(up)) === 0, 3000);
});

test('gateway.client_body_timeout: a body that stops coming, or never comes, is answered 408 and its upstream request aborted; a local answer does not wait for it either', { timeout: 60_000 }, async (t) => {
  const up = await recorder(t);
  const gh = await gatehouse(
    t,
    {
      routes: [
        // timeout.send far above client_body_timeout: here the body timeout is what ends the request
        { id: 'upload', uri: '/upload/*', upstream: { nodes: { [up.node]: 1 }, retries: 0, keepalive_pool: { idle_timeout: 1 }, timeout: { send: 30, read: 30 } } },
        { id: 'auth', uri: '/auth', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.node]: 1 } } },
      ],
      consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'slow-body-test-key' } } }],
    },
    { client_body_timeout: 1 },
  );

  // ten of a hundred bytes, then nothing; and none at all
  const partial = await trickle(gh.port, '/upload/partial', 100, 'x'.repeat(10), 0);
  const none = await trickle(gh.port, '/upload/none', 100, '', 0);
  for (const [c, bytes] of [[partial, 10], [none, 0]] as const) {
    const res = parseResponse(await c.until(/\r\n\r\n[^]*\}/, 5000));
    const took = Date.now() - c.started;
    assert.equal(res.status, 'HTTP/1.1 408 Request Timeout');
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.body, TIMEOUT_BODY);
    assert.ok(took >= 900 && took < 3500, `answered after ${took} ms`);
    const closed = await c.closed;
    assert.ok(closed.at - c.started < 5000, `closed after ${closed.at - c.started} ms`);
    if (bytes === 0) continue; // undici sends the request head with the first body byte: this one never reached the upstream
    const rec = () => up.uploads.find((u) => u.url === '/upload/partial');
    await eventually('the upstream sees the partial upload end', () => (rec()?.closedAt ?? 0) > 0, 3000);
    assert.deepEqual([rec()!.bytes, rec()!.complete], [bytes, false], 'the upstream request was aborted');
  }
  assert.deepEqual(up.uploads.map((u) => [u.url, u.complete]), [['/upload/partial', false]]);
  assert.deepEqual(failureLines(gh, 'upload'), []);

  // key-auth answers 401 without the body; the body never comes: the connection is not kept for it
  const refused = await trickle(gh.port, '/auth', 100, '', 0);
  const res = parseResponse(await refused.until(/\r\n\r\n[^]*\}/, 5000));
  assert.equal(res.status, 'HTTP/1.1 401 Unauthorized');
  const closed = await refused.closed;
  assert.ok(closed.at - refused.started < 3500, `the connection of a body that never comes was closed after ${closed.at - refused.started} ms`);

  await eventually('the gateway holds no client connection', () => clientSockets(gh).length === 0, 3000);
  await eventually('the gateway holds no upstream connection', () => upstreamSockets(gh, [up.port]).length === 0, 5000);
  await eventually('the upstream holds no connection', async () => (await connections(up)) === 0, 3000);
});
