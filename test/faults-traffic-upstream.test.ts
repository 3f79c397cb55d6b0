// Faults under concurrent load against a `gatehouse start` process, upstream side: upstreams that
// refuse, reset or stall while many clients send requests. The test asserts the exact statuses and
// then that nothing is left behind: every client request settled within a bound, the gateway process
// holds no client or upstream socket once the clients are gone (read from /proc), the upstreams hold
// none, and /metrics counted every request as finished (so none is still in flight).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { Agent } from 'undici';
import { eventually, refusedPort, upstreamFor } from './helpers/harness';
import {
  BOUND_MS,
  GAVE_UP,
  clientSockets,
  connections,
  failureLines,
  gatehouse,
  metrics,
  onRequest,
  pool,
  send,
  tally,
  tcpFor,
  total,
  upstreamSockets,
  type Outcome,
} from './helpers/faults-traffic';

// ---------------------------------------------------------------------------------------------
// upstream faults under load

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
