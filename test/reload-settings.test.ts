// Gateway settings across a reload: `gateway.access_log` applies from the next request; a setting
// read only at start (the listeners, the process model, the store, the logger) keeps its value
// and the reload logs one warning naming it, without the value of a section that may hold a secret.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { bootGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness';
import { MemoryConfigStore } from '../core/stores/file-store';

let up: Upstream;
before(async () => {
  up = await startUpstream();
});
after(() => up.close());

const route = () => ({ id: 'r', uri: '/r/*', upstream: { nodes: { [up.node]: 1 } } });

/** A gateway on a memory store that reloads when told to (no watcher). */
async function boot(doc: Record<string, unknown>): Promise<{ g: TestGateway; store: MemoryConfigStore }> {
  const store = new MemoryConfigStore(doc);
  const g = await bootGateway({}, { store, watch: false });
  return { g, store };
}

async function get(g: TestGateway, path: string): Promise<number> {
  const res = await request(`${g.url}${path}`);
  await res.body.text();
  return res.statusCode;
}

const restartWarnings = (g: TestGateway) => g.logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.endsWith('takes effect at the next restart'));

test('a reload that switches gateway.access_log off and on again applies it from the next request', async (t) => {
  const { g, store } = await boot({ gateway: { access_log: true }, routes: [route()] });
  t.after(() => g.close());
  const reloadWith = async (accessLog: boolean) => {
    store.set({ gateway: { access_log: accessLog }, routes: [route()] });
    assert.equal((await g.gw.reload()).ok, true);
  };
  assert.equal(await get(g, '/r/1'), 200);
  await reloadWith(false);
  assert.equal(await get(g, '/r/2'), 200);
  await reloadWith(true);
  assert.equal(await get(g, '/r/3'), 200);
  await g.close();
  const paths = g.logs.lines.filter((l) => l.type === 'access').map((l) => l.path);
  assert.deepEqual(paths, ['/r/1', '/r/3']);
  assert.deepEqual(restartWarnings(g), [], 'access_log is no restart-only setting');
});

test('a reload that changes settings read only at start logs one warning for each, naming it', async (t) => {
  const doc = (headerTimeout: number, storeTimeout: number, routes: unknown[]) => ({ gateway: { client_header_timeout: headerTimeout }, config_store: { timeout: storeTimeout }, routes });
  const { g, store } = await boot(doc(60, 5, []));
  t.after(() => g.close());
  assert.equal(await get(g, '/r/1'), 404);
  store.set(doc(30, 6, [route()]));
  assert.equal((await g.gw.reload()).ok, true);
  assert.equal(await get(g, '/r/1'), 200, 'the rest of the config applies');
  const warned = restartWarnings(g);
  assert.deepEqual(
    warned.map((l) => [l.setting, l.msg]),
    [
      ['gateway.client_header_timeout', 'gateway.client_header_timeout changed: takes effect at the next restart'],
      ['config_store', 'config_store changed: takes effect at the next restart'],
    ],
  );
  assert.equal(warned[0].value, 30);
  // the store's section may hold an encryption key or a password: never its value
  assert.equal('value' in warned[1], false);
  // a reload that changes none of them warns about none
  store.set(doc(30, 6, []));
  assert.equal((await g.gw.reload()).ok, true);
  assert.equal(restartWarnings(g).length, 2);
});
