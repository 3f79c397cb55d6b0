// Slow request bodies (slow POST): gateway.client_body_timeout ends a request whose body stops
// coming with 408, and a client that stops sending, or trickles its body below
// gateway.client_body_min_rate, cannot hold an upstream connection much longer than the upstream's
// timeout.send, so a few such clients cannot starve an upstream's small keep-alive pool. Against a `gatehouse start` process, whose sockets are read from /proc: nothing may be left
// open on either side.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent } from 'undici';
import { createRegistry } from '../core/config/registry';
import { validateConfig } from '../core/config/validate';
import { restartOnlyChanges } from '../core/config/restart-only';
import { writeFileSync } from 'node:fs';
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

test('gateway.client_body_min_rate: bytes per second, 500 by default (Apache\'s MinRate), 0 turns it off; a reload changing it applies without a restart', () => {
  const registry = createRegistry([], []);
  const check = (v: unknown) => {
    const r = validateConfig({ gateway: { client_body_min_rate: v } }, registry);
    return r.issues ? r.issues.map((i) => `${i.path}: ${i.message}`) : r.config.gateway.client_body_min_rate;
  };
  assert.equal(validateConfig({}, registry).config!.gateway.client_body_min_rate, 500);
  assert.equal(check(0), 0);
  assert.equal(check(1024 ** 3), 1024 ** 3);
  assert.deepEqual(check(-1), ['gateway.client_body_min_rate: must be >= 0']);
  assert.deepEqual(check(1024 ** 3 + 1), ['gateway.client_body_min_rate: must be <= 1073741824']);
  assert.deepEqual(check(0.5), ['gateway.client_body_min_rate: must be an integer']);
  assert.deepEqual(check('1k'), ['gateway.client_body_min_rate: must be an integer']);
  const a = validateConfig({ gateway: { client_body_min_rate: 500 } }, registry).config!;
  const b = validateConfig({ gateway: { client_body_min_rate: 0 } }, registry).config!;
  assert.deepEqual(restartOnlyChanges(a, b), []);
});

