// The proxy's TLS listener (core/request/listener.ts listenProxyTls), checked with clients nobody
// here wrote: curl (--cacert --resolve) and openssl s_client (-servername). The certificate is
// chosen per handshake from the table the listener is given: exact name, one-label wildcard, the
// fallback for clients without a name; an unknown name fails the handshake; a new table reaches
// new handshakes while an established connection keeps going.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenProxyTls, drain, TLS_SERVER_DEFAULTS } from '../core/request/listener';
import { TlsTable, type TlsEntry } from '../core/request/tls-table';
import type { DataPlane } from '../core/request/data-plane';
import { makeTestCa, type IssuedPair } from './helpers/tls-pki';
import { bootGateway, captureLogger, upstreamFor } from './helpers/harness';

function run(cmd: string, args: readonly string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    child.stdin?.end(input);
  });
}

const entry = (sslId: string, p: IssuedPair): TlsEntry => {
  const options: SecureContextOptions = { cert: p.cert, key: p.key, ...TLS_SERVER_DEFAULTS };
  return { sslId, context: createSecureContext(options) };
};

/** The subject CN of the certificate a handshake with `servername` (none: no -servername) gets, or undefined when it fails. */
async function servedCn(port: number, servername: string | undefined): Promise<string | undefined> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, ...(servername ? ['-servername', servername] : ['-noservername'])];
  const r = await run('openssl', args, 'Q\n');
  const m = /subject=.*?CN ?= ?([^\s,/]+)/.exec(r.stdout);
  return m ? m[1] : undefined;
}

/** A GET through curl with the CA and a --resolve for `name`; the status, or an error text. */
async function curlGet(port: number, name: string, caFile: string): Promise<{ ok: boolean; out: string }> {
  const r = await run('curl', ['-sS', '--max-time', '10', '--cacert', caFile, '--resolve', `${name}:${port}:127.0.0.1`, '-w', ' %{http_code} %{http_version}', `https://${name}:${port}/hello`]);
  return { ok: r.code === 0, out: r.code === 0 ? r.stdout : r.stderr };
}

test('SNI picks the certificate: exact, wildcard, fallback without a name; an unknown name fails the handshake; curl verifies the chain', async (t) => {
  const ca = makeTestCa();
  const api = ca.issue('api', { names: ['api.example.com'] });
  const wild = ca.issue('wild', { names: ['*.example.com'], keyType: 'rsa' });
  const fb = ca.issue('fallback', { names: ['default.example.org'] });
  let table = new TlsTable(new Map([['api.example.com', entry('api', api)]]), new Map([['example.com', entry('wild', wild)]]), undefined);
  const plane = {
    handle: (req: IncomingMessage, res: ServerResponse) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`hello ${req.headers.host} encrypted=${(req.socket as { encrypted?: boolean }).encrypted === true}`);
    },
    handleContinue: (_req: IncomingMessage, res: ServerResponse) => res.writeContinue(),
  } as unknown as DataPlane;
  const { server, address } = await listenProxyTls(plane, '127.0.0.1', 0, 60, () => table);
  t.after(() => drain(server, 100, () => undefined));
  const port = (address as AddressInfo).port;

  assert.equal(await servedCn(port, 'api.example.com'), 'api.example.com');
  assert.equal(await servedCn(port, 'API.EXAMPLE.COM'), 'api.example.com', 'names are compared without case');
  assert.equal(await servedCn(port, 'www.example.com'), '*.example.com');
  assert.equal(await servedCn(port, 'a.b.example.com'), undefined, 'a wildcard covers one label only');
  assert.equal(await servedCn(port, 'unknown.test'), undefined, 'an unknown name gets no certificate');
  assert.equal(await servedCn(port, undefined), undefined, 'no name and no fallback: no certificate');

  const ok = await curlGet(port, 'api.example.com', ca.certFile);
  assert.ok(ok.ok, ok.out);
  // curl offers h2 first, and the listener takes it (HTTP/2 by default: docs/tls.md "HTTP/2")
  assert.match(ok.out, /^hello api\.example\.com:\d+ encrypted=true 200 2$/);
  const viaWildcard = await curlGet(port, 'www.example.com', ca.certFile);
  assert.ok(viaWildcard.ok, viaWildcard.out);
  const unknown = await curlGet(port, 'unknown.test', ca.certFile);
  assert.equal(unknown.ok, false, 'curl fails the handshake for an unknown name');
  assert.doesNotMatch(unknown.out, /hello/);

  // the table of a later snapshot: a fallback for clients without a name, and the api name gone
  table = new TlsTable(new Map([['default.example.org', entry('fallback', fb)]]), new Map([['example.com', entry('wild', wild)]]), entry('fallback', fb));
  assert.equal(await servedCn(port, undefined), 'default.example.org', 'the fallback serves clients that send no name');
  assert.equal(await servedCn(port, 'api.example.com'), '*.example.com', 'the exact entry is gone: the wildcard covers the name now');
  // and back to no fallback: a client without a name gets no certificate again
  table = new TlsTable(new Map(), new Map([['example.com', entry('wild', wild)]]), undefined);
  assert.equal(await servedCn(port, undefined), undefined);
});

