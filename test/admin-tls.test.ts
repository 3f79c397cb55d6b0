// The Admin API over TLS (`admin.tls`, docs/tls.md "The Admin API over TLS"): curl --cacert and
// openssl s_client reach it with the admin key, a wrong key is still 401, plain HTTP to the port is
// closed and the port keeps serving; client certificates when `client_ca` is set; a certificate
// and key from a secret manager rotate into new handshakes without a restart while an established
// connection keeps going, and a rotated pair that does not match keeps the previous one (logged by
// path); a pair that does not match or parse is refused at load, by the gateway and by `gatehouse
// validate`; no key material in any message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { bootGateway, eventually, runCli, tempDir } from './helpers/harness';
import { memProvider } from './helpers/mem-provider';
import { plantCanary } from './helpers/leak-tap';
import { makeTestCa, pemBody, type IssuedPair, type TestCa } from './helpers/tls-pki';

const ADMIN_KEY = 'planted-admin-tls-test-key';
const KEY_ENV = 'GH_ADMIN_TLS_TEST_ADMIN_KEY';
const PEM_ENV = 'GH_ADMIN_TLS_TEST_PEM_KEY';
const NAME = 'admin.example.test';

let ca: TestCa;
let first: IssuedPair;
let second: IssuedPair;
let stranger: IssuedPair;

before(() => {
  plantCanary('admin tls test admin key', ADMIN_KEY);
  process.env[KEY_ENV] = ADMIN_KEY;
  ca = makeTestCa('gatehouse admin tls test CA');
  first = ca.issue('admin1', { names: [NAME] });
  second = ca.issue('admin2', { names: [NAME], keyType: 'rsa' });
  stranger = ca.issue('stranger', { names: ['other.example.test'] });
  process.env[PEM_ENV] = first.key;
});

after(() => {
  delete process.env[PEM_ENV];
});

/** Run a command; its exit code and output (never throws on a non-zero exit). */
function run(cmd: string, args: readonly string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: unknown }).code as number) ?? -1 : 0, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

/** curl over HTTPS to the admin port by name (resolved to 127.0.0.1), trusting the test CA. */
function curl(port: number, path: string, extra: readonly string[] = []) {
  return run('curl', ['-sS', '--max-time', '10', '--cacert', ca.certFile, '--resolve', `${NAME}:${port}:127.0.0.1`, '-w', '\n%{http_code}', ...extra, `https://${NAME}:${port}${path}`]);
}

/** The SHA-256 fingerprint of the certificate a new handshake with the admin port gets. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: NAME, ca: ca.cert }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

/** None of the pairs' keys in `text`. */
function assertNoKey(text: string, ...pairs: IssuedPair[]): void {
  for (const p of pairs) assert.ok(!text.includes(pemBody(p.key).slice(0, 40)), 'no key material');
}

