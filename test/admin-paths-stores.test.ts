// The Admin API path by path (docs/admin-api.md), where the data lives: a readonly store refuses
// every write with 403 and changes nothing; writes through a real `gatehouse start` survive
// SIGTERM and a restart; no answer in the whole file carries a planted secret (every plaintext
// secret written here contains MARK; the last test scans every answer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, refusedPort, startGatehouse, tempDir, waitForPort, type GatehouseProcess } from './helpers/harness';
import type { Reply } from './helpers/admin-client';
import { Admin, ADMIN_KEY, adminPathsFixture, answer, hit, planted, PREFIXES, refuse, RO_KEY, scanAnswers, servedBy, stateOf, vaultKey, withKey, type Refusal } from './helpers/admin-paths';

const fx = adminPathsFixture({ main: false });

// ---------------------------------------------------------------------------------------------
// 1. config_store.readonly: every write method on every kind is 403, and nothing changes

function readonlyConfig(): Record<string, unknown> {
  return fx.config('ro', RO_KEY, {
    config_store: { readonly: true },
    upstreams: [{ id: 'rou-free', nodes: { [fx.B.node]: 1 } }],
    secrets: [{ id: 'vault/ros-free', ...fx.vaultResource('apisix') }],
  });
}

function readonlyWrites(deadVault: string): Refusal[] {
  const ro = (name: string, method: string, path: string, body?: unknown): Refusal => ({ name, method, path, body, status: 403, msg: /config_store\.readonly is set/ });
  return [
    ro('PUT replacing a route', 'PUT', 'routes/ro', { uri: '/ro', plugins: { mocking: { response_example: 'changed' } } }),
    ro('PUT creating a route', 'PUT', 'routes/ro-new', { uri: '/ro-new', plugins: { mocking: { response_example: 'new' } } }),
    ro('POST creating a route (generated id)', 'POST', 'routes', { uri: '/ro-posted', plugins: { mocking: { response_example: 'posted' } } }),
    { name: 'POST on a route id', method: 'POST', path: 'routes/ro', body: { uri: '/ro', plugins: { mocking: { response_example: 'posted' } } }, status: 405, msg: 'POST creates with a generated id: use PUT to write a given id' },
    ro('PATCH of a route', 'PATCH', 'routes/ro', { plugins: { mocking: { response_example: 'patched' } } }),
    ro('DELETE of a route', 'DELETE', 'routes/ro'),
    ro('PUT replacing an upstream', 'PUT', 'upstreams/rou', { nodes: { [fx.B.node]: 1 } }),
    ro('PUT creating an upstream', 'PUT', 'upstreams/rou-new', { nodes: { [fx.B.node]: 1 } }),
    ro('PATCH of an upstream', 'PATCH', 'upstreams/rou', { nodes: { [fx.A.node]: null, [fx.B.node]: 1 } }),
    ro('DELETE of an upstream', 'DELETE', 'upstreams/rou-free'),
    ro('PUT replacing a consumer', 'PUT', 'consumers/roc', { plugins: { 'key-auth': { key: planted('ro-key-2') } } }),
    ro('PUT creating a consumer (username from the body)', 'PUT', 'consumers', { username: 'ro-new', plugins: { 'key-auth': { key: planted('ro-key-new') } } }),
    ro('PATCH of a consumer', 'PATCH', 'consumers/roc', { plugins: { 'key-auth': { key: planted('ro-key-3') } } }),
    ro('DELETE of a consumer', 'DELETE', 'consumers/roc'),
    ro('PUT creating a secret resource', 'PUT', 'secrets/vault/ros-new', fx.vaultResource('apisix')),
    ro('PATCH of a secret resource', 'PATCH', 'secrets/vault/ros', { timeout: 3 }),
    ro('DELETE of a secret resource', 'DELETE', 'secrets/vault/ros-free'),
    // the refused config's backend (a Vault that refuses connections) must not replace the live
    // one: the refresh of vault/ros after it still succeeds
    ro('PUT moving a secret resource to another Vault', 'PUT', 'secrets/vault/ros', { ...fx.vaultResource('apisix', '******'), uri: deadVault }),
  ];
}

for (const p of PREFIXES) {
  test(`${p}: with config_store.readonly every write method on every kind is 403 and changes nothing`, async (t) => {
    const { gateway: g, rig, dir } = await fx.boot('gitops.yaml', readonlyConfig(), 'vault/ros', (url) => ({
      'GET /ro': () => answer(url, '/ro'),
      'GET /ro-new': () => hit(url, '/ro-new').then((h) => h.status),
      'GET /ro-up (upstream rou)': () => servedBy(url, '/ro-up'),
      'ro-ka with the key of roc': () => withKey(url, '/ro-ka', RO_KEY),
      'ro-ka with the Vault key of rov': () => withKey(url, '/ro-ka', vaultKey('apisix', 'ro')),
      'ro-ka with a refused key': () => withKey(url, '/ro-ka', planted('ro-key-2')),
    }));
    t.after(() => g.close());
    const initial = await stateOf(rig);
    assert.deepEqual(initial.plane, {
      'GET /ro': '200 ro',
      'GET /ro-new': 404,
      'GET /ro-up (upstream rou)': 'A',
      'ro-ka with the key of roc': 200,
      'ro-ka with the Vault key of rov': 200,
      'ro-ka with a refused key': 401,
    });
    assert.deepEqual(initial.refresh, { key: '/apisix/secrets/vault/ros', refreshed: 1, failed: 0, published: true });
    const dead = `http://127.0.0.1:${await refusedPort()}`;
    for (const c of readonlyWrites(dead)) await t.test(`${c.method} ${p}${c.path}: ${c.name}`, () => refuse(rig, p, c));
    assert.deepEqual(readdirSync(dir), ['gitops.yaml'], 'no data file is written');
  });
}

