// HTTP/2's own abuse, bounded (docs/tls.md "HTTP/2", core/request/h2.ts H2_BOUNDS): each attack is
// written frame by frame by a raw client (test/helpers/h2-frames.ts) over real TLS with ALPN h2, and
// what it costs the gateway is counted: upstream requests it caused, streams it got, how long the
// session lived, memory. Node's (nghttp2's) mitigations for rapid reset (CVE-2023-44487) and
// CONTINUATION floods (CVE-2024-27983 / CVE-2024-28182) are checked here, not assumed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { bootGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness';
import { makeTestCa, type TestCa } from './helpers/tls-pki';
import { FLAG, FRAME, H2_ERROR, frame, headerBlock, ping, rawH2, request, rstStream, settings, type RawH2 } from './helpers/h2-frames';
import { H2_BOUNDS } from '../core/request/h2';

const NAME = 'abuse.h2.test';
let ca: TestCa;
let pair: { cert: string; key: string };
let up: Upstream;
let g: TestGateway;
let port: number;
/** Upstream requests seen, and the held ones (/hold answers only when released). */
let hits = 0;
const held: ServerResponse[] = [];

before(async () => {
  ca = makeTestCa('gatehouse h2 abuse CA');
  const issued = ca.issue('abuse', { names: [NAME] });
  pair = { cert: issued.cert, key: issued.key };
  up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    hits++;
    req.resume();
    if (req.url === '/hold') {
      held.push(res);
      return;
    }
    req.on('end', () => res.end('ok'));
  });
  g = await bootGateway(
    {
      // 2 s for a first request: the idle test waits that long
      gateway: { client_header_timeout: 2, access_log: false },
      ssls: [{ id: 'abuse', ...pair, snis: [NAME] }],
      routes: [{ id: 'r', uri: '/*', upstream: { nodes: { [up.node]: 1 } } }],
    },
    { listenTls: '127.0.0.1:0' },
  );
  port = g.gw.tlsAddress!.port;
});

after(async () => {
  for (const r of held) r.destroy();
  await g?.close();
  await up?.close();
});

const connectRaw = (opts?: { ackSettings?: boolean }) => rawH2(port, NAME, ca.cert, opts);

test('rapid reset (HEADERS + RST_STREAM, 20000 streams): the session is closed with GOAWAY and few of them reach the upstream', { timeout: 60000 }, async (t) => {
  const c = await connectRaw();
  await c.until(() => c.frames.some((f) => f.type === FRAME.SETTINGS));
  const before = hits;
  const block = request(NAME, '/reset');
  const N = 20000;
  let sent = 0;
  // written in batches, as fast as the socket takes them
  for (let id = 1; sent < N && !c.isClosed(); ) {
    const batch: Buffer[] = [];
    for (let i = 0; i < 500 && sent < N; i++, sent++, id += 2) batch.push(frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, id, block), rstStream(id, H2_ERROR.CANCEL));
    // (a server that stops reading and closes never drains the socket: the close ends the wait too)
    if (!c.write(Buffer.concat(batch))) await Promise.race([new Promise((r) => c.socket.once('drain', r)), c.closed, new Promise((r) => setTimeout(r, 5000))]);
  }
  await Promise.race([c.closed, new Promise((r) => setTimeout(r, 5000))]);
  await new Promise((r) => setTimeout(r, 500));
  const reached = hits - before;
  t.diagnostic(`streams written: ${sent}; GOAWAY code: ${c.goaway()}; upstream requests: ${reached}; closed: ${c.isClosed()}`);
  // nghttp2's reset-rate limit ends the session; Node sends the GOAWAY with INTERNAL_ERROR
  assert.ok(c.goaway() !== undefined && c.goaway() !== H2_ERROR.NO_ERROR, `a GOAWAY with an error (${c.goaway()})`);
  assert.ok(c.isClosed(), 'the session is closed');
  assert.ok(reached < 20, `upstream requests caused: ${reached} of ${sent} streams`);
  c.socket.destroy();
});

