// Faults under concurrent load against a `gatehouse start` process, client side: clients that abort
// uploads and downloads by the hundred. The test asserts that the upstream saw each exchange aborted,
// that nothing is left behind (no socket in the gateway process, read from /proc, nor in the
// upstream; /metrics counted every request as finished) and that the gateway's memory stays flat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { delay, eventually, rssOf, upstreamFor } from './helpers/harness';
import { BOUND_MS, MiB, clientSockets, connections, gatehouse, metrics, total, upstreamSockets } from './helpers/faults-traffic';

// ---------------------------------------------------------------------------------------------
// client aborts by the hundred

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
