// TLS and mTLS to upstreams (docs/tls.md, "TLS to upstreams"), against real `node:https` servers
// with certificates the openssl CLI makes (test/helpers/tls-pki.ts): an https upstream is verified
// by default (a private CA is refused until `tls.ca` names it, a name mismatch is refused, and
// `verify: false` is explicit and logged at build); the server name sent and checked is the Host
// the request goes with (never an IP literal); an upstream that requires client certificates (as
// `openssl s_client` confirms: no answer without one) gets one from literal PEMs, `$env://`
// references, an SSL resource of type client, or a secret manager whose rotation reaches new
// connections with no failed request; a pair that does not match is refused with its path and the
// old config keeps serving; the Admin API masks `tls.client_key` with the "******" round trip; etcd
// stores it encrypted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext, type TLSSocket } from 'node:tls';
import type { IKeyValue } from 'etcd3';
import { request } from 'undici';
import { bootGateway, eventually, tempDir, type TestGateway } from './helpers/harness';
import { makeTestCa, pemBody, type IssuedPair, type TestCa } from './helpers/tls-pki';
import { memProvider } from './helpers/mem-provider';
import { plantCanary } from './helpers/leak-tap';
import { secretFieldPaths } from '../core/admin/redact';
import type { Registry } from '../core/config/registry';
import { ENC_PREFIX } from '../core/stores/encryption';
import { decodeItem, encodeItem } from '../core/stores/etcd-keys';

const ADMIN_KEY = 'planted-upstream-tls-admin-key';
const KEY_ENV = 'GH_UPTLS_ADMIN_KEY';
const NAME = 'api.upstream.test';

let serverCa: TestCa;
let clientCa: TestCa;
let server: IssuedPair;
let client1: IssuedPair;
let client2: IssuedPair;
interface HttpsUpstream {
  readonly server: Server;
  readonly node: string;
  /** The server names clients sent (SNI), in order. */
  readonly servernames: string[];
  /** TCP connections accepted. */
  connections: number;
}
let plain: HttpsUpstream;
let mtls: HttpsUpstream;
let g: TestGateway;
let admin: string;

/** An https server with the test certificate answering `{ sni, peer, host }` (peer: the client certificate's SHA-256 fingerprint, or null). */
async function httpsUpstream(pair: IssuedPair, clientCaPem?: string): Promise<HttpsUpstream> {
  const servernames: string[] = [];
  const context = createSecureContext({ cert: pair.cert, key: pair.key, ...(clientCaPem ? { ca: clientCaPem } : {}) });
  const s = createServer(
    {
      cert: pair.cert,
      key: pair.key,
      ...(clientCaPem ? { ca: clientCaPem, requestCert: true, rejectUnauthorized: true } : {}),
      // called only when the client sends a server name
      SNICallback: (name, cb) => {
        servernames.push(name);
        cb(null, context);
      },
    },
    (req, res) => {
      const socket = req.socket as TLSSocket & { servername?: string | false };
      const peer = socket.getPeerCertificate();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ sni: socket.servername, peer: peer && peer.fingerprint256 ? peer.fingerprint256 : null, host: req.headers.host }));
    },
  );
  const up: HttpsUpstream = { server: s, node: '', servernames, connections: 0 };
  s.on('connection', () => up.connections++);
  s.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { ...up, node: `127.0.0.1:${(s.address() as AddressInfo).port}`, get connections() { return up.connections; } } as HttpsUpstream;
}

const fingerprint = (p: IssuedPair) => new X509Certificate(p.cert).fingerprint256;
const https = (node: string, extra: Record<string, unknown> = {}) => ({ scheme: 'https', nodes: { [node]: 1 }, pass_host: 'rewrite', upstream_host: NAME, ...extra });

