// SSL resources (docs/tls.md): loaded from the config file into the snapshot's TLS table (exact
// name, one-label wildcard, fallback, unknown name), written through the Admin API on both prefixes
// with keys masked and the "******" round trip, refused with a path (and never an echo of a PEM)
// when a pair does not parse or match, a name is not one or is claimed twice, or extra keys do not
// pair with extra certificates; references resolved and checked at build; a change of one SSL
// resource makes that resource's context alone, and the previous snapshot's table stays as it was.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { bootGateway, eventually, tempDir, type TestGateway } from './helpers/harness';
import { buildCounters } from './helpers/build-counters';
import { memProvider } from './helpers/mem-provider';
import { plantCanary } from './helpers/leak-tap';
import { pemBody } from './helpers/tls-pki';
import { makeSslPki, type SslPair, type SslPki } from './helpers/ssl-pki';
import type { TlsTable } from '../core/request/tls-table';
import { randomBytes } from 'node:crypto';
import type { IKeyValue } from 'etcd3';
import { secretFieldPaths } from '../core/admin/redact';
import type { Registry } from '../core/config/registry';
import { ENC_PREFIX } from '../core/stores/encryption';
import { decodeItem, encodeItem, keyOf } from '../core/stores/etcd-keys';

const ADMIN_KEY = 'planted-ssl-test-admin-key';
const KEY_ENV = 'GH_SSL_TEST_ADMIN_KEY';

let pki: SslPki;
let api: SslPair;
let wild: SslPair;
let wildRsa: SslPair;
let fallback: SslPair;
let fromEnv: SslPair;
let other: SslPair;
let g: TestGateway;
let admin: string;
let dir: string;

const body = pemBody;

before(async () => {
  plantCanary('ssl test admin key', ADMIN_KEY);
  process.env[KEY_ENV] = ADMIN_KEY;
  pki = makeSslPki();
  api = pki.leaf(['api.example.test']);
  wild = pki.leaf(['*.example.test']);
  wildRsa = pki.leaf(['*.example.test'], 'rsa');
  fallback = pki.leaf(['fallback.example.test']);
  fromEnv = pki.leaf(['ref.example.test'], 'rsa');
  other = pki.leaf(['other.example.test']);
  process.env.GH_SSL_TEST_REF_KEY = fromEnv.key;
  dir = tempDir('gatehouse-ssl-');
  const file = join(dir, 'config.yaml');
  // JSON is YAML: the config file as an operator writes it
  writeFileSync(
    file,
    JSON.stringify({
      gateway: { tls: { fallback_sni: 'Fallback.Example.Test' } },
      admin: { key: `$env://${KEY_ENV}` },
      ssls: [
        { id: 'api', ...api, snis: ['API.example.test'] },
        { id: 'wild', ...wild, certs: [wildRsa.cert], keys: [wildRsa.key], snis: ['*.example.test'] },
        { id: 'fb', ...fallback, snis: ['fallback.example.test'], labels: { env: 'test' }, desc: 'for clients without SNI' },
        { id: 'ref', cert: fromEnv.cert, key: '$env://GH_SSL_TEST_REF_KEY', snis: ['ref.example.test'] },
        { id: 'off', ...other, snis: ['api.example.test'], status: 0 },
        { id: 'cli', ...other, snis: ['api.example.test'], type: 'client', client: { ca: pki.ca, depth: 2 } },
      ],
      routes: [{ id: 'r1', uri: '/r1', upstream: { nodes: { '127.0.0.1:1': 1 } } }],
    }),
  );
  g = await bootGateway({}, { configPath: file, adminListen: '127.0.0.1:0' });
  admin = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
});

after(async () => {
  await g?.close();
  delete process.env.GH_SSL_TEST_REF_KEY;
});

async function call(method: string, path: string, b?: unknown): Promise<{ status: number; text: string; json: any }> {
  const r = await request(`${admin}${path}`, { method: method as 'PUT', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: b === undefined ? undefined : JSON.stringify(b) });
  const text = await r.body.text();
  return { status: r.statusCode, text, json: text ? JSON.parse(text) : undefined };
}

/** The build counters from /metrics. */
const counters = () => buildCounters(admin);