test('CONTINUATION flood (a header block that never ends): the session is closed, memory stays bounded', { timeout: 60000 }, async (t) => {
  const c = await connectRaw();
  await c.until(() => c.frames.some((f) => f.type === FRAME.SETTINGS));
  const rss0 = process.memoryUsage().rss;
  c.write(frame(FRAME.HEADERS, 0, 1, request(NAME, '/cont')));
  // each CONTINUATION adds a small field and never sets END_HEADERS
  const piece = frame(FRAME.CONTINUATION, 0, 1, headerBlock([['x-flood', 'a'.repeat(100)]]));
  let frames = 0;
  const deadline = Date.now() + 10_000;
  while (!c.isClosed() && Date.now() < deadline && frames < 200_000) {
    const batch = Buffer.concat(Array.from({ length: 200 }, () => piece));
    frames += 200;
    if (!c.write(batch)) await Promise.race([new Promise((r) => c.socket.once('drain', r)), c.closed]);
  }
  await Promise.race([c.closed, new Promise((r) => setTimeout(r, 3000))]);
  const grew = (process.memoryUsage().rss - rss0) / 1048576;
  t.diagnostic(`CONTINUATION frames written: ${frames}; GOAWAY code: ${c.goaway()}; closed: ${c.isClosed()}; rss growth ${grew.toFixed(1)} MiB`);
  assert.ok(c.isClosed(), 'the session is closed');
  assert.ok(c.goaway() !== undefined && c.goaway() !== H2_ERROR.NO_ERROR, `with a GOAWAY with an error (${c.goaway()})`);
  assert.ok(frames < 200_000, 'long before the flood ended');
  assert.ok(grew < 64, `rss grew ${grew.toFixed(1)} MiB`);
  assert.equal(c.answered().size, 0, 'no request came of it');
  c.socket.destroy();
});

test(`oversized header list (over ${H2_BOUNDS.maxHeaderListSize} bytes, the HTTP/1.1 head limit): refused before the upstream; one within it is served`, { timeout: 30000 }, async (t) => {
  const before = hits;
  const c = await connectRaw();
  await c.until(() => c.frames.some((f) => f.type === FRAME.SETTINGS));
  // 24 KiB of one field, in frames of 16 KiB (the default SETTINGS_MAX_FRAME_SIZE)
  const block = request(NAME, '/big-headers', [['x-big', 'b'.repeat(24 * 1024)]]);
  c.write(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, block.subarray(0, 16384)));
  c.write(frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, block.subarray(16384)));
  await c.until(() => c.resets().has(1) || c.goaway() !== undefined || c.answered().has(1));
  t.diagnostic(`stream 1: reset ${c.resets().get(1)}, GOAWAY ${c.goaway()}, answered ${c.answered().has(1)}`);
  assert.equal(c.answered().has(1), false, 'not answered by the upstream');
  assert.equal(c.resets().get(1) ?? c.goaway(), H2_ERROR.ENHANCE_YOUR_CALM);
  assert.equal(hits, before, 'the upstream never saw it');
  c.socket.destroy();

  // 8 KiB is fine, as over HTTP/1.1
  const s = h2connect(`https://127.0.0.1:${port}`, { ca: ca.cert, servername: NAME });
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const r = s.request({ ':path': '/ok-headers', 'x-big': 'b'.repeat(8 * 1024) });
      r.on('response', (h) => resolve(Number(h[':status'])));
      r.on('error', reject);
      r.resume();
    });
    assert.equal(status, 200);
  } finally {
    s.close();
  }
});

/** Open stream 1 on `c`, a GET of /hold; resolve once the upstream holds it, with where it is in `held`. */
async function holdStreamOne(c: RawH2): Promise<number> {
  const at = held.length;
  c.write(frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1, request(NAME, '/hold')));
  while (held.length === at) await new Promise((r) => setTimeout(r, 20));
  return at;
}

/** Open `n` streams of GET /hold at once on `c`; resolve when the upstream holds `expect` more of them (or 10 s). */
async function openHeld(c: RawH2, n: number, expect: number): Promise<number> {
  const heldBefore = held.length;
  const block = request(NAME, '/hold');
  const batch: Buffer[] = [];
  for (let i = 0, id = 1; i < n; i++, id += 2) batch.push(frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, id, block));
  c.write(Buffer.concat(batch));
  const deadline = Date.now() + 10_000;
  while (held.length - heldBefore < expect && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 200));
  return held.length - heldBefore;
}

