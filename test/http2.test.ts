// HTTP/2 on the TLS listener (docs/tls.md "HTTP/2"): ALPN `h2` beside `http/1.1`, checked with
// clients nobody here wrote (curl --http2 / --http1.1 --cacert --resolve, openssl s_client -alpn,
// Node's http2 client); the same route, plugins and RequestContext as HTTP/1.1 (key-auth, the
// forwarding headers, body limits); bodies streamed both ways; upstream trailers reaching the
// client; the TLS facts plugins read (`ctx.tls`: server name, ALPN, the verified client
// certificate) over both protocols; `gateway.http2: false` offering http/1.1 only.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders as H2Headers } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { definePlugin } from '../core/sdk';
import { bootGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness';
import { hashingHandler } from './helpers/proxy';
import { makeTestCa, type IssuedPair, type TestCa } from './helpers/tls-pki';

const KEY = 'h2-test-key-auth-key';

function run(cmd: string, args: readonly string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    child.stdin?.end(input);
  });
}

/** Echoes what the TLS layer established (`ctx.tls`) to the client and the subject to the upstream. */
const tlsEcho = definePlugin<Record<string, never>>({
  name: 'tls-echo',
  version: '1.0.0',
  priority: 100,
  schema: { type: 'object', additionalProperties: false },
  create: () => ({
    access(ctx) {
      ctx.setResponseHeader('x-tls', JSON.stringify(ctx.tls ?? null));
      ctx.setUpstreamHeader('x-client-subject', ctx.tls?.clientCert?.subject);
    },
  }),
});

let ca: TestCa;
let server: IssuedPair;
let mtlsServer: IssuedPair;
let alice: IssuedPair;
let up: Upstream;
let g: TestGateway;
let port: number;
/** Released by a test: the /stream upstream sends its second chunk and ends. */
let releaseStream: () => void = () => undefined;
/** Answers with method, url, headers, body length and sha256. */
const hashing = hashingHandler();

function upstreamHandler(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/pub/stream') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first;');
    new Promise<void>((r) => (releaseStream = r)).then(() => res.end('second'));
    return;
  }
  if (req.url === '/pub/trailers') {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    res.write('body with trailers');
    res.addTrailers({ 'x-checksum': 'sha-abc', connection: 'close' });
    res.end();
    return;
  }
  // connection-specific headers an HTTP/1.1 upstream may send: never on an HTTP/2 response
  res.setHeader('keep-alive', 'timeout=5');
  hashing(req, res);
}

before(async () => {
  ca = makeTestCa('gatehouse h2 test CA');
  server = ca.issue('h2-api', { names: ['api.h2.test'] });
  mtlsServer = ca.issue('h2-mtls', { names: ['mtls.h2.test'] });
  alice = ca.issue('h2-alice', { names: ['alice.clients.test'], client: true });
  up = await startUpstream(upstreamHandler);
  g = await bootGateway(
    {
      gateway: { client_max_body_size: '16m' },
      ssls: [
        { id: 'api', cert: server.cert, key: server.key, snis: ['api.h2.test'] },
        { id: 'mt', cert: mtlsServer.cert, key: mtlsServer.key, snis: ['mtls.h2.test'], client: { ca: ca.cert, depth: 1 } },
      ],
      routes: [
        { id: 'priv', uri: '/private/*', plugins: { 'key-auth': {}, 'tls-echo': {} }, upstream: { nodes: { [up.node]: 1 } } },
        { id: 'pub', uri: '/pub/*', plugins: { 'tls-echo': {} }, upstream: { nodes: { [up.node]: 1 } } },
      ],
      consumers: [{ username: 'jack', plugins: { 'key-auth': { key: KEY } } }],
    },
    { listenTls: '127.0.0.1:0', extensions: [tlsEcho] },
  );
  port = g.gw.tlsAddress!.port;
});

after(async () => {
  await g?.close();
  await up?.close();
});

/** curl with the test CA and --resolve; `-i` prints the status line (`HTTP/2 200`). */
function curl(name: string, path: string, extra: readonly string[]) {
  return run('curl', ['-sS', '-i', '--max-time', '15', '--cacert', ca.certFile, '--resolve', `${name}:${port}:127.0.0.1`, ...extra, `https://${name}:${port}${path}`]);
}