/** The subject CN of the certificate a TLS server using `table` presents for `servername`. */
async function served(table: TlsTable, servername: string | undefined): Promise<string> {
  const server = createServer({ SNICallback: (name, cb) => cb(null, table.select(name)?.context) }, (s) => s.end());
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const socket: TLSSocket = await new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, servername, ca: pki.ca, checkServerIdentity: () => undefined }, () => resolve(s));
      s.on('error', reject);
    });
    const cn = String(socket.getPeerCertificate().subject.CN);
    socket.destroy();
    return cn;
  } finally {
    await new Promise((r) => server.close(r));
  }
}

test("the config file's SSL resources fill the TLS table: exact before wildcard, no case, the fallback, nothing for an unknown name", async () => {
  const t = g.gw.snapshot.tls;
  assert.equal(t.select('api.example.test')?.sslId, 'api');
  assert.equal(t.select('API.EXAMPLE.TEST')?.sslId, 'api');
  assert.equal(t.select('www.example.test')?.sslId, 'wild');
  assert.equal(t.select('a.b.example.test'), undefined, 'a wildcard covers one label');
  assert.equal(t.select('example.test'), undefined);
  assert.equal(t.select('fallback.example.test')?.sslId, 'fb');
  assert.equal(t.select(undefined)?.sslId, 'fb', 'no SNI: the fallback');
  assert.equal(t.select('ref.example.test')?.sslId, 'ref', 'a key from $env:// resolves and builds');
  assert.equal(t.select('unknown.test'), undefined);
  assert.equal(t.size, 4, 'a disabled resource and a client certificate serve no name');
  // the contexts serve what they hold, to a client that checks the chain against the test CA
  assert.equal(await served(t, 'api.example.test'), 'api.example.test');
  assert.equal(await served(t, 'www.example.test'), '*.example.test');
  assert.equal(await served(t, 'ref.example.test'), 'ref.example.test');
});

test('the Admin API lists and shows SSL resources with keys masked, references and certificates as written', async () => {
  for (const prefix of ['/admin/', '/apisix/admin/']) {
    const list = await call('GET', `${prefix}ssls`);
    assert.equal(list.status, 200, list.text);
    assert.equal(list.json.total, 6);
    const one = await call('GET', `${prefix}ssls/wild`);
    assert.equal(one.status, 200);
    assert.equal(one.json.key, '/apisix/ssls/wild');
    assert.equal(one.json.value.key, '******');
    assert.deepEqual(one.json.value.keys, ['******']);
    assert.equal(one.json.value.cert, wild.cert);
    const ref = await call('GET', `${prefix}ssls/ref`);
    assert.equal(ref.json.value.key, '$env://GH_SSL_TEST_REF_KEY');
    assert.equal((await call('GET', `${prefix}ssls/nope`)).status, 404);
  }
});

test('PUT, PATCH, SubPath PATCH, POST and DELETE on both prefixes; "******" written back keeps the stored key', async () => {
  for (const [i, prefix] of (['/admin/', '/apisix/admin/'] as const).entries()) {
    const name = `w${i}.admin.test`;
    const pair = pki.leaf([name]);
    const id = `adm${i}`;
    const put = await call('PUT', `${prefix}ssls/${id}`, { ...pair, snis: [name] });
    assert.equal(put.status, 201, put.text);
    assert.equal(put.json.value.key, '******');
    assert.equal(g.gw.snapshot.tls.select(name)?.sslId, id);
    const stored = () => g.gw.snapshot.config.ssls.find((s) => s.id === id)!;
    assert.ok(stored().key === pair.key, 'the key is stored as written');
    // the masked answer written back: the stored key stays
    const back = await call('PUT', `${prefix}ssls/${id}`, { ...put.json.value, desc: 'again' });
    assert.equal(back.status, 200, back.text);
    assert.ok(stored().key === pair.key, '"******" keeps the stored key');
    assert.equal(stored().desc, 'again');
    const patch = await call('PATCH', `${prefix}ssls/${id}`, { labels: { team: 'edge' } });
    assert.equal(patch.status, 200, patch.text);
    assert.deepEqual(stored().labels, { team: 'edge' });
    const sub = await call('PATCH', `${prefix}ssls/${id}/desc`, 'sub');
    assert.equal(sub.status, 200, sub.text);
    assert.equal(stored().desc, 'sub');
    assert.ok(stored().key === pair.key);
    const post = await call('POST', `${prefix}ssls`, { ...pki.leaf([`p${i}.admin.test`]), snis: [`p${i}.admin.test`] });
    assert.equal(post.status, 201, post.text);
    assert.equal(g.gw.snapshot.tls.select(`p${i}.admin.test`)?.sslId, post.json.value.id);
    for (const gone of [id, post.json.value.id]) {
      const del = await call('DELETE', `${prefix}ssls/${gone}`);
      assert.equal(del.status, 200, del.text);
    }
    assert.equal(g.gw.snapshot.tls.select(name), undefined);
  }
});

