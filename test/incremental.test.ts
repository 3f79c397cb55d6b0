// A change costs what it changes: an Admin API write of one consumer, route or upstream, a secret
// that rotates, and the end of a rotation grace each compile that object alone (the build counters
// on /metrics say what every build compiled), while requests in flight finish on the snapshot they
// started with and everything else keeps answering as before.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { request } from 'undici';
import { memProvider } from './helpers/mem-provider';
import { bootGateway, eventually, startUpstream, type TestGateway, type Upstream } from './helpers/harness';
import { listenOnLoopback, plantSecret } from '../core/testing';
import { sectionOf } from '../core/config/section';
import { buildCounters } from './helpers/build-counters';

const CONSUMERS = 3000;
const ROUTES = 300;
const ADMIN_KEY = 'planted-incremental-admin-key';

// a provider whose values the test changes (a rotation), read on every refresh
const values = new Map<string, string>([['vip/key', 'planted-vip-key-1']]);
const mem = memProvider(values);

let a: Upstream;
let b: Upstream;
let g: TestGateway;
let admin: string;
/** The slow upstream's responses waiting to be sent. */
const held: ServerResponse[] = [];
let slow: { node: string; close(): Promise<void> };

const key = (i: number) => `planted-incr-key-${i}`;

before(async () => {
  plantSecret('incremental', ADMIN_KEY, 'planted-vip-key-1', 'planted-vip-key-2');
  a = await startUpstream(undefined, 'A');
  b = await startUpstream(undefined, 'B');
  const server = createServer((_req, res) => void held.push(res));
  const addr = await listenOnLoopback(server);
  slow = {
    node: addr.node,
    close: () =>
      new Promise<void>((r) => {
        for (const res of held) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  process.env.GH_INCR_ADMIN_KEY = ADMIN_KEY;
  const consumers: unknown[] = Array.from({ length: CONSUMERS }, (_, i) => ({ username: `c-${i}`, plugins: { 'key-auth': { key: key(i) } } }));
  consumers.push({ username: 'vip', plugins: { 'key-auth': { key: '$secret://mem/main/vip/key' } } });
  const routes: unknown[] = Array.from({ length: ROUTES }, (_, i) => ({ id: `r-${i}`, uri: `/r/${i}`, upstream_id: 'up' }));
  routes.push({ id: 'auth', uri: '/auth', plugins: { 'key-auth': {} }, upstream_id: 'up' });
  routes.push({ id: 'slow', uri: '/slow', upstream_id: 'slow' });
  g = await bootGateway(
    {
      admin: { key: '$env://GH_INCR_ADMIN_KEY' },
      secret_cache: { rotation_grace: 3 },
      secrets: [{ id: 'mem/main' }],
      upstreams: [
        { id: 'up', nodes: { [a.node]: 1 } },
        { id: 'slow', nodes: { [slow.node]: 1 } },
      ],
      routes,
      consumers,
    },
    { extensions: [mem], adminListen: '127.0.0.1:0' },
  );
  admin = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
});

after(async () => {
  await g?.close();
  await a?.close();
  await b?.close();
  await slow?.close();
});

async function write(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await request(`${admin}/apisix/admin/${path}`, { method: method as 'PUT', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.body.text();
  return { status: r.statusCode, json: text ? JSON.parse(text) : undefined };
}

/** The build counters from /metrics: `name{labels}` → value. */
const counters = () => buildCounters(admin);

/** What each counter grew by while `fn` ran. */
async function delta(fn: () => Promise<void>): Promise<Record<string, number>> {
  const before = await counters();
  await fn();
  const after = await counters();
  const d: Record<string, number> = {};
  for (const [k, v] of after) if (v !== (before.get(k) ?? 0)) d[k] = v - (before.get(k) ?? 0);
  return d;
}

const INCREMENTAL = 'snapshot_builds_total{kind="incremental"}';
const compiled = (kind: string) => `build_compiled_total{kind="${kind}"}`;
const INDEX_UPDATED = 'consumer_index_builds_total{plugin="key-auth",how="updated"}';
const ROUTER_UPDATED = 'router_builds_total{how="updated"}';

const withKey = async (k: string) => (await g.request('/auth', { headers: { apikey: k } })).status;

test('the gateway starts with one full build of every object', async () => {
  const c = await counters();
  assert.equal(c.get('snapshot_builds_total{kind="full"}'), 1);
  assert.equal(c.get(compiled('consumer')), CONSUMERS + 1);
  assert.equal(c.get(compiled('route')), ROUTES + 2);
  assert.equal(await withKey(key(7)), 200);
});

test('a new consumer compiles that consumer alone and updates the key-auth index by one entry', async () => {
  const d = await delta(async () => assert.equal((await write('PUT', 'consumers', { username: 'new-1', plugins: { 'key-auth': { key: 'planted-incr-new-1' } } })).status, 201));
  assert.deepEqual(d, { [INCREMENTAL]: 1, [compiled('consumer')]: 1, [INDEX_UPDATED]: 1 });
  assert.equal(await withKey('planted-incr-new-1'), 200);
  assert.equal(await withKey(key(CONSUMERS - 1)), 200);
});

test("a consumer's new key replaces its old one, and a deleted consumer's key stops working, each compiling nothing else", async () => {
  const d = await delta(async () => assert.equal((await write('PUT', 'consumers/c-5', { plugins: { 'key-auth': { key: 'planted-incr-c5-new' } } })).status, 200));
  assert.deepEqual(d, { [INCREMENTAL]: 1, [compiled('consumer')]: 1, [INDEX_UPDATED]: 1 });
  assert.equal(await withKey(key(5)), 401);
  assert.equal(await withKey('planted-incr-c5-new'), 200);
  const e = await delta(async () => assert.equal((await write('DELETE', 'consumers/c-6')).status, 200));
  assert.deepEqual(e, { [INCREMENTAL]: 1, [INDEX_UPDATED]: 1 });
  assert.equal(await withKey(key(6)), 401);
  assert.equal(await withKey(key(8)), 200);
});

test('a route write compiles that route alone and updates the router', async () => {
  const d = await delta(async () => assert.equal((await write('PUT', 'routes/new-r', { uri: '/new-r', upstream_id: 'up' })).status, 201));
  assert.deepEqual(d, { [INCREMENTAL]: 1, [compiled('route')]: 1, [ROUTER_UPDATED]: 1 });
  assert.equal((await g.request('/new-r')).status, 200);
  const e = await delta(async () => assert.equal((await write('PATCH', 'routes/r-3', { uri: '/r3-moved' })).status, 200));
  assert.deepEqual(e, { [INCREMENTAL]: 1, [compiled('route')]: 1, [ROUTER_UPDATED]: 1 });
  assert.equal((await g.request('/r/3')).status, 404);
  assert.equal((await g.request('/r3-moved')).status, 200);
  assert.equal((await g.request('/r/4')).status, 200);
});

test('an upstream write compiles that upstream alone: every route using it follows, none is compiled again', async () => {
  const served = async () => (await g.request('/r/9')).body;
  const before = await served();
  const d = await delta(async () => assert.equal((await write('PUT', 'upstreams/up', { nodes: { [b.node]: 1 } })).status, 200));
  assert.deepEqual(d, { [INCREMENTAL]: 1, [compiled('upstream')]: 1 });
  assert.notEqual(await served(), before);
  assert.match(await served(), /B/);
});

test('a write never makes the config\'s changed sections arrays: the answer, the validation and the build read them item by item', async () => {
  // (a 100,000-consumer list made an array per write was 40 MB/s of garbage in the Admin bench)
  assert.equal((await write('PUT', 'consumers/sections-1', { plugins: { 'key-auth': { key: 'planted-incr-sections-1' } } })).status, 201);
  assert.equal((await write('PUT', 'routes/sections-r', { uri: '/sections-r', upstream_id: 'up' })).status, 201);
  assert.equal((await write('PATCH', 'consumers/sections-1', { desc: 'patched' })).json.value.desc, 'patched');
  assert.equal((await write('PUT', 'upstreams/up', { nodes: { [a.node]: 1 } })).status, 200);
  const config = g.gw.config;
  for (const kind of ['consumers', 'routes', 'upstreams'] as const) assert.equal(sectionOf(config, kind).isArray, false, kind);
  assert.equal(await withKey('planted-incr-sections-1'), 200);
  assert.equal((await g.request('/sections-r')).status, 200);
  // a reader of the list still gets the whole list, once
  assert.equal(config.consumers.length, CONSUMERS + 2);
  assert.equal(config.consumers, config.consumers);
  assert.equal(sectionOf(config, 'consumers').isArray, true);
});

test('a request in flight finishes on the snapshot it started with (its upstream), while new requests use the new one', async () => {
  const pending = g.request('/slow');
  await eventually('the request reached the slow upstream', () => held.length === 1, 5000);
  assert.equal((await write('PUT', 'upstreams/slow', { nodes: { [a.node]: 1 } })).status, 200);
  const now = await g.request('/slow');
  assert.equal(now.status, 200);
  assert.match(now.body, /A/);
  held[0].end('from-the-old-snapshot');
  const old = await pending;
  assert.equal(old.status, 200);
  assert.equal(old.body, 'from-the-old-snapshot');
});

test('a refused change installs nothing: the live snapshot keeps serving', async () => {
  const generation = g.gw.snapshot.generation;
  const r = await write('PUT', 'consumers', { username: 'dup', plugins: { 'key-auth': { key: key(11) } } });
  assert.equal(r.status, 400);
  assert.match(r.json.error_msg, /same key/);
  assert.equal(g.gw.snapshot.generation, generation);
  assert.equal(await withKey(key(11)), 200);
  const bad = await write('PUT', 'routes/bad', { uri: '/bad', upstream_id: 'nope' });
  assert.equal(bad.status, 400);
  assert.equal(g.gw.snapshot.generation, generation);
});

test('a rotated secret recompiles the one consumer that uses it; its old value works for the grace, then stops', async () => {
  assert.equal(await withKey('planted-vip-key-1'), 200);
  values.set('vip/key', 'planted-vip-key-2');
  const before = await counters();
  const r = await request(`${admin}/apisix/admin/secrets/mem/main/refresh`, { method: 'POST', headers: { 'x-api-key': ADMIN_KEY } });
  assert.equal(r.statusCode, 200);
  await r.body.text();
  await eventually('the new key works', async () => (await withKey('planted-vip-key-2')) === 200, 5000);
  const rotated = await counters();
  const grew = (now: Map<string, number>, k: string) => (now.get(k) ?? 0) - (before.get(k) ?? 0);
  // the rotation: one consumer compiled, one index update (the grace entry with the new one)
  assert.equal(grew(rotated, INCREMENTAL), 1);
  assert.equal(grew(rotated, compiled('consumer')), 1);
  assert.equal(grew(rotated, INDEX_UPDATED), 1);
  // the grace (3 s): the old key still works, then its end recompiles that consumer alone
  assert.equal(await withKey('planted-vip-key-1'), 200);
  await eventually('the old key stops', async () => (await withKey('planted-vip-key-1')) === 401, 10_000);
  await eventually('the grace end is counted', async () => grew(await counters(), INCREMENTAL) === 2, 5000);
  const ended = await counters();
  const all = new Set([...before.keys(), ...ended.keys()]);
  const d: Record<string, number> = {};
  for (const k of all) if (grew(ended, k) !== 0) d[k] = grew(ended, k);
  assert.deepEqual(d, { [INCREMENTAL]: 2, [compiled('consumer')]: 2, [INDEX_UPDATED]: 2 });
  assert.equal(await withKey('planted-vip-key-2'), 200);
});

test('an edit of the config file that changes one consumer and one route is applied as that difference', async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-incr-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'gatehouse.yaml');
  const doc = (second: string, uri: string) => ({
    admin: { key: '$env://GH_INCR_ADMIN_KEY' },
    upstreams: [{ id: 'up', nodes: { [a.node]: 1 } }],
    routes: [
      { id: 'auth', uri: '/auth', plugins: { 'key-auth': {} }, upstream_id: 'up' },
      { id: 'moving', uri, upstream_id: 'up' },
      ...Array.from({ length: 50 }, (_, i) => ({ id: `f-${i}`, uri: `/f/${i}`, upstream_id: 'up' })),
    ],
    consumers: [
      ...Array.from({ length: 500 }, (_, i) => ({ username: `f-${i}`, plugins: { 'key-auth': { key: key(10_000 + i) } } })),
      { username: 'second', plugins: { 'key-auth': { key: second } } },
    ],
  });
  writeFileSync(path, JSON.stringify(doc('planted-incr-file-1', '/before')));
  const f = await bootGateway({}, { configPath: path, config: undefined, adminListen: '127.0.0.1:0' } as never);
  t.after(() => f.close());
  const url = `http://127.0.0.1:${f.gw.adminAddress!.port}`;
  const read = () => buildCounters(url);
  const before = await read();
  writeFileSync(path, JSON.stringify(doc('planted-incr-file-2', '/after')));
  await eventually('the edit is live', async () => (await f.request('/after')).status === 200, 10_000);
  assert.equal((await f.request('/auth', { headers: { apikey: 'planted-incr-file-2' } })).status, 200);
  assert.equal((await f.request('/auth', { headers: { apikey: 'planted-incr-file-1' } })).status, 401);
  assert.equal((await f.request('/before')).status, 404);
  const after = await read();
  const grew = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
  assert.equal(grew(INCREMENTAL), 1);
  assert.equal(grew('snapshot_builds_total{kind="full"}'), 0);
  assert.equal(grew(compiled('consumer')), 1);
  assert.equal(grew(compiled('route')), 1);
  assert.equal(grew(INDEX_UPDATED), 1);
});