test('a rotated certificate reaches new handshakes at once; a connection made before keeps serving on the old one', async (t) => {
  const ca = makeTestCa();
  const first = ca.issue('first', { names: ['api.example.com'] });
  const second = ca.issue('second', { names: ['api.example.com'], keyType: 'rsa' });
  let table = new TlsTable(new Map([['api.example.com', entry('api', first)]]), new Map(), undefined);
  const plane = { handle: (_req: IncomingMessage, res: ServerResponse) => res.end('ok'), handleContinue: () => undefined } as unknown as DataPlane;
  const { server, address } = await listenProxyTls(plane, '127.0.0.1', 0, 60, () => table);
  t.after(() => drain(server, 100, () => undefined));
  const port = (address as AddressInfo).port;

  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca: ca.cert, servername: 'api.example.com' });
  t.after(() => agent.destroy());
  const get = () =>
    new Promise<{ status: number; fingerprint: string }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/', agent, servername: 'api.example.com', headers: { host: 'api.example.com' } }, (res) => {
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, fingerprint }));
      });
      req.on('error', reject);
      req.end();
    });
  const before = await get();
  assert.equal(before.status, 200);
  table = new TlsTable(new Map([['api.example.com', entry('api', second)]]), new Map(), undefined);
  // the kept-alive connection still answers, on the certificate it was made with
  const same = await get();
  assert.equal(same.status, 200);
  assert.equal(same.fingerprint, before.fingerprint);
  // a new handshake gets the new certificate
  assert.equal(await servedCn(port, 'api.example.com'), 'api.example.com');
  const fresh = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'api.example.com'], 'Q\n');
  assert.match(fresh.stdout, /Server public key is 2048 bit/, 'the RSA certificate now (the first was EC P-256)');
});

test('TLS 1.0 and 1.1 are refused; TLS 1.2 and 1.3 are served', async (t) => {
  const ca = makeTestCa();
  const api = ca.issue('api', { names: ['api.example.com'] });
  const table = new TlsTable(new Map([['api.example.com', entry('api', api)]]), new Map(), undefined);
  const plane = { handle: (_req: IncomingMessage, res: ServerResponse) => res.end('ok'), handleContinue: () => undefined } as unknown as DataPlane;
  const { server, address } = await listenProxyTls(plane, '127.0.0.1', 0, 60, () => table);
  t.after(() => drain(server, 100, () => undefined));
  const port = (address as AddressInfo).port;
  const version = async (flag: string) => {
    const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'api.example.com', flag], 'Q\n');
    return /Protocol *: *(TLSv1(\.\d)?)/.exec(r.stdout)?.[1] ?? /New, (TLSv1(\.\d)?)/.exec(r.stdout)?.[1];
  };
  assert.equal(await version('-tls1_3'), 'TLSv1.3');
  assert.equal(await version('-tls1_2'), 'TLSv1.2');
  // OpenSSL 3 refuses TLS 1.1 at its default security level too: the handshake must fail either way
  const old = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'api.example.com', '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'], 'Q\n');
  assert.doesNotMatch(old.stdout, /Cipher is (?!\(NONE\))/, 'no TLS 1.1 session');
});