test('refused writes name the path, change nothing, and never echo a PEM', async () => {
  const generation = g.gw.snapshot.generation;
  const name = 'refused.admin.test';
  const pair = pki.leaf([name]);
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a key of another certificate', { ...pair, key: other.key, snis: [name] }, /ssls\[\d+\]\.key: does not match its certificate/],
    ['a certificate that does not parse', { ...pair, cert: '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n', snis: [name] }, /ssls\[\d+\]\.cert: is not a PEM certificate/],
    ['a key that does not parse', { ...pair, key: `${pair.key.slice(0, 80)}broken`, snis: [name] }, /ssls\[\d+\]\.key: is not a PEM private key/],
    ['an extra key of another certificate', { ...pair, certs: [wildRsa.cert], keys: [other.key], snis: [name] }, /ssls\[\d+\]\.keys\[0\]: does not match/],
    ['a name that is not one', { ...pair, snis: ['bad name.test'] }, /ssls\[\d+\]\.snis\[0\]: "bad name.test" is not a host name/],
    ['a wildcard deeper than one label', { ...pair, snis: ['*.*.example.test'] }, /ssls\[\d+\]\.snis\[0\]/],
    ['a name another resource serves', { ...pair, snis: [name, 'API.example.test'] }, /ssls\[\d+\]\.snis\[1\]: "api\.example\.test" is already served by SSL resource "api"/],
    ['more certificates than keys', { ...pair, certs: [wildRsa.cert], snis: [name] }, /ssls\[\d+\]\.keys: must have one key per entry of certs \(1\), has 0/],
    ['no snis', { ...pair }, /snis/],
  ];
  for (const [what, b, message] of cases) {
    for (const prefix of ['/admin/', '/apisix/admin/']) {
      const r = await call('PUT', `${prefix}ssls/refused`, b);
      assert.equal(r.status, 400, `${what}: ${r.text}`);
      assert.match(r.json.error_msg, message, what);
      for (const pem of [pair.key, other.key, wildRsa.key, pair.cert]) assert.ok(!r.text.includes(body(pem).slice(0, 40)), `${what}: no PEM in the answer`);
    }
  }
  assert.equal(g.gw.snapshot.generation, generation);
  assert.equal((await call('GET', '/admin/ssls/refused')).status, 404);
});

test('a reference whose value does not match refuses the write with the path, and the live table keeps serving', async () => {
  process.env.GH_SSL_TEST_WRONG_KEY = other.key;
  try {
    const live = g.gw.snapshot;
    const r = await call('PUT', '/admin/ssls/wrongref', { cert: api.cert, key: '$env://GH_SSL_TEST_WRONG_KEY', snis: ['wrongref.example.test'] });
    assert.equal(r.status, 400, r.text);
    assert.match(r.text, /ssls\[\d+\]\.key: does not match its certificate/);
    assert.ok(!r.text.includes(body(other.key).slice(0, 40)));
    assert.equal(g.gw.snapshot, live);
    assert.equal(g.gw.snapshot.tls.select('api.example.test')?.sslId, 'api');
  } finally {
    delete process.env.GH_SSL_TEST_WRONG_KEY;
  }
});