before(async () => {
  plantCanary('upstream tls test admin key', ADMIN_KEY);
  process.env[KEY_ENV] = ADMIN_KEY;
  serverCa = makeTestCa('upstream server CA');
  clientCa = makeTestCa('upstream client CA');
  server = serverCa.issue('upstream', { names: [NAME] });
  client1 = clientCa.issue('client1', { names: ['gateway-one'], client: true });
  client2 = clientCa.issue('client2', { names: ['gateway-two'], client: true, keyType: 'rsa' });
  plain = await httpsUpstream(server);
  mtls = await httpsUpstream(server, clientCa.cert);
  process.env.GH_UPTLS_CERT = client1.cert;
  process.env.GH_UPTLS_KEY = client1.key;
  g = await bootGateway(
    {
      admin: { key: `$env://${KEY_ENV}` },
      ssls: [{ id: 'cli', type: 'client', cert: client2.cert, key: client2.key, snis: ['gateway-two.test'] }],
      upstreams: [
        { id: 'm-lit', ...https(mtls.node, { tls: { ca: serverCa.cert, client_cert: client1.cert, client_key: client1.key } }) },
        { id: 'm-env', ...https(mtls.node, { tls: { ca: serverCa.cert, client_cert: '$env://GH_UPTLS_CERT', client_key: '$env://GH_UPTLS_KEY' } }) },
      ],
      routes: [
        { id: 'no-ca', uri: '/no-ca', upstream: https(plain.node) },
        { id: 'ca', uri: '/ca', upstream: https(plain.node, { tls: { ca: serverCa.cert } }) },
        { id: 'alt', uri: '/alt', upstream: https(plain.node, { upstream_host: 'other.upstream.test', tls: { ca: serverCa.cert } }) },
        { id: 'insecure', uri: '/insecure', upstream: https(plain.node, { tls: { verify: false } }) },
        { id: 'pass', uri: '/pass', upstream: { scheme: 'https', nodes: { [plain.node]: 1 }, pass_host: 'pass', tls: { ca: serverCa.cert } } },
        { id: 'ip', uri: '/ip', upstream: { scheme: 'https', nodes: { [plain.node]: 1 }, pass_host: 'node', tls: { ca: serverCa.cert } } },
        { id: 'm-none', uri: '/m-none', upstream: https(mtls.node, { tls: { ca: serverCa.cert } }) },
        { id: 'm-inline', uri: '/m-inline', upstream: https(mtls.node, { tls: { ca: serverCa.cert, client_cert: client1.cert, client_key: client1.key } }) },
        { id: 'm-lit', uri: '/m-lit', upstream_id: 'm-lit' },
        { id: 'm-env', uri: '/m-env', upstream_id: 'm-env' },
        { id: 'm-ssl', uri: '/m-ssl', upstream: https(mtls.node, { tls: { ca: serverCa.cert, client_cert_id: 'cli' } }) },
      ],
    },
    { adminListen: '127.0.0.1:0' },
  );
  admin = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
});

after(async () => {
  await g?.close();
  await new Promise((r) => plain?.server.close(r));
  await new Promise((r) => mtls?.server.close(r));
  delete process.env.GH_UPTLS_CERT;
  delete process.env.GH_UPTLS_KEY;
});

async function get(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; json: any; text: string }> {
  const r = await request(`${base}${path}`, { headers });
  const text = await r.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, json, text };
}

async function call(method: string, path: string, b?: unknown, base = admin): Promise<{ status: number; text: string; json: any }> {
  const r = await request(`${base}${path}`, { method: method as 'PUT', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: b === undefined ? undefined : JSON.stringify(b) });
  const text = await r.body.text();
  return { status: r.statusCode, text, json: text ? JSON.parse(text) : undefined };
}

/** The gateway's "upstream request failed" lines for one upstream. */
const failures = (gw: TestGateway, upstream: string) => gw.logs.lines.filter((l) => l.msg === 'upstream request failed' && l.upstream_id === upstream);

test('verified by default: a private CA is refused (502, the TLS error code logged with the upstream) until tls.ca names it', async () => {
  const refused = await get(g.url, '/no-ca');
  assert.equal(refused.status, 502, refused.text);
  await eventually('the failure is logged', async () => failures(g, 'route:no-ca').length > 0, 5000);
  assert.equal(failures(g, 'route:no-ca')[0].code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  const ok = await get(g.url, '/ca');
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.sni, NAME, 'the server name is the host the request is sent with (upstream_host)');
  assert.equal(ok.json.host, NAME);
});

test('a certificate for another name is refused: 502 and ERR_TLS_CERT_ALTNAME_INVALID', async () => {
  const r = await get(g.url, '/alt');
  assert.equal(r.status, 502, r.text);
  await eventually('the failure is logged', async () => failures(g, 'route:alt').length > 0, 5000);
  assert.equal(failures(g, 'route:alt')[0].code, 'ERR_TLS_CERT_ALTNAME_INVALID');
});