test('one SSL resource with an RSA and an ECDSA certificate: each client gets the one it can verify', async (t) => {
  const ca = makeTestCa();
  const rsa = ca.issue('rsa', { names: ['api.example.com'], keyType: 'rsa' });
  const ec = ca.issue('ec', { names: ['api.example.com'], keyType: 'ec' });
  // both pairs in one context, as an SSL resource's cert/key and certs/keys make it
  const both: TlsEntry = { sslId: 'api', context: createSecureContext({ cert: [rsa.cert, ec.cert], key: [rsa.key, ec.key], ...TLS_SERVER_DEFAULTS }) };
  const table = new TlsTable(new Map([['api.example.com', both]]), new Map(), both);
  const plane = { handle: (_req: IncomingMessage, res: ServerResponse) => res.end('ok'), handleContinue: () => undefined } as unknown as DataPlane;
  const { server, address } = await listenProxyTls(plane, '127.0.0.1', 0, 60, () => table);
  t.after(() => drain(server, 100, () => undefined));
  const port = (address as AddressInfo).port;
  const keyOf = async (sigalgs: string, servername: boolean) => {
    const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...(servername ? ['-servername', 'api.example.com'] : ['-noservername']), '-sigalgs', sigalgs], 'Q\n');
    return /Server public key is (\d+) bit/.exec(r.stdout)?.[1];
  };
  assert.equal(await keyOf('ECDSA+SHA256', true), '256', 'an ECDSA-only client gets the P-256 certificate');
  assert.equal(await keyOf('RSA-PSS+SHA256:RSA+SHA256', true), '2048', 'an RSA-only client gets the RSA certificate');
  // the fallback (no server name) is the whole context too
  assert.equal(await keyOf('ECDSA+SHA256', false), '256');
  assert.equal(await keyOf('RSA-PSS+SHA256:RSA+SHA256', false), '2048');
});

test('bytes that are no ClientHello, and a ClientHello that never completes, close the connection without an answer', async (t) => {
  const ca = makeTestCa();
  const api = ca.issue('api', { names: ['api.example.com'] });
  const table = new TlsTable(new Map([['api.example.com', entry('api', api)]]), new Map(), undefined);
  let handled = 0;
  const plane = { handle: (_req: IncomingMessage, res: ServerResponse) => (handled++, res.end('ok')), handleContinue: () => undefined } as unknown as DataPlane;
  // a client header timeout of 0.3 s: the ClientHello must arrive within it
  const { server, address } = await listenProxyTls(plane, '127.0.0.1', 0, 0.3, () => table);
  t.after(() => drain(server, 100, () => undefined));
  const port = (address as AddressInfo).port;
  const exchange = (bytes: Buffer) =>
    new Promise<{ answer: Buffer; ms: number }>((resolve) => {
      const t0 = Date.now();
      const chunks: Buffer[] = [];
      const s = netConnect(port, '127.0.0.1', () => s.write(bytes));
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('error', () => undefined);
      s.on('close', () => resolve({ answer: Buffer.concat(chunks), ms: Date.now() - t0 }));
    });
  const plain = await exchange(Buffer.from('GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n'));
  assert.equal(plain.answer.length, 0, 'plain HTTP on the TLS port gets nothing back');
  const partial = await exchange(Buffer.from([22, 3, 1, 0, 200, 1, 0, 0]));
  assert.equal(partial.answer.length, 0);
  assert.ok(partial.ms >= 250 && partial.ms < 5000, `closed by the header timeout (${partial.ms} ms)`);
  assert.equal(handled, 0);
  assert.equal(await new Promise<number>((r) => server.getConnections((_e, n) => r(n))), 0, 'no connection left behind');
});

test('gateway.listen_tls: the gateway runs a TLS listener beside the plain one; without SSL resources it says so and fails every handshake cleanly; a port clash is a config error', async (t) => {
  const logs = captureLogger();
  const g = await bootGateway({ routes: [{ id: 'r', uri: '/hello', plugins: { mocking: { response_status: 200, response_example: 'hi' } } }] }, { listenTls: '127.0.0.1:0', logger: logs.logger });
  t.after(() => g.gw.close(0));
  const tlsPort = g.gw.tlsAddress!.port;
  assert.notEqual(tlsPort, g.gw.address.port);
  assert.ok(logs.lines.some((l) => l.msg === 'gatehouse TLS listening'));
  assert.ok(logs.lines.some((l) => /no certificate yet/.test(String(l.msg))), 'a TLS listener without certificates is said at start');
  assert.equal(await servedCn(tlsPort, 'api.example.com'), undefined);
  const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-servername', 'api.example.com'], 'Q\n');
  assert.match(r.stderr, /unrecognized name/);
  // the plain listener is unaffected
  const plain = await run('curl', ['-sS', `http://127.0.0.1:${g.gw.address.port}/hello`]);
  assert.equal(plain.stdout, 'hi');
  // on the plain listener's port: refused at load, with the path
  await assert.rejects(bootGateway({ gateway: { listen: '0.0.0.0:9080', listen_tls: '127.0.0.1:9080' } }), /gateway\.listen_tls.*plain listener/);
});