test('a config file whose referenced key does not match its certificate is refused at load with the path, no PEM in the message', async () => {
  process.env.GH_SSL_TEST_BAD_KEY = other.key;
  try {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, JSON.stringify({ ssls: [{ id: 'bad', cert: api.cert, key: '$env://GH_SSL_TEST_BAD_KEY', snis: ['api.example.test'] }] }));
    await assert.rejects(bootGateway({}, { configPath: file }), (err: Error) => {
      assert.match(err.message, /ssls\[0\]\.key: does not match its certificate/);
      assert.ok(!err.message.includes(body(other.key).slice(0, 40)));
      return true;
    });
    const unknown = join(dir, 'fallback.yaml');
    writeFileSync(unknown, JSON.stringify({ gateway: { tls: { fallback_sni: 'nowhere.test' } }, ssls: [{ id: 'a', ...api, snis: ['api.example.test'] }] }));
    await assert.rejects(bootGateway({}, { configPath: unknown }), /gateway\.tls\.fallback_sni: "nowhere\.test" is not a name an enabled server SSL resource serves/);
    const twice = join(dir, 'twice.yaml');
    writeFileSync(twice, JSON.stringify({ ssls: [{ id: 'a', ...api, snis: ['api.example.test'] }, { id: 'b', ...wild, snis: ['api.example.test'] }] }));
    await assert.rejects(bootGateway({}, { configPath: twice }), /ssls\[1\]\.snis\[0\]: "api\.example\.test" is already served by SSL resource "a" \(ssls\[0\]\)/);
  } finally {
    delete process.env.GH_SSL_TEST_BAD_KEY;
  }
});

test('a change of one SSL resource makes its context alone, compiles no route, and leaves the previous table as it was', async () => {
  const old = g.gw.snapshot;
  const before = await counters();
  const replaced = pki.leaf(['api.example.test']);
  const r = await call('PUT', '/admin/ssls/api', { ...replaced, snis: ['api.example.test'] });
  assert.equal(r.status, 200, r.text);
  const after = await counters();
  const grew = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
  assert.equal(grew('build_compiled_total{kind="ssl"}'), 1);
  assert.equal(grew('build_compiled_total{kind="route"}'), 0);
  assert.equal(grew('build_compiled_total{kind="consumer"}'), 0);
  assert.equal(grew('snapshot_builds_total{kind="full"}'), 0);
  assert.equal(grew('snapshot_builds_total{kind="incremental"}'), 1);
  const now = g.gw.snapshot;
  assert.notEqual(now, old);
  assert.notEqual(now.tls.select('api.example.test'), old.tls.select('api.example.test'));
  assert.equal(now.tls.select('www.example.test'), old.tls.select('www.example.test'), 'the other resources keep their contexts');
  assert.equal(now.tls.select(undefined), old.tls.select(undefined));
  assert.equal(old.tls.select('api.example.test')?.sslId, 'api');
  assert.equal(await served(old.tls, 'api.example.test'), 'api.example.test');
  const serial = (table: TlsTable) =>
    new Promise<string>((resolve, reject) => {
      const server = createServer({ SNICallback: (n, cb) => cb(null, table.select(n)?.context) }, (s) => s.end());
      server.listen(0, '127.0.0.1', () => {
        const s = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: 'api.example.test', ca: pki.ca, checkServerIdentity: () => undefined }, () => {
          const n = s.getPeerCertificate().serialNumber;
          s.destroy();
          server.close(() => resolve(n));
        });
        s.on('error', reject);
      });
    });
  assert.notEqual(await serial(now.tls), await serial(old.tls), 'the new table serves the new certificate, the old one the old');
  // a route change carries the table forward
  const same = now.tls;
  assert.equal((await call('PUT', '/admin/routes/r2', { uri: '/r2', upstream: { nodes: { '127.0.0.1:1': 1 } } })).status, 201);
  assert.equal(g.gw.snapshot.tls, same);
});

