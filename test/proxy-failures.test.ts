// Whole-gateway proxy tests, failures: real upstreams (HTTP and raw TCP) on 127.0.0.1 that refuse,
// reset, stall or never answer, a real gateway, real clients. Covers local error responses, retries
// and the connect, send and read timeouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request } from 'undici';
import { gatewayFor as gateway, upstreamFor as upstream, delay, refusedPort, startBlackhole, startTcpServer, type TestGateway } from './helpers/harness';
import { failures, generatedBody, get, getJson, hashingHandler, oneRoute, resettingServer, sha256 } from './helpers/proxy';


// ---------------------------------------------------------------------------------------------
// local responses

test('answers an unknown path with 404 {"message":"404 Route Not Found"}', async (t) => {
  const up = await upstream(t);
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 } }, '/known'));
  const r = await get(`${g.url}/unknown`);
  assert.equal(r.status, 404);
  assert.equal(r.text, '{"message":"404 Route Not Found"}');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(up.seen.length, 0);
});

test('answers a route without an upstream with 503', async (t) => {
  const g = await gateway(t, { routes: [{ id: 'nowhere', uri: '/nowhere' }] });
  const r = await get(`${g.url}/nowhere`);
  assert.equal(r.status, 503);
  assert.equal(r.text, '{"message":"503 Service Unavailable"}');
  assert.equal(r.headers['content-type'], 'application/json');
});

test('answers 502 {"message":"502 Bad Gateway"} when the only node refuses connections', async (t) => {
  const port = await refusedPort();
  const g = await gateway(t, oneRoute({ nodes: { [`127.0.0.1:${port}`]: 1 } }));
  const r = await get(`${g.url}/x`);
  assert.equal(r.status, 502);
  assert.equal(r.text, '{"message":"502 Bad Gateway"}');
  assert.equal(r.headers['content-type'], 'application/json');
  const f = failures(g);
  assert.equal(f.length, 1);
  assert.equal(f[0].code, 'ECONNREFUSED');
  assert.equal(f[0].retry, false);
});

// ---------------------------------------------------------------------------------------------
// retries

test('retries a GET on the other node when one node refuses connections', async (t) => {
  const dead = `127.0.0.1:${await refusedPort()}`;
  const live = await upstream(t);
  const g = await gateway(t, oneRoute({ nodes: { [dead]: 1, [live.node]: 1 }, checks: { passive: { failures: 100 } } }));
  for (let i = 0; i < 6; i++) {
    const r = await get(`${g.url}/r${i}`);
    assert.equal(r.status, 200, r.text);
  }
  const f = failures(g);
  // round robin sends every other first attempt to the dead node; each is retried once on the live node
  assert.equal(f.length, 3);
  for (const l of f) assert.deepEqual([l.upstream, l.code, l.retry], [dead, 'ECONNREFUSED', true]);
  assert.equal(live.seen.length, 6, 'each request reached the live node exactly once');
});

test('retries a POST with a body after a refused connection and delivers the body intact', async (t) => {
  const dead = `127.0.0.1:${await refusedPort()}`;
  const live = await upstream(t, hashingHandler('live'));
  // the heavy weight makes the dead node the first choice
  const g = await gateway(t, oneRoute({ nodes: { [dead]: 100, [live.node]: 1 } }));
  const data = randomBytes(2 * 1024 * 1024 + 3);
  const r = await request(`${g.url}/orders`, { method: 'POST', body: data });
  const got = (await r.body.json()) as any;
  assert.equal(r.statusCode, 200);
  assert.deepEqual([got.name, got.bytes, got.sha256], ['live', data.length, sha256(data)]);
  const gen = generatedBody(3 * 1024 * 1024);
  const r2 = await request(`${g.url}/orders-chunked`, { method: 'POST', body: gen.stream });
  const got2 = (await r2.body.json()) as any;
  assert.deepEqual([r2.statusCode, got2.bytes, got2.sha256], [200, 3 * 1024 * 1024, gen.sha256()]);
  const f = failures(g);
  assert.deepEqual(
    f.map((l) => [l.upstream, l.code, l.retry]),
    [
      [dead, 'ECONNREFUSED', true],
      [dead, 'ECONNREFUSED', true],
    ],
  );
  assert.equal(live.seen.length, 2);
});

test('retries a GET whose connection is reset before the upstream answered', async (t) => {
  const reset = await resettingServer(t);
  const live = await upstream(t, undefined, 'live');
  const g = await gateway(t, oneRoute({ nodes: { [reset.node]: 100, [live.node]: 1 } }));
  const body = await getJson(`${g.url}/idempotent`);
  assert.equal(body.name, 'live');
  assert.equal(reset.accepted(), 1);
  assert.equal(live.seen.length, 1);
  const f = failures(g);
  assert.equal(f.length, 1);
  assert.deepEqual([f[0].upstream, f[0].retry], [reset.node, true]);
});