test('client certificates: an SSL resource with a client CA admits only clients whose certificate chains to it', async (t) => {
  const ca = makeTestCa();
  const other = makeTestCa('another CA');
  const api = ca.issue('api', { names: ['api.example.com'] });
  const alice = ca.issue('alice', { names: ['alice'], client: true });
  const mallory = other.issue('mallory', { names: ['mallory'], client: true });
  const options = { cert: api.cert, key: api.key, ca: ca.cert, ...TLS_SERVER_DEFAULTS };
  const mtls: TlsEntry = { sslId: 'mtls', context: createSecureContext(options), clientAuth: { depth: 1, options } };
  const table = new TlsTable(new Map([['api.example.com', mtls]]), new Map(), undefined);
  const plane = { handle: (_req: IncomingMessage, res: ServerResponse) => res.end('admitted'), handleContinue: () => undefined } as unknown as DataPlane;
  const { server, address } = await listenProxyTls(plane, '127.0.0.1', 0, 60, () => table);
  t.after(() => drain(server, 100, () => undefined));
  const port = (address as AddressInfo).port;
  const curl = (extra: string[]) => run('curl', ['-sS', '--max-time', '10', '--cacert', ca.certFile, '--resolve', `api.example.com:${port}:127.0.0.1`, ...extra, `https://api.example.com:${port}/`]);
  const ok = await curl(['--cert', alice.certFile, '--key', alice.keyFile]);
  assert.equal(ok.stdout, 'admitted', ok.stderr);
  const none = await curl([]);
  assert.notEqual(none.code, 0, 'no client certificate: refused');
  assert.doesNotMatch(none.stdout, /admitted/);
  const wrong = await curl(['--cert', mallory.certFile, '--key', mallory.keyFile]);
  assert.notEqual(wrong.code, 0, 'a certificate of another CA: refused');
  assert.doesNotMatch(wrong.stdout, /admitted/);
  // refused handshakes leave no connection behind (drain would wait for them)
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await new Promise<number>((r) => server.getConnections((_e, n) => r(n))), 0);
});

test('end to end: an SSL resource with client.ca admits only its clients, and the upstream hears X-Forwarded-Proto: https', async (t) => {
  const ca = makeTestCa();
  const other = makeTestCa('another CA');
  const api = ca.issue('api', { names: ['mtls.example.test'] });
  const alice = ca.issue('alice', { names: ['alice'], client: true });
  const mallory = other.issue('mallory', { names: ['mallory'], client: true });
  const up = await upstreamFor(t, (req, res) => res.end(`proto=${req.headers['x-forwarded-proto']}`));
  const g = await bootGateway(
    {
      ssls: [{ id: 'mtls', cert: api.cert, key: api.key, snis: ['mtls.example.test'], client: { ca: ca.cert } }],
      routes: [{ id: 'echo', uri: '/echo', upstream: { nodes: { [`127.0.0.1:${up.port}`]: 1 } } }],
    },
    { listenTls: '127.0.0.1:0' },
  );
  t.after(() => g.gw.close(0));
  const port = g.gw.tlsAddress!.port;
  const curl = (extra: string[]) => run('curl', ['-sS', '--max-time', '10', '--cacert', ca.certFile, '--resolve', `mtls.example.test:${port}:127.0.0.1`, ...extra, `https://mtls.example.test:${port}/echo`]);
  const ok = await curl(['--cert', alice.certFile, '--key', alice.keyFile]);
  assert.equal(ok.stdout, 'proto=https', ok.stderr);
  const none = await curl([]);
  assert.notEqual(none.code, 0);
  assert.doesNotMatch(none.stdout, /proto/);
  const wrong = await curl(['--cert', mallory.certFile, '--key', mallory.keyFile]);
  assert.notEqual(wrong.code, 0);
  assert.doesNotMatch(wrong.stdout, /proto/);
});