/** An upstream that answers GETs at once and records each upload: bytes received, whether its body ended, when it opened and closed. */
async function recorder(t: TestContext): Promise<Upstream & { uploads: Array<{ url: string; bytes: number; complete: boolean; openedAt: number; closedAt: number }> }> {
  const uploads: Array<{ url: string; bytes: number; complete: boolean; openedAt: number; closedAt: number }> = [];
  const up = await upstreamFor(t, (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET') {
      req.resume();
      res.end('fast');
      return;
    }
    const rec = { url: req.url ?? '', bytes: 0, complete: false, openedAt: Date.now(), closedAt: 0 };
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

/** A raw client posting `declared` bytes: `first` at once, then `piece` every `everyMs` until all are sent or the server closes. */
async function trickle(port: number, path: string, declared: number, first: string, everyMs: number, piece = 'a'): Promise<Raw & { started: number }> {
  const c = await rawConnect(port);
  const started = Date.now();
  c.socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${declared}\r\n\r\n${first}`);
  if (everyMs > 0) {
    let sent = first.length;
    const drip = setInterval(() => {
      if (!c.socket.writable || sent >= declared) return clearInterval(drip);
      const p = piece.slice(0, declared - sent);
      sent += p.length;
      c.socket.write(p);
    }, everyMs);
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

test('two clients trickling a byte a second, under timeout.send, into a keepalive_pool of 2 are cut about timeout.send after taking their connections (client_body_min_rate); the upstream\'s other route keeps answering', { timeout: 60_000 }, async (t) => {
  const up = await recorder(t);
  const gh = await gatehouse(t, {
    upstreams: [{ id: 'small', nodes: { [up.node]: 1 }, retries: 0, keepalive_pool: { size: 2, idle_timeout: 1 }, timeout: { connect: 2, send: 2, read: 10 } }],
    routes: [
      { id: 'upload', uri: '/upload/*', upstream_id: 'small' },
      { id: 'fast', uri: '/fast', upstream_id: 'small' },
    ],
  });
  // a byte every second never leaves the upstream connection idle for timeout.send (2 s), and
  // client_body_timeout stays at its default (60 s): only the minimum rate (500 B/s) bounds them
  const clients = await Promise.all([1, 2].map((i) => trickle(gh.port, `/upload/${i}`, 100, 'a', 1000)));
  await eventually('both uploads hold an upstream connection', () => up.uploads.length === 2, 5000);

  // while the two hold the pool, a GET of the other route waits for one of them to be cut; after, none waits
  const agent = new Agent({ connections: 1 });
  t.after(() => agent.close().catch(() => undefined));
  const outs = [];
  const t0 = Date.now();
  while (Date.now() - t0 < 6000) outs.push({ at: Date.now(), ...(await send(agent, `${gh.url}/fast`)) });
  await agent.close();
  assert.deepEqual([...new Set(outs.map((o) => `${o.status} ${o.body}`))], ['200 fast']);
  const slowest = Math.max(...outs.map((o) => o.ms));
  assert.ok(slowest < 4500, `a GET waited ${slowest} ms for an upstream connection (timeout.send is 2 s)`);

  for (const c of clients) {
    const res = parseResponse(await c.until(/\r\n\r\n[^]*\}/, 1000));
    assert.equal(res.status, 'HTTP/1.1 408 Request Timeout');
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.body, TIMEOUT_BODY);
  }
  // the upstream saw each request aborted about timeout.send after it began, a byte or more past the first
  await eventually('the upstream sees both uploads end', () => up.uploads.every((u) => u.closedAt > 0), 3000);
  for (const u of up.uploads) {
    const held = u.closedAt - u.openedAt;
    assert.ok(held >= 1800 && held < 4000, `${u.url} held its upstream connection ${held} ms (timeout.send is 2 s)`);
    assert.ok(u.bytes >= 2 && !u.complete, `${u.url}: ${u.bytes} bytes, complete ${u.complete}`);
  }
  // once both were cut, the other route answers at once
  const cutAt = Math.max(...up.uploads.map((u) => u.closedAt));
  const after = outs.filter((o) => o.at > cutAt + 100);
  assert.ok(after.length > 10, `only ${after.length} GETs after the cut`);
  assert.ok(Math.max(...after.map((o) => o.ms)) < 1000, `a GET after the cut took ${Math.max(...after.map((o) => o.ms))} ms`);
  // the client's fault: not an upstream failure, the node stays healthy
  assert.deepEqual(failureLines(gh, 'upload'), []);

  await eventually('the gateway holds no client connection', () => clientSockets(gh).length === 0, 3000);
  await eventually('the gateway holds no upstream connection', () => upstreamSockets(gh, [up.port]).length === 0, 5000);
  await eventually('the upstream holds no connection', async () => (await connections(up)) === 0, 3000);
});

test('an upload at or above client_body_min_rate is not cut however long it takes; with the rate off (0, applied by a reload), a trickle under timeout.send is not either', { timeout: 60_000 }, async (t) => {
  const up = await recorder(t);
  const upstream = { nodes: { [up.node]: 1 }, retries: 0, keepalive_pool: { idle_timeout: 1 }, timeout: { send: 1, read: 10 } };
  const gh = await gatehouse(t, { routes: [{ id: 'upload', uri: '/upload/*', upstream }] });

  // 200 bytes every 100 ms (2000 B/s, four times the default rate) for 3 s: three times timeout.send
  const steady = await trickle(gh.port, '/upload/steady', 6000, 'b'.repeat(200), 100, 'b'.repeat(200));
  let res = parseResponse(await steady.until(/\r\n\r\n[^]*\}/, 15_000));
  const took = Date.now() - steady.started;
  assert.equal(res.status, 'HTTP/1.1 200 OK', res.body);
  assert.equal(res.body, '{"bytes":6000}');
  assert.ok(took >= 2800, `the upload took ${took} ms`);
  steady.socket.destroy();

  // the same gateway with the rate off: the setting applies on reload, with the new snapshot
  writeFileSync(gh.file, gh.doc({ routes: [{ id: 'upload', uri: '/upload/*', upstream }, { id: 'marker', uri: '/marker', upstream }] }, { client_body_min_rate: 0 }));
  const agent = new Agent();
  t.after(() => agent.close().catch(() => undefined));
  await eventually('the reload is served', async () => (await send(agent, `${gh.url}/marker`)).status === 200, 10_000);
  await agent.close();
  // a byte every 400 ms for 2.8 s: 2.5 bytes a second, cut after about 1 s with the default rate
  const slow = await trickle(gh.port, '/upload/slow', 8, 'a', 400);
  res = parseResponse(await slow.until(/\r\n\r\n[^]*\}/, 15_000));
  assert.equal(res.status, 'HTTP/1.1 200 OK', res.body);
  assert.equal(res.body, '{"bytes":8}');
  slow.socket.destroy();
  assert.deepEqual(up.uploads.map((u) => [u.url, u.bytes, u.complete]), [['/upload/steady', 6000, true], ['/upload/slow', 8, true]]);
  assert.deepEqual(failureLines(gh, 'upload'), []);
});
