// Two gateways sharing an etcd prefix: a write through one node reaches the other as a watch event
// applied one object at a time — the other node compiles the object that changed and nothing else
// (its build counters on /metrics), and answers with the change.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { buildCounters } from './helpers/build-counters';
import { bootNodes, startEtcd, type EtcdServer } from './helpers/etcd';
import { eventually, startUpstream, type TestGateway, type Upstream } from './helpers/harness';

const ADMIN_KEY = 'planted-incr-etcd-admin-key';
const CONSUMERS = 2000;
let etcd: EtcdServer;
let upstream: Upstream;
let a: TestGateway;
let b: TestGateway;

before(async () => {
  etcd = await startEtcd();
  upstream = await startUpstream();
  const routes = [{ id: 'auth', uri: '/auth', plugins: { 'key-auth': {} }, upstream: { nodes: { [upstream.node]: 1 } } }];
  const consumers = Array.from({ length: CONSUMERS }, (_, i) => ({ username: `c-${i}`, plugins: { 'key-auth': { key: `planted-incr-etcd-${i}` } } }));
  // both nodes seed nothing twice (the first one seeds the prefix)
  [a, b] = await bootNodes({ admin: { key: ADMIN_KEY }, config_store: { type: 'etcd', endpoints: [etcd.endpoint], prefix: '/gh-incremental' }, routes, consumers });
});

after(async () => {
  await a?.close();
  await b?.close();
  await upstream?.close();
  await etcd?.close();
});

const counters = (g: TestGateway) => buildCounters(`http://127.0.0.1:${g.gw.adminAddress!.port}`);

async function write(g: TestGateway, method: string, path: string, body?: unknown): Promise<number> {
  const r = await request(`http://127.0.0.1:${g.gw.adminAddress!.port}/apisix/admin/${path}`, { method: method as 'PUT', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  await r.body.text();
  return r.statusCode;
}

const withKey = async (g: TestGateway, k: string) => (await g.request('/auth', { headers: { apikey: k } })).status;

test("a consumer written on one node is applied on the other as that one consumer's change", async () => {
  const before = await counters(b);
  assert.equal(await write(a, 'PUT', 'consumers', { username: 'fresh', plugins: { 'key-auth': { key: 'planted-incr-etcd-fresh' } } }), 201);
  await eventually('node B authenticates the new key', async () => (await withKey(b, 'planted-incr-etcd-fresh')) === 200, 10_000);
  const after = await counters(b);
  const grew = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
  assert.equal(grew('snapshot_builds_total{kind="incremental"}'), 1);
  assert.equal(grew('snapshot_builds_total{kind="full"}'), 0);
  assert.equal(grew('build_compiled_total{kind="consumer"}'), 1);
  assert.equal(grew('build_compiled_total{kind="route"}'), 0);
  assert.equal(grew('consumer_index_builds_total{plugin="key-auth",how="updated"}'), 1);
  assert.equal(await withKey(b, 'planted-incr-etcd-7'), 200);
});

test('a deletion and a route written on one node are applied on the other one object at a time', async () => {
  const before = await counters(b);
  assert.equal(await write(a, 'DELETE', 'consumers/c-3'), 200);
  await eventually('node B refuses the deleted key', async () => (await withKey(b, 'planted-incr-etcd-3')) === 401, 10_000);
  assert.equal(await write(a, 'PUT', 'routes/extra', { uri: '/extra', upstream: { nodes: { [upstream.node]: 1 } } }), 201);
  await eventually('node B serves the new route', async () => (await b.request('/extra')).status === 200, 10_000);
  const after = await counters(b);
  const grew = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
  assert.equal(grew('snapshot_builds_total{kind="full"}'), 0);
  assert.equal(grew('snapshot_builds_total{kind="incremental"}'), 2);
  assert.equal(grew('build_compiled_total{kind="consumer"}'), 0);
  assert.equal(grew('build_compiled_total{kind="route"}'), 1);
  assert.equal(await withKey(b, 'planted-incr-etcd-4'), 200);
});