test(`more than ${H2_BOUNDS.maxConcurrentStreams} concurrent streams: refused with REFUSED_STREAM while the client has not acknowledged the limit, a connection error once it has`, { timeout: 30000 }, async (t) => {
  const open = 160;
  // a client that has not acknowledged the server's SETTINGS yet: the extra streams are refused, the session goes on
  const c = await connectRaw({ ackSettings: false });
  await c.until(() => c.frames.some((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0));
  const heldBefore = held.length;
  const reachedA = await openHeld(c, open, H2_BOUNDS.maxConcurrentStreams);
  await c.until(() => c.resets().size >= open - H2_BOUNDS.maxConcurrentStreams);
  const refused = [...c.resets().values()].filter((code) => code === H2_ERROR.REFUSED_STREAM).length;
  t.diagnostic(`not acknowledged: streams opened ${open}; refused ${refused}; held upstream ${reachedA}`);
  assert.equal(refused, open - H2_BOUNDS.maxConcurrentStreams);
  assert.equal(reachedA, H2_BOUNDS.maxConcurrentStreams);
  for (const r of held.splice(heldBefore)) r.end('released');
  await c.until(() => c.answered().size === H2_BOUNDS.maxConcurrentStreams);
  assert.equal(c.isClosed(), false);
  c.socket.destroy();

  // a client that acknowledged the limit and exceeds it: a protocol error, the session is closed
  const d = await connectRaw();
  await d.until(() => d.frames.some((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) !== 0));
  // the server's SETTINGS acknowledged (rawH2 does it as they arrive) before the streams go out
  await new Promise((r) => setTimeout(r, 100));
  const before = held.length;
  const reachedB = await openHeld(d, open, 0);
  await Promise.race([d.closed, new Promise((r) => setTimeout(r, 5000))]);
  t.diagnostic(`acknowledged: GOAWAY ${d.goaway()}; closed ${d.isClosed()}; reached upstream ${reachedB}`);
  // the GOAWAY (PROTOCOL_ERROR) may be lost to the reset of a connection closed with unread input
  assert.ok(d.goaway() === undefined || d.goaway() === H2_ERROR.PROTOCOL_ERROR, `GOAWAY ${d.goaway()}`);
  assert.ok(d.isClosed());
  assert.ok(reachedB <= H2_BOUNDS.maxConcurrentStreams, `at most the limit reached the upstream (${reachedB})`);
  for (const r of held.splice(before)) r.destroy();
  d.socket.destroy();
});

test('PING flood from a client that never reads: the gateway stops reading it (or closes it) and its memory stays bounded; a SETTINGS frame with too many entries closes the session', { timeout: 60000 }, async (t) => {
  const c = await connectRaw();
  await c.until(() => c.frames.some((f) => f.type === FRAME.SETTINGS));
  // a stream held open upstream: the session is not idle, so the idle timer does not end it
  const heldBefore = await holdStreamOne(c);
  const rss0 = process.memoryUsage().rss;
  c.socket.pause();
  const batch = Buffer.concat(Array.from({ length: 1000 }, (_v, i) => ping(i)));
  let pings = 0;
  let stalled = false;
  const deadline = Date.now() + 20_000;
  while (!c.isClosed() && Date.now() < deadline && pings < 5_000_000) {
    pings += 1000;
    if (!c.write(batch)) {
      // the client writes only what the gateway reads: 2 s without a drain, the gateway stopped reading
      const drained = await Promise.race([new Promise((r) => c.socket.once('drain', () => r(true))), c.closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 2000))]);
      if (!drained) {
        stalled = true;
        break;
      }
    }
  }
  const grew = (process.memoryUsage().rss - rss0) / 1048576;
  const unread = Math.round(c.socket.writableLength / 17);
  t.diagnostic(`PINGs written: ${pings} (about ${unread} not taken by the gateway); gateway stopped reading: ${stalled}; closed: ${c.isClosed()} (GOAWAY ${c.goaway()}); rss growth ${grew.toFixed(1)} MiB`);
  assert.ok(stalled || c.isClosed(), 'the gateway stopped reading the flood, or closed the session');
  assert.ok(grew < 64, `rss grew ${grew.toFixed(1)} MiB`);
  for (const r of held.splice(heldBefore)) r.destroy();
  c.socket.destroy();

  const s = await connectRaw();
  await s.until(() => s.frames.some((f) => f.type === FRAME.SETTINGS));
  s.write(settings(Array.from({ length: H2_BOUNDS.maxSettings + 1 }, () => [0x4, 65535] as const)));
  await Promise.race([s.closed, new Promise((r) => setTimeout(r, 5000))]);
  t.diagnostic(`SETTINGS with ${H2_BOUNDS.maxSettings + 1} entries: GOAWAY ${s.goaway()}; closed: ${s.isClosed()}`);
  assert.ok(s.isClosed(), 'a SETTINGS frame over maxSettings entries closes the session');
  assert.equal(s.goaway(), H2_ERROR.ENHANCE_YOUR_CALM);
  s.socket.destroy();
});