test('in etcd an SSL resource is stored under ssls/<id> with its keys encrypted (certificates and references as written), and read back as written', () => {
  const item = { id: 'stored', ...api, certs: [wildRsa.cert], keys: [wildRsa.key], snis: ['api.example.test'], client: { ca: pki.ca, depth: 1 } };
  const ref = { id: 'byref', cert: api.cert, key: '$env://GH_SSL_TEST_REF_KEY', snis: ['ref.example.test'] };
  const secretFields = secretFieldPaths({ plugins: new Map(), providers: new Map() } as unknown as Registry);
  const encryptionKey = randomBytes(32);
  const text = encodeItem('ssls', item, encryptionKey, secretFields);
  assert.equal(keyOf('ssls', item), 'ssls/stored');
  for (const k of [api.key, wildRsa.key]) assert.ok(!text.includes(body(k).slice(0, 40)), 'no key in the stored value');
  const stored = JSON.parse(text);
  assert.ok(stored.key.startsWith(ENC_PREFIX) && stored.keys[0].startsWith(ENC_PREFIX));
  assert.equal(stored.cert, api.cert);
  assert.equal(stored.client.ca, pki.ca);
  const kv = (v: string) => ({ key: Buffer.from(''), value: Buffer.from(v), create_revision: '1', mod_revision: '1', version: '1', lease: '0' }) as unknown as IKeyValue;
  const back = decodeItem('/gh/', 'ssls/stored', kv(text), encryptionKey);
  assert.equal(back?.kind, 'ssls');
  assert.deepEqual(back?.value, item);
  assert.equal(JSON.parse(encodeItem('ssls', ref, encryptionKey, secretFields)).key, ref.key, 'a reference is stored as written');
});

test('a reference that cannot be resolved fails closed: the write is kept, that resource serves no name, one log line names it and the reference', async () => {
  delete process.env.GH_SSL_TEST_UNSET_KEY;
  const r = await call('PUT', '/admin/ssls/unset', { cert: api.cert, key: '$env://GH_SSL_TEST_UNSET_KEY', snis: ['unset.elsewhere.test'] });
  assert.equal(r.status, 201, r.text);
  assert.equal(g.gw.snapshot.tls.select('unset.elsewhere.test'), undefined);
  assert.equal(g.gw.snapshot.tls.select('api.example.test')?.sslId, 'api', 'the others still serve');
  const line = g.logs.lines.find((e) => e.ssl === 'unset');
  assert.ok(line, 'logged');
  assert.equal(line.reference, '$env://GH_SSL_TEST_UNSET_KEY');
  assert.match(line.path, /^ssls\[\d+\]\.key$/);
  assert.equal((await call('DELETE', '/admin/ssls/unset')).status, 200);
});

test('"******" in keys[j] keeps the stored keys[j]; with nothing stored there the write is refused', async () => {
  const got = await call('GET', '/admin/ssls/wild');
  const back = await call('PUT', '/admin/ssls/wild', { ...got.json.value, desc: 'round trip' });
  assert.equal(back.status, 200, back.text);
  const stored = g.gw.snapshot.config.ssls.find((s) => s.id === 'wild')!;
  assert.ok(stored.key === wild.key && stored.keys![0] === wildRsa.key, 'both keys kept');
  assert.equal(stored.desc, 'round trip');
  const more = await call('PATCH', '/admin/ssls/wild', { certs: [wildRsa.cert, wild.cert], keys: ['******', '******'] });
  assert.equal(more.status, 400, more.text);
  assert.equal(more.json.error_msg, 'ssls/wild.keys[1] is "******" but no value is stored to keep');
});