test('admin.tls: curl --cacert with X-API-KEY reaches the Admin API; a wrong key is 401; openssl s_client verifies the chain; plain HTTP to the port is closed and the port keeps serving', { timeout: 60000 }, async () => {
  // the certificate a literal PEM, the key an $env:// reference (resolved through the secret cache)
  const g = await bootGateway({ admin: { key: `$env://${KEY_ENV}`, tls: { cert: first.cert, key: `$env://${PEM_ENV}` } } }, { adminListen: '127.0.0.1:0' });
  try {
    const port = g.gw.adminAddress!.port;
    const ok = await curl(port, '/admin/routes', ['-H', `X-API-KEY: ${ADMIN_KEY}`]);
    assert.equal(ok.code, 0, ok.stderr);
    const [bodyText, status] = ok.stdout.split('\n');
    assert.equal(status, '200');
    assert.deepEqual(JSON.parse(bodyText), { total: 0, list: [] });
    const apisix = await curl(port, '/apisix/admin/routes', ['-H', `X-API-KEY: ${ADMIN_KEY}`]);
    assert.equal(apisix.stdout.split('\n')[1], '200');

    const wrong = await curl(port, '/admin/routes', ['-H', 'X-API-KEY: not-the-key']);
    assert.equal(wrong.code, 0, wrong.stderr);
    assert.equal(wrong.stdout.split('\n')[1], '401');
    const none = await curl(port, '/admin/routes');
    assert.equal(none.stdout.split('\n')[1], '401');

    // a client nobody here wrote verifies the chain to the test CA
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', NAME, '-CAfile', ca.certFile, '-verify_return_error', '-verify_hostname', NAME], 'Q\n');
    assert.match(s.stdout, /Verify return code: 0 \(ok\)/);
    assert.match(s.stdout, /New, TLSv1\.3, Cipher/);
    // TLS 1.2 and 1.3, as the proxy's listener; not 1.1 (even with a client that lowers its own floor)
    const v12 = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', NAME, '-tls1_2'], 'Q\n');
    assert.match(v12.stdout, /New, TLSv1\.2, Cipher is (?!\(NONE\))/);
    const v11 = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', NAME, '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'], 'Q\n');
    assert.doesNotMatch(v11.stdout, /Cipher is (?!\(NONE\))/, 'no TLS 1.1 session');
    // without the CA, curl refuses the certificate: it is not a public one
    const untrusted = await run('curl', ['-sS', '--max-time', '10', '--resolve', `${NAME}:${port}:127.0.0.1`, `https://${NAME}:${port}/admin/routes`]);
    assert.notEqual(untrusted.code, 0);

    // plain HTTP to the TLS port: no answer, the connection closed (not left hanging)
    const plain = await new Promise<string>((resolve) => {
      const req = httpGet({ host: '127.0.0.1', port, path: '/admin/routes', headers: { 'x-api-key': ADMIN_KEY }, timeout: 5000 }, (res) => resolve(`answered ${res.statusCode}`));
      req.on('timeout', () => {
        req.destroy();
        resolve('timeout');
      });
      req.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    });
    assert.match(plain, /^error (ECONNRESET|EPIPE|ECONNREFUSED|HPE_|ERR_)/, plain);
    const curlPlain = await run('curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/admin/routes`]);
    assert.notEqual(curlPlain.code, 0);
    assert.notEqual(curlPlain.code, 28, 'closed, not timed out');
    const again = await curl(port, '/admin/routes', ['-H', `X-API-KEY: ${ADMIN_KEY}`]);
    assert.equal(again.stdout.split('\n')[1], '200');

    assert.ok(g.logs.lines.some((l) => l.msg === 'gatehouse admin API listening' && l.tls === 'on'));
    assertNoKey(g.logs.text(), first);
  } finally {
    await g.close();
  }
});

test('admin.tls.client_ca: an admin caller without a certificate the CA signed fails the handshake; with one, its key still decides', { timeout: 60000 }, async () => {
  const callers = makeTestCa('gatehouse admin tls callers CA');
  const caller = callers.issue('caller', { names: ['ops'], client: true });
  const outsider = ca.issue('outsider', { names: ['ops'], client: true });
  const g = await bootGateway({ admin: { key: `$env://${KEY_ENV}`, tls: { cert: first.cert, key: first.key, client_ca: callers.cert } } }, { adminListen: '127.0.0.1:0' });
  try {
    const port = g.gw.adminAddress!.port;
    const bare = await curl(port, '/admin/routes', ['-H', `X-API-KEY: ${ADMIN_KEY}`]);
    assert.notEqual(bare.code, 0, 'no client certificate: no answer');
    const wrongCa = await curl(port, '/admin/routes', ['-H', `X-API-KEY: ${ADMIN_KEY}`, '--cert', outsider.certFile, '--key', outsider.keyFile]);
    assert.notEqual(wrongCa.code, 0, "another CA's certificate: no answer");
    const ok = await curl(port, '/admin/routes', ['-H', `X-API-KEY: ${ADMIN_KEY}`, '--cert', caller.certFile, '--key', caller.keyFile]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.split('\n')[1], '200');
    const wrongKey = await curl(port, '/admin/routes', ['-H', 'X-API-KEY: nope', '--cert', caller.certFile, '--key', caller.keyFile]);
    assert.equal(wrongKey.stdout.split('\n')[1], '401');
    assert.ok(g.logs.lines.some((l) => l.msg === 'gatehouse admin API listening' && l.tls === 'on, client certificates required'));
  } finally {
    await g.close();
  }
});

test('admin.tls from a secret manager: a rotation reaches new handshakes without a restart, an established connection keeps going; a rotated key that does not match keeps the previous pair and says why', { timeout: 60000 }, async () => {
  const values = new Map([
    ['admin/cert', first.cert],
    ['admin/key', first.key],
  ]);
  const g = await bootGateway(
    { admin: { key: `$env://${KEY_ENV}`, tls: { cert: '$secret://mem/main/admin/cert', key: '$secret://mem/main/admin/key' } }, secrets: [{ id: 'mem/main' }] },
    { extensions: [memProvider(values)], adminListen: '127.0.0.1:0' },
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: ca.cert, servername: NAME });
  try {
    const port = g.gw.adminAddress!.port;
    /** One Admin API call on the agent's one kept-alive connection: its status and the socket it went on. */
    const call = (method: string, path: string) =>
      new Promise<{ status: number; socket: Socket }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, method, path, agent, headers: { 'x-api-key': ADMIN_KEY } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, socket: req.socket! }));
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await servedFingerprint(port), fingerprint(first.cert));
    const held = await call('GET', '/admin/routes');
    assert.equal(held.status, 200);

    // rotate: the refresh goes over the held connection (the Admin API over TLS does the work)
    values.set('admin/cert', second.cert);
    values.set('admin/key', second.key);
    const refreshed = await call('POST', '/admin/secrets/mem/main/refresh');
    assert.equal(refreshed.status, 200);
    await eventually('a new handshake gets the rotated certificate', async () => (await servedFingerprint(port)) === fingerprint(second.cert), 10000);
    // the connection made before the rotation was not cut: same socket, still the first certificate
    const after = await call('GET', '/admin/routes');
    assert.equal(after.status, 200);
    assert.equal(after.socket, held.socket);
    assert.equal((after.socket as TLSSocket).getPeerCertificate().fingerprint256, fingerprint(first.cert));
    // and through curl, a client nobody here wrote
    const viaCurl = await curl(port, '/admin/routes', ['-H', `X-API-KEY: ${ADMIN_KEY}`]);
    assert.equal(viaCurl.stdout.split('\n')[1], '200');

    // a key of another certificate: refused, logged by path, the rotated pair keeps serving
    values.set('admin/key', stranger.key);
    assert.equal((await call('POST', '/admin/secrets/mem/main/refresh')).status, 200);
    await servedFingerprint(port);
    await eventually('the refusal is logged', async () => g.logs.lines.some((l) => l.msg?.startsWith('admin.tls: the new certificate is refused') && JSON.stringify(l.errors).includes('admin.tls.key: does not match its certificate (admin.tls.cert)')), 10000);
    assert.equal(await servedFingerprint(port), fingerprint(second.cert));
    const logged = g.logs.lines.filter((l) => l.msg?.startsWith('admin.tls: the new certificate is refused')).length;
    // logged once, not at every connection
    await servedFingerprint(port);
    await servedFingerprint(port);
    assert.equal(g.logs.lines.filter((l) => l.msg?.startsWith('admin.tls: the new certificate is refused')).length, logged);

    // the matching key back: served again
    values.set('admin/cert', first.cert);
    values.set('admin/key', first.key);
    assert.equal((await call('POST', '/admin/secrets/mem/main/refresh')).status, 200);
    await eventually('back to the first pair', async () => (await servedFingerprint(port)) === fingerprint(first.cert), 10000);
    assertNoKey(g.logs.text(), first, second, stranger);
  } finally {
    agent.destroy();
    await g.close();
  }
});

