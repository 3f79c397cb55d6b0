// SSL resources in etcd (docs/tls.md): written through one node's Admin API, stored under
// <prefix>/ssls/<id> with the keys encrypted (config_store.encryption_key), and in the other node's
// TLS table through the watch; both answer the keys as "******". An upstream's TLS client key
// (`tls.client_key`) likewise.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { bootNodes, startEtcd, type EtcdServer } from './helpers/etcd';
import { pemBody } from './helpers/tls-pki';
import { eventually, type TestGateway } from './helpers/harness';
import { plantCanary } from './helpers/leak-tap';
import { makeSslPki, type SslPair } from './helpers/ssl-pki';

const ADMIN_KEY = 'planted-ssl-etcd-admin-key';
const ENC_ENV = 'GH_SSL_ETCD_ENC_KEY';
const PREFIX = '/gh-ssl';

let etcd: EtcdServer;
let a: TestGateway;
let b: TestGateway;
let pair: SslPair;
let rsa: SslPair;

before(async () => {
  const encryptionKey = randomBytes(32).toString('hex');
  plantCanary('ssl etcd test secrets', ADMIN_KEY, encryptionKey);
  process.env[ENC_ENV] = encryptionKey;
  const pki = makeSslPki();
  pair = pki.leaf(['etcd.ssl.test']);
  rsa = pki.leaf(['etcd.ssl.test'], 'rsa');
  etcd = await startEtcd();
  [a, b] = await bootNodes({ admin: { key: ADMIN_KEY }, config_store: { type: 'etcd', endpoints: [etcd.endpoint], prefix: PREFIX, encryption_key: `$env://${ENC_ENV}` } });
});

after(async () => {
  await a?.close();
  await b?.close();
  await etcd?.close();
  delete process.env[ENC_ENV];
});

async function call(g: TestGateway, method: string, path: string, body?: unknown): Promise<{ status: number; text: string; json: any }> {
  const r = await request(`http://127.0.0.1:${g.gw.adminAddress!.port}${path}`, { method: method as 'PUT', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.body.text();
  return { status: r.statusCode, text, json: text ? JSON.parse(text) : undefined };
}

test('an SSL resource written on one node is stored with its keys encrypted and served by the other node; "******" keeps the key through etcd', { timeout: 60000 }, async () => {
  const put = await call(a, 'PUT', '/apisix/admin/ssls/e1', { ...pair, certs: [rsa.cert], keys: [rsa.key], snis: ['etcd.ssl.test'] });
  assert.equal(put.status, 201, put.text);
  const client = etcd.client();
  try {
    const raw = await client.get(`${PREFIX}/ssls/e1`).string();
    assert.ok(raw !== null, 'stored under <prefix>/ssls/<id>');
    for (const k of [pair.key, rsa.key]) assert.ok(!raw.includes(pemBody(k).slice(0, 40)), 'no key in etcd in the clear');
    const stored = JSON.parse(raw);
    assert.equal(stored.cert, pair.cert);
    assert.ok(stored.key.startsWith('$enc:') && stored.keys[0].startsWith('$enc:'));
  } finally {
    client.close();
  }
  await eventually('the other node serves it', async () => b.gw.snapshot.tls.select('etcd.ssl.test')?.sslId === 'e1', 10000);
  assert.ok(b.gw.snapshot.config.ssls[0].key === pair.key, 'decrypted on the other node');
  const got = await call(b, 'GET', '/admin/ssls/e1');
  assert.deepEqual([got.json.value.key, got.json.value.keys], ['******', ['******']]);
  const back = await call(b, 'PUT', '/admin/ssls/e1', { ...got.json.value, desc: 'via b' });
  assert.equal(back.status, 200, back.text);
  await eventually('a sees the change', async () => a.gw.snapshot.config.ssls[0]?.desc === 'via b', 10000);
  assert.ok(a.gw.snapshot.config.ssls[0].key === pair.key && a.gw.snapshot.config.ssls[0].keys![0] === rsa.key, '"******" kept both keys');
  assert.equal(a.gw.snapshot.tls.select('etcd.ssl.test')?.sslId, 'e1');
});

test("an upstream's tls.client_key written on one node is stored encrypted and reaches the other node decrypted; \"******\" keeps it through etcd", { timeout: 60000 }, async () => {
  const client = makeSslPki().leaf(['etcd-client.ssl.test']);
  const up = { scheme: 'https', nodes: { '127.0.0.1:1': 1 }, tls: { client_cert: client.cert, client_key: client.key } };
  const put = await call(a, 'PUT', '/apisix/admin/upstreams/mtls', up);
  assert.equal(put.status, 201, put.text);
  assert.equal(put.json.value.tls.client_key, '******');
  const etcdClient = etcd.client();
  try {
    const raw = await etcdClient.get(`${PREFIX}/upstreams/mtls`).string();
    assert.ok(raw !== null, 'stored under <prefix>/upstreams/<id>');
    assert.ok(!raw.includes(pemBody(client.key).slice(0, 40)), 'no key in etcd in the clear');
    const stored = JSON.parse(raw);
    assert.ok(stored.tls.client_key.startsWith('$enc:'));
    assert.equal(stored.tls.client_cert, client.cert);
  } finally {
    etcdClient.close();
  }
  const onB = () => b.gw.snapshot.config.upstreams.find((u) => u.id === 'mtls');
  await eventually('the other node has it', async () => onB() !== undefined, 10000);
  assert.ok(onB()!.tls?.client_key === client.key, 'decrypted on the other node');
  const got = await call(b, 'GET', '/admin/upstreams/mtls');
  assert.equal(got.json.value.tls.client_key, '******');
  const back = await call(b, 'PUT', '/admin/upstreams/mtls', { ...got.json.value, desc: 'via b' });
  assert.equal(back.status, 200, back.text);
  const onA = () => a.gw.snapshot.config.upstreams.find((u) => u.id === 'mtls');
  await eventually('a sees the change', async () => (onA() as { desc?: string } | undefined)?.desc === 'via b', 10000);
  assert.ok(onA()!.tls?.client_key === client.key, '"******" kept the key');
});