// ---------------------------------------------------------------------------------------------
// 2. persistence through the CLI: `gatehouse start -c <file>`, Admin writes, SIGTERM, start again

test('Admin writes to `gatehouse start -c <file>` survive SIGTERM and a restart (<name>.data.json is read on start)', { timeout: 60000 }, async (t) => {
  const dir = tempDir('gatehouse-admin-paths-cli-');
  fx.dirs.push(dir);
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = join(dir, 'edge.yaml');
  writeFileSync(file, `gateway:\n  listen: "127.0.0.1:${port}"\nadmin:\n  listen: "127.0.0.1:${adminPort}"\n  key: "${ADMIN_KEY}"\n`);
  const procs: GatehouseProcess[] = [];
  t.after(async () => {
    for (const proc of procs) await proc.kill();
  });
  const start = async () => {
    const proc = await startGatehouse(file, port);
    procs.push(proc);
    await waitForPort(adminPort, 10000);
    return proc;
  };
  const stop = async (proc: GatehouseProcess) => {
    proc.child.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null }, proc.stderr());
  };
  const admin = new Admin(`http://127.0.0.1:${adminPort}`);
  const url = `http://127.0.0.1:${port}`;
  const cliKey = planted('cli-key');
  const ok = (r: Reply, status: number) => assert.equal(r.status, status, r.text);

  const first = await start();
  ok(await admin.call('PUT', '/admin/upstreams/pu', { body: { nodes: { [fx.B.node]: 1 } } }), 201);
  ok(await admin.call('PUT', '/apisix/admin/routes/p-up', { body: { uri: '/p-up', upstream_id: 'pu' } }), 201);
  ok(await admin.call('PUT', '/admin/routes/p', { body: { uri: '/p', plugins: { mocking: { response_example: 'persisted' } } } }), 201);
  ok(await admin.call('PATCH', '/apisix/admin/routes/p', { body: { plugins: { mocking: { response_example: 'persisted and patched' } } } }), 200);
  ok(await admin.call('PUT', '/admin/routes/p-ka', { body: { uri: '/p-ka', plugins: { 'key-auth': {}, mocking: { response_example: 'p-ka' } } } }), 201);
  ok(await admin.call('PUT', '/apisix/admin/secrets/vault/ps', { body: fx.vaultResource('apisix') }), 201);
  ok(await admin.call('PUT', '/apisix/admin/consumers', { body: { username: 'pc', plugins: { 'key-auth': { key: cliKey } } } }), 201);
  ok(await admin.call('PUT', '/admin/consumers/pv', { body: { plugins: { 'key-auth': { key: '$secret://vault/ps/cli/auth-key' } } } }), 201);
  ok(await admin.call('PUT', '/admin/routes/gone', { body: { uri: '/gone', plugins: { mocking: { response_example: 'gone' } } } }), 201);
  ok(await admin.call('DELETE', '/admin/routes/gone'), 200);

  const served = async () => ({
    '/p': await answer(url, '/p'),
    '/p-up': await servedBy(url, '/p-up'),
    '/p-ka literal key': await withKey(url, '/p-ka', cliKey),
    '/p-ka Vault key': await withKey(url, '/p-ka', vaultKey('apisix', 'cli')),
    '/p-ka no key': await withKey(url, '/p-ka'),
    '/gone': (await hit(url, '/gone')).status,
  });
  const expected = { '/p': '200 persisted and patched', '/p-up': 'B', '/p-ka literal key': 200, '/p-ka Vault key': 200, '/p-ka no key': 401, '/gone': 404 };
  assert.deepEqual(await served(), expected, 'live before the restart');
  const lists = await admin.lists();
  await stop(first);

  const dataFile = join(dir, 'edge.data.json');
  assert.ok(existsSync(dataFile), 'the writes went to <name>.data.json beside the config');
  assert.equal(statSync(dataFile).mode & 0o777, 0o600);

  const second = await start();
  assert.deepEqual(await served(), expected, 'served again after the restart, from the data file');
  assert.deepEqual(await admin.lists(), lists, 'the Admin API shows the same resources after the restart');
  await stop(second);
});

// ---------------------------------------------------------------------------------------------
// redaction over the whole file

scanAnswers({ answers: 100, masked: 20 });