test('an idle session is closed: no request within client_header_timeout, PINGs do not keep it open', { timeout: 30000 }, async (t) => {
  const c = await connectRaw();
  const start = Date.now();
  const keepPinging = setInterval(() => c.write(ping(1)), 300);
  await Promise.race([c.closed, new Promise((r) => setTimeout(r, 8000))]);
  clearInterval(keepPinging);
  const lived = Date.now() - start;
  t.diagnostic(`idle session lived ${lived} ms; GOAWAY ${c.goaway()}`);
  assert.ok(c.isClosed(), 'closed');
  assert.equal(c.goaway(), H2_ERROR.NO_ERROR, 'with a graceful GOAWAY');
  assert.ok(lived >= 1900 && lived < 4000, `after about 2 s (${lived} ms)`);
  c.socket.destroy();
});

test('a session idle after its last stream is closed after 5 s (as the HTTP/1.1 keep-alive timeout); a held stream keeps it open', { timeout: 30000 }, async (t) => {
  const c = await connectRaw();
  await c.until(() => c.frames.some((f) => f.type === FRAME.SETTINGS));
  const heldBefore = await holdStreamOne(c);
  // held past client_header_timeout (2 s): an open stream is not idle
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(c.isClosed(), false, 'open while its stream is');
  held.splice(heldBefore)[0].end('late');
  await c.until(() => c.answered().has(1));
  const answeredAt = Date.now();
  await Promise.race([c.closed, new Promise((r) => setTimeout(r, 10_000))]);
  const idle = Date.now() - answeredAt;
  t.diagnostic(`closed ${idle} ms after its last stream; GOAWAY ${c.goaway()}`);
  assert.ok(c.isClosed());
  assert.equal(c.goaway(), H2_ERROR.NO_ERROR);
  assert.ok(idle >= 4800 && idle < 7000, `after about 5 s (${idle} ms)`);
  c.socket.destroy();
});

test('drain (SIGTERM) sends GOAWAY to an HTTP/2 session: its open stream finishes, then the session closes', { timeout: 30000 }, async (t) => {
  const own = await bootGateway(
    { gateway: { access_log: false }, ssls: [{ id: 'abuse', ...pair, snis: [NAME] }], routes: [{ id: 'r', uri: '/*', upstream: { nodes: { [up.node]: 1 } } }] },
    { listenTls: '127.0.0.1:0' },
  );
  const c = await rawH2(own.gw.tlsAddress!.port, NAME, ca.cert);
  await c.until(() => c.frames.some((f) => f.type === FRAME.SETTINGS));
  const heldBefore = await holdStreamOne(c);
  const closing = own.close();
  await c.until(() => c.goaway() !== undefined);
  t.diagnostic(`GOAWAY ${c.goaway()} while stream 1 is open`);
  assert.equal(c.goaway(), H2_ERROR.NO_ERROR);
  assert.equal(c.isClosed(), false, 'the open stream goes on');
  held.splice(heldBefore)[0].end('finished during drain');
  await c.until(() => c.answered().has(1));
  await closing;
  await c.closed;
  assert.ok(c.frames.some((f) => f.type === FRAME.DATA && f.stream === 1 && f.payload.toString() === 'finished during drain'), 'the answer reached the client');
  c.socket.destroy();
});