test('does not retry a POST whose connection is reset mid-request: 502', async (t) => {
  const reset = await resettingServer(t);
  const live = await upstream(t, hashingHandler('live'));
  const g = await gateway(t, oneRoute({ nodes: { [reset.node]: 100, [live.node]: 1 } }));
  const data = randomBytes(256 * 1024);
  const r = await request(`${g.url}/payments`, { method: 'POST', body: data });
  assert.equal(r.statusCode, 502);
  assert.equal(await r.body.text(), '{"message":"502 Bad Gateway"}');
  assert.equal(reset.accepted(), 1);
  assert.equal(live.seen.length, 0, 'a non-idempotent request that may have reached an upstream is never sent twice');
  const f = failures(g);
  assert.equal(f.length, 1);
  assert.deepEqual([f[0].upstream, f[0].retry], [reset.node, false]);
});

test('retries: 0 sends each request to one node only', async (t) => {
  const dead = `127.0.0.1:${await refusedPort()}`;
  const live = await upstream(t);
  const g = await gateway(t, oneRoute({ nodes: { [dead]: 100, [live.node]: 1 }, retries: 0 }));
  const r = await get(`${g.url}/once`);
  assert.equal(r.status, 502);
  assert.equal(r.text, '{"message":"502 Bad Gateway"}');
  assert.equal(live.seen.length, 0);
  assert.deepEqual(
    failures(g).map((l) => [l.upstream, l.code, l.retry]),
    [[dead, 'ECONNREFUSED', false]],
  );
});

test('answers 502 after every node failed, having tried each once', async (t) => {
  const dead1 = `127.0.0.1:${await refusedPort()}`;
  const dead2 = `127.0.0.1:${await refusedPort()}`;
  const g = await gateway(t, oneRoute({ nodes: { [dead1]: 1, [dead2]: 1 } }));
  const r = await get(`${g.url}/all-down`);
  assert.equal(r.status, 502);
  assert.equal(r.text, '{"message":"502 Bad Gateway"}');
  const f = failures(g);
  assert.deepEqual(
    f.map((l) => l.retry),
    [true, false],
  );
  assert.deepEqual(new Set(f.map((l) => l.upstream)), new Set([dead1, dead2]));
});

// ---------------------------------------------------------------------------------------------
// timeouts

/**
 * GET `path` through `g` with a 1 s timeout configured: a 504 with nginx's body after about a
 * second (under `maxMs`), logged as one failure `code` and not retried.
 */
async function expectTimeout(g: TestGateway, path: string, maxMs: number, code: string): Promise<void> {
  const started = Date.now();
  const r = await get(`${g.url}${path}`);
  const elapsed = Date.now() - started;
  assert.equal(r.status, 504);
  assert.equal(r.text, '{"message":"504 Gateway Timeout"}');
  assert.ok(elapsed >= 900 && elapsed < maxMs, `answered after ${elapsed} ms, expected about 1000`);
  assert.deepEqual(
    failures(g).map((l) => [l.code, l.retry]),
    [[code, false]],
  );
}

test('answers 504 {"message":"504 Gateway Timeout"} when the upstream sends no headers within timeout.read', async (t) => {
  const timers = new Set<NodeJS.Timeout>();
  t.after(() => timers.forEach(clearTimeout));
  const up = await upstream(t, (_req, res) => {
    timers.add(setTimeout(() => res.end('too late'), 4000));
  });
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 }, timeout: { read: 1 } }));
  await expectTimeout(g, '/slow', 2500, 'UND_ERR_HEADERS_TIMEOUT');
});

test('cuts the response short when the upstream body stalls longer than timeout.read', async (t) => {
  const up = await upstream(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('x'.repeat(100)); // then nothing
  });
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 }, timeout: { read: 1 } }));
  const started = Date.now();
  const r = await request(`${g.url}/stall`);
  assert.equal(r.statusCode, 200);
  await assert.rejects(r.body.text());
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 900 && elapsed < 2500, `cut after ${elapsed} ms, expected about 1000`);
  assert.deepEqual(
    failures(g).map((l) => l.code),
    ['UND_ERR_BODY_TIMEOUT'],
  );
});