test('curl --http2 with key-auth: 200 with the key, 401 without, over HTTP/2; curl --http1.1 on the same port still works', async () => {
  const ok = await curl('api.h2.test', '/private/x?q=1', ['--http2', '-H', `apikey: ${KEY}`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^HTTP\/2 200/);
  const seen = JSON.parse(ok.stdout.slice(ok.stdout.indexOf('\r\n\r\n') + 4));
  assert.equal(seen.url, '/private/x?q=1');
  assert.equal(seen.method, 'GET');
  assert.equal(seen.headers['x-forwarded-proto'], 'https');
  assert.equal(seen.headers.host, `api.h2.test:${port}`, ':authority reaches the upstream as Host');
  assert.equal(seen.headers['x-consumer-username'], 'jack');
  assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  assert.ok(!Object.keys(seen.headers).some((k) => k.startsWith(':')), 'no pseudo-header reaches the upstream');
  assert.doesNotMatch(ok.stdout.slice(0, ok.stdout.indexOf('\r\n\r\n')), /keep-alive/i, 'the upstream Keep-Alive is not sent on an HTTP/2 response');
  const tls = JSON.parse(/^x-tls: (.*)$/m.exec(ok.stdout)![1].trim());
  assert.deepEqual(tls, { serverName: 'api.h2.test', version: tls.version, alpn: 'h2' });
  assert.match(tls.version, /^TLSv1\.[23]$/);

  const denied = await curl('api.h2.test', '/private/x', ['--http2']);
  assert.equal(denied.code, 0, denied.stderr);
  assert.match(denied.stdout, /^HTTP\/2 401/);

  // Expect: 100-continue over HTTP/2: refused by key-auth before the body is invited; let through with the key
  const bodyFile = join(ca.dir, 'h2-upload.bin');
  writeFileSync(bodyFile, Buffer.alloc(256 * 1024, 7));
  const hitsBefore = up.seen.length;
  const refused = await curl('api.h2.test', '/private/upload', ['--http2', '-H', 'Expect: 100-continue', '--expect100-timeout', '10', '--data-binary', `@${bodyFile}`]);
  assert.equal(refused.code, 0, refused.stderr);
  assert.match(refused.stdout, /^HTTP\/2 401/);
  assert.equal(up.seen.length, hitsBefore, 'the upstream never heard of it');
  const invited = await curl('api.h2.test', '/private/upload', ['--http2', '-H', 'Expect: 100-continue', '--expect100-timeout', '10', '-H', `apikey: ${KEY}`, '--data-binary', `@${bodyFile}`]);
  assert.equal(invited.code, 0, invited.stderr);
  assert.match(invited.stdout, /^HTTP\/2 100[\s\S]*HTTP\/2 200/, 'curl got 100 Continue, then the answer');
  assert.equal(JSON.parse(invited.stdout.slice(invited.stdout.lastIndexOf('\r\n\r\n') + 4)).bytes, 256 * 1024);

  const h1 = await curl('api.h2.test', '/private/x', ['--http1.1', '-H', `apikey: ${KEY}`]);
  assert.equal(h1.code, 0, h1.stderr);
  assert.match(h1.stdout, /^HTTP\/1\.1 200/);
  assert.equal(JSON.parse(/^x-tls: (.*)$/m.exec(h1.stdout)![1].trim()).alpn, 'http/1.1');
  const h1denied = await curl('api.h2.test', '/private/x', ['--http1.1']);
  assert.match(h1denied.stdout, /^HTTP\/1\.1 401/);
});

test('openssl s_client -alpn h2 negotiates h2; -alpn http/1.1 gets http/1.1', async () => {
  const h2 = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'api.h2.test', '-alpn', 'h2'], 'Q\n');
  assert.match(h2.stdout, /ALPN protocol: h2/);
  const h1 = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'api.h2.test', '-alpn', 'http/1.1'], 'Q\n');
  assert.match(h1.stdout, /ALPN protocol: http\/1\.1/);
});