test('pass_host pass sends the client Host as the server name; pass_host node with an IP node sends none and checks the IP', async () => {
  const ok = await get(g.url, '/pass', { host: NAME });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.sni, NAME);
  const wrong = await get(g.url, '/pass', { host: 'elsewhere.test' });
  assert.equal(wrong.status, 502, 'the certificate is checked against the client Host');
  const names = plain.servernames.length;
  const connections = plain.connections;
  const ip = await get(g.url, '/ip');
  assert.equal(ip.status, 502, 'the certificate names no IP address');
  await eventually('the failure is logged', async () => failures(g, 'route:ip').length > 0, 5000);
  assert.equal(failures(g, 'route:ip')[0].code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  assert.ok(plain.connections > connections, 'the gateway connected');
  assert.deepEqual(plain.servernames.slice(names), [], 'and sent no server name: an IP literal is never one (RFC 6066)');
});

test('tls.verify: false is explicit: the request goes through, and a warning naming the upstream was logged at build, not per request', async () => {
  const warned = () => g.logs.lines.filter((l) => l.level === 40 && l.upstream === 'route:insecure' && /verification .* is off/.test(String(l.msg)));
  assert.equal(warned().length, 1, 'logged once when the config was built');
  for (let i = 0; i < 3; i++) assert.equal((await get(g.url, '/insecure')).status, 200);
  assert.equal(warned().length, 1, 'not per request');
});

/** `openssl s_client` to `node` with the server CA (and a client pair): the HTTP status line it got, or undefined. */
function sClient(node: string, pair?: IssuedPair): Promise<string | undefined> {
  const args = ['s_client', '-connect', node, '-servername', NAME, '-CAfile', serverCa.certFile, '-verify_return_error', '-quiet', ...(pair ? ['-cert', pair.certFile, '-key', pair.keyFile] : [])];
  return new Promise((resolve) => {
    const child = execFile('openssl', args, { timeout: 15_000 }, (_err, stdout) => resolve(/^HTTP\/1\.[01] (\d{3})/m.exec(stdout)?.[1]));
    child.stdin?.end(`GET / HTTP/1.1\r\nHost: ${NAME}\r\nConnection: close\r\n\r\n`);
  });
}

test('an upstream that requires client certificates: refused without one; literal, $env:// and client_cert_id pairs are presented', async () => {
  // the upstream as a client nobody here wrote sees it: no answer without a certificate, 200 with one
  assert.equal(await sClient(mtls.node), undefined, 'openssl s_client without a client certificate gets no answer');
  assert.equal(await sClient(mtls.node, client1), '200', 'openssl s_client with one gets 200');
  const none = await get(g.url, '/m-none');
  assert.equal(none.status, 502, none.text);
  for (const path of ['/m-inline', '/m-lit', '/m-env']) {
    const r = await get(g.url, path);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    assert.equal(r.json.peer, fingerprint(client1), `${path}: the upstream saw the configured client certificate`);
  }
  const ssl = await get(g.url, '/m-ssl');
  assert.equal(ssl.status, 200, ssl.text);
  assert.equal(ssl.json.peer, fingerprint(client2), 'the SSL resource of type client');
});

test('client_cert_id: a change of the SSL resource reaches the upstream; deleting it, or making it a server resource, is refused with the path', async () => {
  const before = await get(g.url, '/m-ssl');
  assert.equal(before.json.peer, fingerprint(client2));
  const put = await call('PUT', '/admin/ssls/cli', { type: 'client', cert: client1.cert, key: client1.key, snis: ['gateway-one.test'] });
  assert.equal(put.status, 200, put.text);
  const after = await get(g.url, '/m-ssl');
  assert.equal(after.status, 200, after.text);
  assert.equal(after.json.peer, fingerprint(client1), 'the new pair is presented on new connections');
  const live = g.gw.snapshot;
  const del = await call('DELETE', '/admin/ssls/cli');
  assert.equal(del.status, 400, del.text);
  assert.match(del.json.error_msg, /routes\[\d+\]\.upstream\.tls\.client_cert_id: names no SSL resource \("cli"\)/);
  const server = await call('PUT', '/admin/ssls/cli', { type: 'server', cert: client1.cert, key: client1.key, snis: ['gateway-one.test'] });
  assert.equal(server.status, 400, server.text);
  assert.match(server.json.error_msg, /client_cert_id: names SSL resource "cli", which is not of type "client"/);
  assert.equal(g.gw.snapshot, live, 'nothing was installed');
  const back = await call('PUT', '/admin/ssls/cli', { type: 'client', cert: client2.cert, key: client2.key, snis: ['gateway-two.test'] });
  assert.equal(back.status, 200, back.text);
  assert.equal((await get(g.url, '/m-ssl')).json.peer, fingerprint(client2));
});