test('a certificate and key from a secret manager: a rotation reaches the TLS table; a rotated key that does not match is refused, the previous pair keeps serving, and a consumer key rotated with it still applies', { timeout: 30000 }, async () => {
  const first = pki.leaf(['rot.example.test']);
  const second = pki.leaf(['rot.example.test'], 'rsa');
  const values = new Map([
    ['rot/cert', first.cert],
    ['rot/key', first.key],
    ['jack/key', 'ssl-test-consumer-key-1'],
  ]);
  const mem = memProvider(values);
  const r = await bootGateway(
    {
      admin: { key: `$env://${KEY_ENV}` },
      secrets: [{ id: 'mem/main' }],
      ssls: [{ id: 'rot', cert: '$secret://mem/main/rot/cert', key: '$secret://mem/main/rot/key', snis: ['rot.example.test'] }],
      consumers: [{ username: 'jack', plugins: { 'key-auth': { key: '$secret://mem/main/jack/key' } } }],
      routes: [{ id: 'k', uri: '/k', plugins: { 'key-auth': {}, mocking: { response_example: 'in' } } }],
    },
    { extensions: [mem], adminListen: '127.0.0.1:0' },
  );
  try {
    const refresh = async () => {
      const res = await request(`http://127.0.0.1:${r.gw.adminAddress!.port}/admin/secrets/mem/main/refresh`, { method: 'POST', headers: { 'x-api-key': ADMIN_KEY } });
      assert.equal(res.statusCode, 200, await res.body.text());
    };
    const before = r.gw.snapshot.tls.select('rot.example.test');
    assert.equal(before?.sslId, 'rot');
    values.set('rot/cert', second.cert);
    values.set('rot/key', second.key);
    await refresh();
    await eventually('the rotated pair is in the table', async () => r.gw.snapshot.tls.select('rot.example.test') !== before, 10000);
    const rotated = r.gw.snapshot.tls.select('rot.example.test')!;
    assert.equal(rotated.sslId, 'rot');
    assert.equal(await served(r.gw.snapshot.tls, 'rot.example.test'), 'rot.example.test');
    // a key of another certificate, rotated together with jack's key: the pair is refused (logged
    // with its path), the rotated pair keeps serving, and jack's new key applies all the same
    const withKey = async (key: string) => (await request(`${r.url}/k`, { headers: { apikey: key } })).statusCode;
    assert.equal(await withKey('ssl-test-consumer-key-1'), 200);
    values.set('rot/key', other.key);
    values.set('jack/key', 'ssl-test-consumer-key-2');
    await refresh();
    await eventually('the refused pair is logged', async () => r.logs.lines.some((l) => /ssls\[0\]\.key: does not match its certificate/.test(JSON.stringify(l)) && /previous pair keeps serving/.test(String(l.msg))), 10000);
    await eventually("jack's rotated key works", async () => (await withKey('ssl-test-consumer-key-2')) === 200, 10000);
    assert.equal(r.gw.snapshot.tls.select('rot.example.test'), rotated, 'the same context: nothing of the refused pair');
    assert.equal(await served(r.gw.snapshot.tls, 'rot.example.test'), 'rot.example.test');
    // the matching key arrives: the new pair is built
    const third = pki.leaf(['rot.example.test']);
    values.set('rot/cert', third.cert);
    values.set('rot/key', third.key);
    await refresh();
    await eventually('the matching pair replaces it', async () => r.gw.snapshot.tls.select('rot.example.test') !== rotated, 10000);
    assert.ok(!r.logs.text().includes(body(other.key).slice(0, 40)), 'no key in the log');
  } finally {
    await r.close();
  }
});

test("end to end: the TLS listener serves the config's SSL resources by name (HTTPS through the route), and a write reaches the next handshake", { timeout: 30000 }, async () => {
  const e2e = await bootGateway(
    { admin: { key: `$env://${KEY_ENV}` }, ssls: [{ id: 'api', ...api, snis: ['api.example.test'] }], routes: [{ id: 'hi', uri: '/hi', plugins: { mocking: { response_example: 'over tls' } } }] },
    { adminListen: '127.0.0.1:0', listenTls: '127.0.0.1:0' },
  );
  try {
    const port = e2e.gw.tlsAddress!.port;
    const get = (servername: string) =>
      new Promise<{ status: number; text: string; cn: string }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path: '/hi', servername, ca: pki.ca, headers: { host: servername }, agent: false }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode!, text, cn: String((res.socket as TLSSocket).getPeerCertificate().subject.CN) }));
        });
        req.on('error', reject);
        req.end();
      });
    const one = await get('api.example.test');
    assert.deepEqual([one.status, one.text, one.cn], [200, 'over tls', 'api.example.test'], 'the chain verifies against the test CA for the name');
    await assert.rejects(get('new.example.test'), 'no resource serves the name yet');
    const fresh = pki.leaf(['new.example.test'], 'rsa');
    const put = await request(`http://127.0.0.1:${e2e.gw.adminAddress!.port}/admin/ssls/new`, { method: 'PUT', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: JSON.stringify({ ...fresh, snis: ['new.example.test'] }) });
    assert.equal(put.statusCode, 201, await put.body.text());
    const two = await get('new.example.test');
    assert.deepEqual([two.status, two.cn], [200, 'new.example.test']);
  } finally {
    await e2e.close();
  }
});