test('admin.tls: a key that does not match its certificate, a certificate that does not parse or a missing key are refused at load, by path, never quoting a PEM', { timeout: 60000 }, async () => {
  const refused = async (config: Record<string, unknown>, extensions: never[] | undefined, pattern: RegExp) => {
    await assert.rejects(bootGateway(config, { adminListen: '127.0.0.1:0', ...(extensions ? { extensions } : {}) }), (err: Error) => {
      assert.match(err.message, pattern);
      assertNoKey(err.message, first, second, stranger);
      assert.ok(!err.message.includes(pemBody(first.cert).slice(0, 40)), 'no certificate either');
      return true;
    });
  };
  await refused({ admin: { tls: { cert: first.cert, key: stranger.key } } }, undefined, /admin\.tls\.key: does not match its certificate \(admin\.tls\.cert\)/);
  await refused({ admin: { tls: { cert: first.key, key: first.key } } }, undefined, /admin\.tls\.cert: is not a PEM certificate that parses/);
  await refused({ admin: { tls: { cert: first.cert } } }, undefined, /admin\.tls/);
  // a reference: checked once resolved, at the first build
  const values = new Map([
    ['a/cert', first.cert],
    ['a/key', second.key],
  ]);
  await refused({ admin: { tls: { cert: '$secret://mem/main/a/cert', key: '$secret://mem/main/a/key' } }, secrets: [{ id: 'mem/main' }] }, [memProvider(values) as never], /admin\.tls\.key: does not match its certificate \(admin\.tls\.cert\)/);

  // gatehouse validate says the same, and exits non-zero
  const dir = tempDir('gatehouse-admin-tls-');
  const file = join(dir, 'config.yaml');
  writeFileSync(file, JSON.stringify({ admin: { tls: { cert: first.cert, key: stranger.key } } }));
  const r = await runCli(['validate', '-c', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /admin\.tls\.key: does not match its certificate \(admin\.tls\.cert\)/);
  assertNoKey(r.stdout + r.stderr, first, stranger);
});

test('admin.tls on a reload: new PEMs apply to the next handshake; turning TLS off waits for a restart and says so', { timeout: 60000 }, async () => {
  const dir = tempDir('gatehouse-admin-tls-reload-');
  const file = join(dir, 'config.yaml');
  const write = (tls: Record<string, string> | undefined) => writeFileSync(file, JSON.stringify({ admin: { key: `$env://${KEY_ENV}`, ...(tls ? { tls } : {}) } }));
  write({ cert: first.cert, key: first.key });
  const g = await bootGateway({}, { configPath: file, adminListen: '127.0.0.1:0', watch: false });
  try {
    const port = g.gw.adminAddress!.port;
    assert.equal(await servedFingerprint(port), fingerprint(first.cert));
    write({ cert: second.cert, key: second.key });
    assert.equal((await g.gw.reload()).ok, true);
    assert.equal(await servedFingerprint(port), fingerprint(second.cert));
    // a reload with a pair that does not match is refused whole: the served pair stays
    write({ cert: first.cert, key: second.key });
    assert.equal((await g.gw.reload()).ok, false);
    assert.equal(await servedFingerprint(port), fingerprint(second.cert));
    write(undefined);
    assert.equal((await g.gw.reload()).ok, true);
    assert.ok(g.logs.lines.some((l) => l.msg === 'admin.tls changed: takes effect at the next restart' && l.value === 'off'));
    assert.equal(await servedFingerprint(port), fingerprint(second.cert), 'still TLS until the restart');
    assertNoKey(g.logs.text(), first, second);
  } finally {
    await g.close();
  }
});