test('the Admin API shows tls.client_key as "******" (upstreams and routes), and the masked value written back keeps the key', async () => {
  for (const prefix of ['/admin/', '/apisix/admin/']) {
    const up = await call('GET', `${prefix}upstreams/m-lit`);
    assert.equal(up.status, 200, up.text);
    assert.equal(up.json.value.tls.client_key, '******');
    assert.equal(up.json.value.tls.client_cert, client1.cert);
    const ref = await call('GET', `${prefix}upstreams/m-env`);
    assert.equal(ref.json.value.tls.client_key, '$env://GH_UPTLS_KEY', 'a reference is shown as written');
    const route = await call('GET', `${prefix}routes/m-inline`);
    assert.equal(route.json.value.upstream.tls.client_key, '******');
    for (const text of [up.text, route.text]) assert.ok(!text.includes(pemBody(client1.key).slice(0, 40)), 'no key in the answer');
  }
  const up = await call('GET', '/admin/upstreams/m-lit');
  const back = await call('PUT', '/admin/upstreams/m-lit', { ...up.json.value, desc: 'round trip' });
  assert.equal(back.status, 200, back.text);
  const stored = g.gw.snapshot.config.upstreams.find((u) => u.id === 'm-lit')!;
  assert.ok(stored.tls?.client_key === client1.key, '"******" keeps the stored key');
  const route = await call('GET', '/admin/routes/m-inline');
  const routeBack = await call('PUT', '/admin/routes/m-inline', { ...route.json.value, desc: 'round trip' });
  assert.equal(routeBack.status, 200, routeBack.text);
  assert.ok(g.gw.snapshot.config.routes.find((r) => r.id === 'm-inline')!.upstream!.tls?.client_key === client1.key);
  for (const path of ['/m-lit', '/m-inline']) {
    const r = await get(g.url, path);
    assert.equal(r.status, 200, `${path} still presents its certificate: ${r.text}`);
    assert.equal(r.json.peer, fingerprint(client1));
  }
});

test('a pair that does not match, or tls on an http upstream, is refused with its path and the live config keeps serving', async () => {
  const live = g.gw.snapshot;
  const cases: Array<[string, unknown, RegExp]> = [
    ['a key of another certificate', https(mtls.node, { tls: { client_cert: client1.cert, client_key: client2.key } }), /upstreams\[\d+\]\.tls\.client_key: does not match its certificate \(upstreams\[\d+\]\.tls\.client_cert\)/],
    ['a certificate without its key', https(mtls.node, { tls: { client_cert: client1.cert } }), /client_key/],
    ['client_cert_id with a pair', https(mtls.node, { tls: { client_cert_id: 'cli', client_cert: client1.cert, client_key: client1.key } }), /upstreams\[\d+\]\.tls\.client_cert_id: cannot be used together with client_cert/],
    ['tls on http', { nodes: { [mtls.node]: 1 }, tls: { verify: true } }, /upstreams\[\d+\]\.tls: applies to scheme "https" only/],
    ['a CA that does not parse', https(mtls.node, { tls: { ca: '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n' } }), /upstreams\[\d+\]\.tls\.ca: is not a PEM certificate/],
    ['a client_cert_id of a server SSL resource', https(mtls.node, { tls: { client_cert_id: 'nope' } }), /upstreams\[\d+\]\.tls\.client_cert_id: names no SSL resource/],
  ];
  for (const [what, body, message] of cases) {
    const r = await call('PUT', '/admin/upstreams/refused', body);
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.match(r.json.error_msg, message, what);
    for (const k of [client1.key, client2.key]) assert.ok(!r.text.includes(pemBody(k).slice(0, 40)), `${what}: no key in the answer`);
  }
  process.env.GH_UPTLS_WRONG_KEY = client2.key;
  try {
    const r = await call('PUT', '/admin/routes/wrongref', { uri: '/wrongref', upstream: https(mtls.node, { tls: { client_cert: '$env://GH_UPTLS_CERT', client_key: '$env://GH_UPTLS_WRONG_KEY' } }) });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error_msg, /routes\[\d+\]\.upstream\.tls\.client_key: does not match its certificate \(routes\[\d+\]\.upstream\.tls\.client_cert\)/);
  } finally {
    delete process.env.GH_UPTLS_WRONG_KEY;
  }
  assert.equal(g.gw.snapshot, live, 'nothing was installed');
  assert.equal((await get(g.url, '/m-lit')).status, 200);
});