/** An HTTP/2 session to the gateway with Node's client (the test CA, the name, optional client certificate). */
function session(name: string, client?: IssuedPair): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect(`https://${name}:${port}`, { ca: ca.cert, servername: name, host: '127.0.0.1', port, ...(client ? { cert: client.cert, key: client.key } : {}), lookup: (_h, _o, cb) => (cb as (e: null, a: string, f: number) => void)(null, '127.0.0.1', 4) });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One request on `s`; resolves with the head, the body, the trailers and when the first chunk came. */
function h2request(s: ClientHttp2Session, headers: H2Headers, body?: Buffer | ((w: NodeJS.WritableStream) => void)) {
  return new Promise<{ headers: H2Headers; body: Buffer; trailers: H2Headers | undefined; chunks: Buffer[] }>((resolve, reject) => {
    const req = s.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let head: H2Headers = {};
    let trailers: H2Headers | undefined;
    req.on('response', (h) => (head = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => resolve({ headers: head, body: Buffer.concat(chunks), trailers, chunks }));
    req.on('error', reject);
    if (typeof body === 'function') body(req);
    else if (body !== undefined) req.end(body);
  });
}

test("Node's http2 client: a large upload streams to the upstream intact; a response streams (a chunk before the upstream ends); upstream trailers reach the client", { timeout: 30000 }, async () => {
  const s = await session('api.h2.test');
  try {
    // 12 MiB in 64 KiB pieces, written as the stream drains (backpressure end to end)
    const piece = Buffer.alloc(64 * 1024);
    const hash = createHash('sha256');
    const total = 12 * 1024 * 1024;
    const up1 = await h2request(s, { ':method': 'POST', ':path': '/pub/upload', 'content-type': 'application/octet-stream' }, (w) => {
      let sent = 0;
      const more = () => {
        while (sent < total) {
          for (let i = 0; i < piece.length; i += 4) piece.writeUInt32LE((sent + i) >>> 0, i);
          hash.update(piece);
          sent += piece.length;
          if (!w.write(Buffer.from(piece))) {
            w.once('drain', more);
            return;
          }
        }
        w.end();
      };
      more();
    });
    assert.equal(up1.headers[':status'], 200);
    const heard = JSON.parse(up1.body.toString());
    assert.deepEqual([heard.bytes, heard.sha256], [total, hash.digest('hex')], 'the upstream got the body intact');
    assert.equal(heard.headers['transfer-encoding'], 'chunked', 'a body of unknown length goes upstream chunked, not buffered');

    const first = new Promise<string>((resolve) => {
      const req = s.request({ ':path': '/pub/stream' });
      req.once('data', (d: Buffer) => {
        resolve(d.toString());
        let rest = '';
        req.on('data', (x: Buffer) => (rest += x));
        req.on('end', () => (firstRest = rest));
      });
    });
    let firstRest: string | undefined;
    assert.equal(await first, 'first;', 'the first chunk arrives while the upstream has not ended');
    assert.equal(firstRest, undefined);
    releaseStream();

    const tr = await h2request(s, { ':path': '/pub/trailers' });
    assert.equal(tr.body.toString(), 'body with trailers');
    assert.equal(tr.trailers?.['x-checksum'], 'sha-abc', 'the upstream trailer reaches the HTTP/2 client');
    assert.equal(tr.trailers?.connection, undefined, 'connection-specific fields are not sent as trailers');
  } finally {
    s.close();
  }
});

test('HTTP/2 honours the body limit like HTTP/1.1 (413), and the session goes on with its next request', { timeout: 30000 }, async () => {
  const s = await session('api.h2.test');
  try {
    const declared = await h2request(s, { ':method': 'POST', ':path': '/pub/big', 'content-length': String(17 * 1024 * 1024) }, (w) => w.write(Buffer.alloc(1024)));
    assert.equal(declared.headers[':status'], 413);
    const counted = await h2request(s, { ':method': 'POST', ':path': '/pub/big' }, (w) => {
      const chunk = Buffer.alloc(256 * 1024);
      let n = 0;
      const more = () => {
        while (n++ < 80) if (!w.write(chunk)) return void w.once('drain', more);
        w.end();
      };
      more();
    }).catch((err: Error) => ({ headers: { ':status': `error ${err.message}` } as H2Headers, body: Buffer.alloc(0) }));
    assert.equal(counted.headers[':status'], 413, 'a body over the limit without a declared length is cut at the limit');
    const next = await h2request(s, { ':path': '/pub/after' });
    assert.equal(next.headers[':status'], 200);
  } finally {
    s.close();
  }
});

test('ctx.tls: the verified client certificate (subject, issuer, serial, SHA-256 fingerprint, validity) over HTTP/2 and HTTP/1.1; no certificate, no handshake', { timeout: 30000 }, async () => {
  const fingerprint = (pem: string) =>
    createHash('sha256')
      .update(Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64'))
      .digest('hex')
      .toUpperCase()
      .match(/../g)!
      .join(':');
  const s = await session('mtls.h2.test', alice);
  let over2: Record<string, any>;
  try {
    const r = await h2request(s, { ':path': '/pub/who' });
    assert.equal(r.headers[':status'], 200);
    over2 = JSON.parse(String(r.headers['x-tls']));
    assert.equal(JSON.parse(r.body.toString()).headers['x-client-subject'], 'CN=alice.clients.test', 'a plugin passed the verified subject upstream');
  } finally {
    s.close();
  }
  assert.equal(over2.alpn, 'h2');
  assert.equal(over2.serverName, 'mtls.h2.test');
  assert.equal(over2.clientCert.subject, 'CN=alice.clients.test');
  assert.equal(over2.clientCert.issuer, 'CN=gatehouse h2 test CA');
  assert.equal(over2.clientCert.fingerprint256, fingerprint(alice.cert));
  assert.match(over2.clientCert.serial, /^[0-9A-F]+$/);
  assert.ok(over2.clientCert.validFrom < Date.now() && over2.clientCert.validTo > Date.now());

  const over1 = await new Promise<Record<string, any>>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/pub/who', servername: 'mtls.h2.test', ca: ca.cert, cert: alice.cert, key: alice.key, headers: { host: 'mtls.h2.test' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(JSON.parse(String(res.headers['x-tls']))));
    });
    req.on('error', reject);
    req.end();
  });
  assert.deepEqual({ ...over1, alpn: 'h2' }, over2, 'the same facts over HTTP/1.1 (no ALPN offered by https.request)');
  assert.equal(over1.alpn, undefined);

  // TLS 1.3: the client may count its handshake done before the server's alert arrives; no request gets through either way
  const before = up.seen.length;
  await assert.rejects(
    session('mtls.h2.test').then(async (s2) => {
      try {
        await h2request(s2, { ':path': '/pub/who' });
      } finally {
        s2.destroy();
      }
    }),
    'no client certificate: the handshake fails, nothing reaches a route',
  );
  assert.equal(up.seen.length, before);
});

