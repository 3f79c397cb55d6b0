// Session resumption on the TLS listener (docs/tls.md, "The listener"): a client that kept its
// session resumes without a full handshake, with TLS 1.2 and 1.3, also on an SSL resource that
// verifies client certificates; a session of one SSL resource never resumes on another's name
// (each resource's context has its own ticket keys), and a rotated certificate starts new sessions.
// Checked with Node's client and with openssl s_client (-sess_out / -sess_in).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { connect, type ConnectionOptions } from 'node:tls';
import { request } from 'undici';
import { bootGateway, tempDir, type TestGateway } from './helpers/harness';
import { makeTestCa, type TestCa, type IssuedPair } from './helpers/tls-pki';

let ca: TestCa;
let api: IssuedPair;
let other: IssuedPair;
let client: IssuedPair;
let g: TestGateway;
let port: number;
const ADMIN_KEY = 'planted-tls-resumption-admin-key';

before(async () => {
  ca = makeTestCa('resumption test CA');
  api = ca.issue('api', { names: ['api.resume.test'] });
  other = ca.issue('other', { names: ['other.resume.test'] });
  const mtls = ca.issue('mtls', { names: ['mtls.resume.test'] });
  client = ca.issue('client', { names: ['client.resume.test'], client: true });
  g = await bootGateway(
    {
      admin: { key: ADMIN_KEY },
      ssls: [
        { id: 'api', cert: api.cert, key: api.key, snis: ['api.resume.test'] },
        { id: 'other', cert: other.cert, key: other.key, snis: ['other.resume.test'] },
        { id: 'mtls', cert: mtls.cert, key: mtls.key, snis: ['mtls.resume.test'], client: { ca: ca.cert } },
      ],
      routes: [{ id: 'hi', uri: '/hi', plugins: { mocking: { response_example: 'hi' } } }],
    },
    { listenTls: '127.0.0.1:0', adminListen: '127.0.0.1:0' },
  );
  port = g.gw.tlsAddress!.port;
});

after(() => g?.close());

interface Handshake {
  reused: boolean;
  protocol: string | null;
  session: Buffer | undefined;
  fingerprint: string;
}

/** One connection: handshake, a request, the session the server gave (its ticket), and whether it resumed `session`. */
function handshake(servername: string, opts: ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const s = connect({ host: '127.0.0.1', port, servername, ca: ca.cert, ...opts });
    // TLS 1.3 sends tickets after the handshake: keep the last one seen before the response ends
    s.on('session', (b: Buffer) => (session = b));
    s.on('error', reject);
    s.once('secureConnect', () => s.end(`GET /hi HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`));
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('end', () => {
      if (!text.startsWith('HTTP/1.1 200')) return reject(new Error(`no 200: ${text.slice(0, 40)}`));
      resolve({ reused: s.isSessionReused(), protocol: s.getProtocol(), session, fingerprint: s.getPeerCertificate().fingerprint256 });
    });
  });
}

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  test(`${version}: a kept session resumes (no full handshake); the resumed connection is served`, async () => {
    const opts = { minVersion: version, maxVersion: version };
    const first = await handshake('api.resume.test', opts);
    assert.equal(first.protocol, version);
    assert.equal(first.reused, false);
    assert.ok(first.session, 'the server gave a session ticket');
    const again = await handshake('api.resume.test', { ...opts, session: first.session });
    assert.equal(again.reused, true, 'resumed');
  });

  test(`${version}: an SSL resource that verifies client certificates resumes too, for the same client`, async () => {
    const opts = { minVersion: version, maxVersion: version, cert: client.cert, key: client.key };
    const first = await handshake('mtls.resume.test', opts);
    assert.equal(first.reused, false);
    const again = await handshake('mtls.resume.test', { ...opts, session: first.session });
    assert.equal(again.reused, true, 'resumed');
  });

  test(`${version}: a session of one SSL resource does not resume on another resource's name`, async () => {
    const opts = { minVersion: version, maxVersion: version };
    const first = await handshake('api.resume.test', opts);
    const elsewhere = await handshake('other.resume.test', { ...opts, session: first.session });
    assert.equal(elsewhere.reused, false, 'a full handshake with the other certificate');
    assert.notEqual(elsewhere.fingerprint, first.fingerprint);
  });
}

test('openssl s_client -sess_out / -sess_in (TLS 1.2): the second connection says Reused', async () => {
  const dir = tempDir('gatehouse-resume-');
  const sess = join(dir, 'session.pem');
  const run = (args: string[]) =>
    new Promise<string>((resolve) => {
      const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'api.resume.test', '-tls1_2', ...args], { timeout: 15000 }, (_e, stdout) => resolve(stdout));
      child.stdin?.end('Q\n');
    });
  const first = await run(['-sess_out', sess]);
  assert.match(first, /^New, TLSv1\.2/m);
  const second = await run(['-sess_in', sess]);
  assert.match(second, /^Reused, TLSv1\.2/m);
});

test('a rotated certificate starts new sessions: a session made on the previous certificate does not resume', async () => {
  const first = await handshake('api.resume.test', { maxVersion: 'TLSv1.2' });
  const fresh = ca.issue('api2', { names: ['api.resume.test'], keyType: 'rsa' });
  const put = await request(`http://127.0.0.1:${g.gw.adminAddress!.port}/admin/ssls/api`, {
    method: 'PUT',
    headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ cert: fresh.cert, key: fresh.key, snis: ['api.resume.test'] }),
  });
  assert.equal(put.statusCode, 200, await put.body.text());
  const after = await handshake('api.resume.test', { maxVersion: 'TLSv1.2', session: first.session });
  assert.equal(after.reused, false);
  assert.notEqual(after.fingerprint, first.fingerprint, 'the new certificate');
});