test('a config file whose pair does not match is refused at load with the path: literal, and by reference once resolved', async () => {
  const dir = tempDir('gatehouse-uptls-');
  const literal = join(dir, 'literal.yaml');
  writeFileSync(literal, JSON.stringify({ upstreams: [{ id: 'u', ...https(mtls.node, { tls: { client_cert: client1.cert, client_key: client2.key } }) }] }));
  await assert.rejects(bootGateway({}, { configPath: literal }), (err: Error) => {
    assert.match(err.message, /upstreams\[0\]\.tls\.client_key: does not match its certificate \(upstreams\[0\]\.tls\.client_cert\)/);
    assert.ok(!err.message.includes(pemBody(client2.key).slice(0, 40)));
    return true;
  });
  process.env.GH_UPTLS_BAD_KEY = client2.key;
  try {
    const byRef = join(dir, 'ref.yaml');
    writeFileSync(byRef, JSON.stringify({ upstreams: [{ id: 'u', ...https(mtls.node, { tls: { client_cert: client1.cert, client_key: '$env://GH_UPTLS_BAD_KEY' } }) }], routes: [{ id: 'r', uri: '/r', upstream_id: 'u' }] }));
    await assert.rejects(bootGateway({}, { configPath: byRef }), /upstreams\[0\]\.tls\.client_key: does not match its certificate \(upstreams\[0\]\.tls\.client_cert\)/);
  } finally {
    delete process.env.GH_UPTLS_BAD_KEY;
  }
});

test('a reference that cannot be resolved fails the upstream closed: 503, one line naming the upstream and the reference, no connection without the certificate', async () => {
  delete process.env.GH_UPTLS_UNSET;
  const r = await call('PUT', '/admin/routes/unset', { uri: '/unset', upstream: https(mtls.node, { tls: { ca: serverCa.cert, client_cert: client1.cert, client_key: '$env://GH_UPTLS_UNSET' } }) });
  assert.equal(r.status, 201, r.text);
  const before = mtls.connections;
  const res = await get(g.url, '/unset');
  assert.equal(res.status, 503, res.text);
  assert.equal(mtls.connections, before, 'no connection to the upstream');
  const line = g.logs.lines.find((l) => l.upstream === 'route:unset' && l.reference === '$env://GH_UPTLS_UNSET');
  assert.ok(line, 'logged');
  assert.match(line.path, /^routes\[\d+\]\.upstream\.tls\.client_key$/);
  assert.equal((await call('DELETE', '/admin/routes/unset')).status, 200);
});

test('in etcd an upstream is stored with tls.client_key encrypted (a route\'s own upstream too), and read back as written', () => {
  const secretFields = secretFieldPaths({ plugins: new Map(), providers: new Map() } as unknown as Registry);
  const encryptionKey = randomBytes(32);
  const up = { id: 'enc', ...https(mtls.node, { tls: { ca: serverCa.cert, client_cert: client1.cert, client_key: client1.key } }) };
  const route = { id: 'enc-r', uri: '/enc', upstream: up };
  const kv = (v: string) => ({ key: Buffer.from(''), value: Buffer.from(v), create_revision: '1', mod_revision: '1', version: '1', lease: '0' }) as unknown as IKeyValue;
  for (const [kind, item, keyOf] of [
    ['upstreams', up, (x: any) => x.tls],
    ['routes', route, (x: any) => x.upstream.tls],
  ] as const) {
    const text = encodeItem(kind, item, encryptionKey, secretFields);
    assert.ok(!text.includes(pemBody(client1.key).slice(0, 40)), `${kind}: no key in the stored value`);
    const stored = JSON.parse(text);
    assert.ok(keyOf(stored).client_key.startsWith(ENC_PREFIX), `${kind}: encrypted`);
    assert.equal(keyOf(stored).client_cert, client1.cert, `${kind}: the certificate as written`);
    assert.deepEqual(decodeItem('/gh/', `${kind}/${item.id}`, kv(text), encryptionKey)?.value, item);
  }
});