test('answers 504 when the upstream does not read the request body within timeout.send', async (t) => {
  // accepts, never reads: the kernel buffers fill and the gateway cannot send any more
  const sink = await startTcpServer((socket) => socket.pause());
  t.after(() => sink.close());
  const g = await gateway(t, oneRoute({ nodes: { [sink.node]: 1 }, timeout: { send: 1, read: 30 } }));
  const size = 64 * 1024 * 1024;
  const gen = generatedBody(size, 1024 * 1024);
  const started = Date.now();
  const r = await request(`${g.url}/upload`, { method: 'PUT', body: gen.stream, headers: { 'content-length': String(size) } });
  const elapsed = Date.now() - started;
  assert.equal(r.statusCode, 504);
  assert.equal(await r.body.text(), '{"message":"504 Gateway Timeout"}');
  assert.ok(elapsed < 8000, `answered after ${elapsed} ms`);
  assert.deepEqual(
    failures(g).map((l) => [l.code, l.retry]),
    [['GH_SEND_TIMEOUT', false]],
  );
});

/** POST `parts` to `url`, pausing `pauseMs` after each but the last; the answer. */
function slowUpload(url: string, parts: readonly string[], pauseMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    void (async () => {
      for (const p of parts.slice(0, -1)) {
        req.write(p);
        await delay(pauseMs);
        if (req.destroyed) return;
      }
      req.end(parts[parts.length - 1]);
    })();
  });
}

test('a client that uploads slowly, pausing less than timeout.send, gets its body through', async (t) => {
  const up = await upstream(t, hashingHandler());
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 }, timeout: { send: 1.5, read: 10 } }));
  const parts = ['hello ', 'slow ', 'world'];
  const r = await slowUpload(`${g.url}/slow-client`, parts, 500);
  assert.equal(r.status, 200, r.body);
  const got = JSON.parse(r.body);
  assert.deepEqual([got.bytes, got.sha256], [16, sha256(Buffer.from(parts.join('')))]);
  assert.deepEqual(failures(g), []);
});

test('a client that pauses its upload longer than timeout.send gets 408 and frees the upstream connection; not the node\'s failure', async (t) => {
  const up = await upstream(t, hashingHandler());
  const g = await gateway(t, oneRoute({ nodes: { [up.node]: 1 }, timeout: { send: 0.5, read: 10 } }));
  // each pause is longer than timeout.send: the client, not the upstream, keeps the connection idle
  const t0 = Date.now();
  const r = await slowUpload(`${g.url}/slow-client`, ['hello ', 'slow ', 'world'], 2000);
  const took = Date.now() - t0;
  assert.equal(r.status, 408, r.body);
  assert.equal(r.body, '{"message":"408 Request Timeout"}');
  assert.ok(took >= 400 && took < 1900, `answered after ${took} ms, during the first pause`);
  assert.deepEqual(failures(g), [], 'a slow client must not count against the upstream node');
});

test('answers 504 when the connection to the upstream is not established within timeout.connect', async (t) => {
  const hole = await startBlackhole();
  t.after(() => hole.close());
  const g = await gateway(t, oneRoute({ nodes: { [hole.node]: 1 }, timeout: { connect: 1 } }));
  await expectTimeout(g, '/nowhere', 3000, 'UND_ERR_CONNECT_TIMEOUT');
});

test('retries a request on another node after a connect timeout', async (t) => {
  const hole = await startBlackhole();
  t.after(() => hole.close());
  const live = await upstream(t, hashingHandler('live'));
  const g = await gateway(t, oneRoute({ nodes: { [hole.node]: 100, [live.node]: 1 }, timeout: { connect: 0.5 } }));
  const data = randomBytes(100_000);
  const r = await request(`${g.url}/post`, { method: 'POST', body: data });
  const got = (await r.body.json()) as any;
  assert.deepEqual([r.statusCode, got.name, got.sha256], [200, 'live', sha256(data)]);
  assert.deepEqual(
    failures(g).map((l) => [l.upstream, l.code, l.retry]),
    [[hole.node, 'UND_ERR_CONNECT_TIMEOUT', true]],
  );
});

test('a client still uploading when the gateway gives up on the upstream gets the 504 at once, not a stalled connection', async (t) => {
  // the upstream accepts and never reads: the send timeout fires while the client is mid-upload
  const deaf = await startTcpServer((socket) => socket.pause());
  t.after(() => deaf.close());
  const g = await gateway(t, oneRoute({ nodes: { [deaf.node]: 1 }, retries: 0, timeout: { connect: 1, send: 1, read: 10 } }));
  const size = 32 * 1024 * 1024;
  const t0 = Date.now();
  const { status, ms } = await new Promise<{ status: number; ms: number }>((resolve, reject) => {
    const req = httpRequest(`${g.url}/upload`, { method: 'POST', headers: { 'content-length': String(size) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - t0 }));
    });
    req.on('error', reject);
    const chunk = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
  assert.equal(status, 504);
  assert.ok(ms < 3000, `answered after ${ms} ms`);
});