test('gateway.http2: false: ALPN offers http/1.1 only; curl --http2 falls back to HTTP/1.1', { timeout: 30000 }, async () => {
  const off = await bootGateway(
    { gateway: { http2: false }, ssls: [{ id: 'api', cert: server.cert, key: server.key, snis: ['api.h2.test'] }], routes: [{ id: 'pub', uri: '/pub/*', upstream: { nodes: { [up.node]: 1 } } }] },
    { listenTls: '127.0.0.1:0' },
  );
  try {
    const p = off.gw.tlsAddress!.port;
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${p}`, '-servername', 'api.h2.test', '-alpn', 'h2,http/1.1'], 'Q\n');
    assert.match(s.stdout, /ALPN protocol: http\/1\.1/);
    const onlyH2 = await run('openssl', ['s_client', '-connect', `127.0.0.1:${p}`, '-servername', 'api.h2.test', '-alpn', 'h2'], 'Q\n');
    assert.doesNotMatch(onlyH2.stdout, /ALPN protocol: h2/);
    const c = await run('curl', ['-sS', '-i', '--http2', '--max-time', '15', '--cacert', ca.certFile, '--resolve', `api.h2.test:${p}:127.0.0.1`, `https://api.h2.test:${p}/pub/x`]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /^HTTP\/1\.1 200/);
  } finally {
    await off.close();
  }
});

test('HTTP/2: a request body that stops coming gets 408 after client_body_timeout (as HTTP/1.1), the stream alone ends and the session serves the next request', { timeout: 30000 }, async () => {
  const slow = await bootGateway(
    { gateway: { client_body_timeout: 1 }, ssls: [{ id: 'api', cert: server.cert, key: server.key, snis: ['api.h2.test'] }], routes: [{ id: 'pub', uri: '/pub/*', upstream: { nodes: { [up.node]: 1 } } }] },
    { listenTls: '127.0.0.1:0' },
  );
  const s = h2connect(`https://127.0.0.1:${slow.gw.tlsAddress!.port}`, { ca: ca.cert, servername: 'api.h2.test' });
  try {
    const started = Date.now();
    // 1 KiB, then nothing (the stream stays open)
    const stalled = await h2request(s, { ':method': 'POST', ':path': '/pub/slow' }, (w) => w.write(Buffer.alloc(1024)));
    const took = Date.now() - started;
    assert.equal(stalled.headers[':status'], 408);
    assert.ok(took >= 900 && took < 5000, `after about client_body_timeout (${took} ms)`);
    const next = await h2request(s, { ':path': '/pub/next' });
    assert.equal(next.headers[':status'], 200, 'the session goes on');
  } finally {
    s.close();
    await slow.close();
  }
});