test('rotation under a steady request loop: the referenced pair rotates with no failed request, and the upstream sees the new certificate', { timeout: 60000 }, async () => {
  const values = new Map([
    ['rot/cert', client1.cert],
    ['rot/key', client1.key],
  ]);
  const r = await bootGateway(
    {
      admin: { key: `$env://${KEY_ENV}` },
      secrets: [{ id: 'mem/main' }],
      upstreams: [{ id: 'rot', ...https(mtls.node, { tls: { ca: serverCa.cert, client_cert: '$secret://mem/main/rot/cert', client_key: '$secret://mem/main/rot/key' } }) }],
      routes: [{ id: 'rot', uri: '/rot', upstream_id: 'rot' }],
    },
    { extensions: [memProvider(values)], adminListen: '127.0.0.1:0' },
  );
  const rAdmin = `http://127.0.0.1:${r.gw.adminAddress!.port}`;
  const refresh = async () => {
    const res = await call('POST', '/admin/secrets/mem/main/refresh', undefined, rAdmin);
    assert.equal(res.status, 200, res.text);
  };
  const seen = new Map<string, number>();
  let ok = 0;
  const failed: string[] = [];
  let running = true;
  const loop = async () => {
    while (running) {
      try {
        const res = await get(r.url, '/rot');
        if (res.status === 200) {
          ok++;
          seen.set(res.json.peer, (seen.get(res.json.peer) ?? 0) + 1);
        } else failed.push(`${res.status}`);
      } catch (err) {
        failed.push((err as Error).message);
      }
    }
  };
  const loops = [loop(), loop(), loop(), loop()];
  try {
    await eventually('requests flow', async () => ok > 50, 10000);
    const pool = r.gw.snapshot.upstreams.get('rot')!.pools.get(mtls.node)!;
    values.set('rot/cert', client2.cert);
    values.set('rot/key', client2.key);
    await refresh();
    await eventually('the upstream sees the new certificate', async () => (seen.get(fingerprint(client2)) ?? 0) > 200, 15000);
    assert.notEqual(r.gw.snapshot.upstreams.get('rot')!.pools.get(mtls.node), pool, 'new material, a new pool');
    await eventually('the old pool is closed once no snapshot holds it', async () => pool.closed, 10000);
    // a rotated key that does not match: refused (logged with the paths), the rotated pair keeps
    // serving, and the rest of the rebuild goes ahead
    const kept = r.gw.snapshot.upstreams.get('rot')!.pools.get(mtls.node);
    values.set('rot/key', client1.key);
    await refresh();
    await eventually('the refused pair is logged', async () => r.logs.lines.some((l) => /upstreams\[0\]\.tls\.client_key: does not match its certificate \(upstreams\[0\]\.tls\.client_cert\)/.test(JSON.stringify(l)) && /previous ones stay in use/.test(String(l.msg))), 10000);
    assert.equal(r.gw.snapshot.upstreams.get('rot')!.pools.get(mtls.node), kept, 'the same pool: nothing of the refused pair');
    const after = seen.get(fingerprint(client2)) ?? 0;
    await eventually('requests keep flowing with the rotated pair', async () => (seen.get(fingerprint(client2)) ?? 0) > after + 50, 10000);
  } finally {
    running = false;
    await Promise.all(loops);
    await r.close();
  }
  const first = seen.get(fingerprint(client1)) ?? 0;
  const second = seen.get(fingerprint(client2)) ?? 0;
  // (the counts, for the report)
  console.log(`rotation: ${ok} requests, ${failed.length} failed, ${first} with the first certificate, ${second} with the rotated one`);
  assert.deepEqual(failed, [], 'no failed request');
  assert.ok(first > 50 && second > 250, 'requests before and after the rotation');
  assert.equal(first + second, ok, 'every request presented one of the two certificates');
});
