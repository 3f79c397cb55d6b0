// The Admin API path by path (docs/admin-api.md), on both prefixes (/admin/ and
// /apisix/admin/) and for every resource kind (routes, upstreams, consumers, secrets/{manager}/{id}):
// - PUT creates (201) and replaces (200), GET, list, PATCH (RFC 7386 merge: null deletes) and
//   DELETE answer APISIX envelopes, and each write is live on the data plane when it is answered;
// - every refused call answers its exact status and an error_msg saying what is wrong, and leaves
//   the running config, the data plane and the secret backends as they were;
// - a readonly store refuses every write with 403; writes through a real `gatehouse start` survive
//   SIGTERM and a restart; "******" written back keeps the stored secret;
// - no answer in the whole file carries a planted secret (every plaintext secret written here
//   contains MARK; the last test scans every answer).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { bootGateway, freePort, refusedPort, startGatehouse, startUpstream, tempDir, waitForPort, type GatehouseProcess, type TestGateway, type Upstream } from './helpers/harness';
import { startVaultServer, type VaultServer } from './servers/vault';
import { adminCall, type Reply } from './helpers/admin-client';

// ---------------------------------------------------------------------------------------------
// planted secrets: every plaintext secret field written by this file contains MARK

const MARK = `planted${randomBytes(6).toString('hex')}`;
const planted = (what: string) => `${MARK}-${what}`;
const ADMIN_KEY = planted('admin-key');
const VAULT_TOKEN = `hvs.${planted('vault-token')}`;
/** The literal key-auth key of the fixture consumer `fxc`. */
const FX_KEY = planted('fx-key');
/** The literal key-auth key of the readonly gateway's consumer `roc`. */
const RO_KEY = planted('ro-key');
/** What the test Vault holds at `<mount>/<path>` under `auth-key` (KV v1 mounts apisix and apisix2). */
const vaultKey = (mount: 'apisix' | 'apisix2', path: string) => (mount === 'apisix2' && path === 'fx' ? FX_KEY : planted(`vault-${mount}-${path}`));
const VAULT_PATHS = ['jack-a', 'jack-x', 'fx', 'ro', 'cli'];

const PREFIXES = ['/admin/', '/apisix/admin/'] as const;
type Prefix = (typeof PREFIXES)[number];
/** A short tag per prefix, so that both prefixes use their own ids. */
const tagOf = (p: Prefix) => (p === '/admin/' ? 'a' : 'x');
type Kind = 'routes' | 'upstreams' | 'consumers' | 'secrets';
const KINDS: readonly Kind[] = ['routes', 'upstreams', 'consumers', 'secrets'];
const ONE: Record<Kind, string> = { routes: 'route', upstreams: 'upstream', consumers: 'consumer', secrets: 'secret' };
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Admin API client: records every answer for the final redaction scan

/** Every Admin API answer of this file, scanned for MARK by the last test. */
const answers: Array<{ call: string; text: string }> = [];

class Admin {
  constructor(readonly base: string) {}

  /** One call: `body` is sent as JSON, `raw` as is; `key: null` sends no X-API-KEY. */
  call(method: string, path: string, o: { body?: unknown; raw?: string; key?: string | null } = {}): Promise<Reply> {
    return adminCall(answers, this.base, method, path, { ...o, key: o.key === undefined ? ADMIN_KEY : o.key });
  }

  /** GET of every list. */
  async lists(prefix: Prefix = '/admin/'): Promise<Record<Kind, any>> {
    const out = {} as Record<Kind, any>;
    for (const kind of KINDS) {
      const r = await this.call('GET', `${prefix}${kind}`);
      assert.equal(r.status, 200, r.text);
      out[kind] = r.json;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// data plane probes

async function hit(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  const r = await request(`${base}${path}`, { headers });
  return { status: r.statusCode, text: await r.body.text(), headers: r.headers };
}

/** "<status> <body>" of a request. */
const answer = (base: string, path: string) => hit(base, path).then((h) => `${h.status} ${h.text}`);
/** Name of the echo upstream (A or B) that answered. */
const servedBy = (base: string, path: string) => hit(base, path).then((h) => (h.status === 200 ? (JSON.parse(h.text) as { name: string }).name : `status ${h.status}`));
/** Status of a request sending `key` in the key-auth header (none when undefined). */
const withKey = (base: string, path: string, key?: string) => hit(base, path, key === undefined ? {} : { apikey: key }).then((h) => h.status);

// ---------------------------------------------------------------------------------------------
// a gateway under test and its observable state

interface Rig {
  admin: Admin;
  url: string;
  /** Data plane requests whose answers must not change on a refused write. */
  probes: Record<string, () => Promise<unknown>>;
  /** A secret resource whose forced refresh must keep working (`vault/fxs`). */
  refresh: string;
}

/** Everything a refused write must leave as it was: the lists, the data plane, a secret refresh. */
async function stateOf(rig: Rig): Promise<Record<string, unknown>> {
  const plane: Record<string, unknown> = {};
  for (const [name, probe] of Object.entries(rig.probes)) plane[name] = await probe();
  const refreshed = await rig.admin.call('POST', `/admin/secrets/${rig.refresh}/refresh`);
  return { lists: await rig.admin.lists(), plane, refresh: refreshed.json };
}

/** Index of an item in the running config's list (error paths are `routes[3].uri`), or the next free one. */
type Ix = (kind: Kind, id?: string) => number;

/** A call that must be refused. `path` is relative to the prefix. */
interface Refusal {
  name: string;
  method: string;
  path: string;
  body?: unknown;
  raw?: string;
  key?: string | null;
  status: number;
  /** The exact error_msg, or a pattern it must match. */
  msg?: string | RegExp;
  /** The exact `errors` list (then error_msg must be its first entry). */
  errors?: (ix: Ix) => string[];
}

/** Send a refused call; check its answer, then that nothing it touched changed. */
async function refuse(rig: Rig, prefix: Prefix, c: Refusal): Promise<void> {
  const before = await stateOf(rig);
  const lists = before.lists as Record<Kind, { list: Array<{ key: string }> }>;
  const ix: Ix = (kind, id) => (id === undefined ? lists[kind].list.length : lists[kind].list.findIndex((i) => i.key === `/apisix/${kind}/${id}`));
  const r = await rig.admin.call(c.method, `${prefix}${c.path}`, { body: c.body, raw: c.raw, key: c.key });
  assert.equal(r.status, c.status, r.text);
  assert.equal(typeof r.json?.error_msg, 'string', `an error_msg: ${r.text}`);
  if (c.errors) {
    const errors = c.errors(ix);
    assert.deepEqual(r.json.errors, errors, r.text);
    assert.equal(r.json.error_msg, errors[0]);
  } else assert.equal(r.json.errors, undefined, r.text);
  if (typeof c.msg === 'string') assert.equal(r.json.error_msg, c.msg);
  else if (c.msg) assert.match(r.json.error_msg, c.msg);
  assert.deepEqual(await stateOf(rig), before, 'the running config, the data plane and the secret backends are unchanged');
}

/** A JSON route body of exactly `n` bytes. */
function routeOfSize(n: number): string {
  const head = '{"uri":"/big","desc":"';
  const tail = '"}';
  return head + 'x'.repeat(n - head.length - tail.length) + tail;
}

// ---------------------------------------------------------------------------------------------
// shared servers and the main gateway (file-configured, the default store)

let A: Upstream;
let B: Upstream;
let vault: VaultServer;
let mainDir: string;
let mainGw: TestGateway;
let main: Rig;
const dirs: string[] = [];

async function vaultCall(method: 'POST' | 'PUT', path: string, body: unknown): Promise<void> {
  const r = await request(`${vault.url}/v1/${path}`, { method, headers: { 'x-vault-token': VAULT_TOKEN, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.body.text();
  assert.ok(r.statusCode === 200 || r.statusCode === 204, `vault ${method} ${path}: ${r.statusCode} ${text}`);
}

/** A vault secret resource on the test Vault. */
const vaultResource = (prefix: 'apisix' | 'apisix2', token: string = VAULT_TOKEN, extra: Record<string, unknown> = {}) => ({ uri: vault.url, prefix, token, kv_version: 1, ...extra });

function mainConfig(): Record<string, unknown> {
  return {
    admin: { key: ADMIN_KEY },
    upstreams: [{ id: 'fxu', nodes: { [A.node]: 1 } }],
    routes: [
      { id: 'fx', uri: '/fx', plugins: { mocking: { response_example: 'fx' } } },
      { id: 'fx-up', uri: '/fx-up', upstream_id: 'fxu' },
      { id: 'fx-ka', uri: '/fx-ka', plugins: { 'key-auth': {}, mocking: { response_example: 'fx-ka' } } },
    ],
    consumers: [
      { username: 'fxc', plugins: { 'key-auth': { key: FX_KEY } } },
      { username: 'fxv', plugins: { 'key-auth': { key: '$secret://vault/fxs/fx/auth-key' } } },
      { username: 'fxn', desc: 'no plugins' },
    ],
    secrets: [{ id: 'vault/fxs', ...vaultResource('apisix') }],
  };
}

before(async () => {
  A = await startUpstream(undefined, 'A');
  B = await startUpstream(undefined, 'B');
  vault = await startVaultServer({ rootToken: VAULT_TOKEN });
  for (const mount of ['apisix', 'apisix2'] as const) {
    await vaultCall('POST', `sys/mounts/${mount}`, { type: 'kv', options: { version: '1' } });
    for (const p of VAULT_PATHS) await vaultCall('PUT', `${mount}/${p}`, { 'auth-key': vaultKey(mount, p) });
  }
  mainDir = tempDir('gatehouse-admin-paths-');
  dirs.push(mainDir);
  const file = join(mainDir, 'gatehouse.yaml');
  writeFileSync(file, JSON.stringify(mainConfig(), null, 2));
  mainGw = await bootGateway({}, { configPath: file, adminListen: '127.0.0.1:0' });
  const url = mainGw.url;
  main = {
    admin: new Admin(`http://127.0.0.1:${mainGw.gw.adminAddress!.port}`),
    url,
    refresh: 'vault/fxs',
    probes: {
      'GET /fx': () => answer(url, '/fx'),
      'GET /fx-up (upstream fxu)': () => servedBy(url, '/fx-up'),
      'fx-ka with the literal key of fxc': () => withKey(url, '/fx-ka', FX_KEY),
      'fx-ka with the Vault key of fxv': () => withKey(url, '/fx-ka', vaultKey('apisix', 'fx')),
      'fx-ka with the apisix2 value': () => withKey(url, '/fx-ka', vaultKey('apisix2', 'jack-a')),
      'fx-ka without a key': () => withKey(url, '/fx-ka'),
      'fx-ka with a wrong key': () => withKey(url, '/fx-ka', 'wrong'),
      'GET /nowhere': () => answer(url, '/nowhere'),
    },
  };
  // the fixture is what the data plane serves
  assert.deepEqual(await stateOf(main), {
    lists: await main.admin.lists(),
    plane: {
      'GET /fx': '200 fx',
      'GET /fx-up (upstream fxu)': 'A',
      'fx-ka with the literal key of fxc': 200,
      'fx-ka with the Vault key of fxv': 200,
      'fx-ka with the apisix2 value': 401,
      'fx-ka without a key': 401,
      'fx-ka with a wrong key': 401,
      'GET /nowhere': `404 ${(await hit(url, '/nowhere')).text}`,
    },
    refresh: { key: '/apisix/secrets/vault/fxs', refreshed: 1, failed: 0, published: true },
  });
});

after(async () => {
  await mainGw?.close();
  await A?.close();
  await B?.close();
  await vault?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// 1. the life of one resource of each kind: PUT create, PUT replace, GET, list, PATCH, DELETE

interface Ctx {
  /** "a" for /admin/, "x" for /apisix/admin/ */
  t: string;
  p: Prefix;
}

interface Lifecycle {
  kind: Kind;
  id(c: Ctx): string;
  create(c: Ctx): Record<string, unknown>;
  replace(c: Ctx): Record<string, unknown>;
  patch(c: Ctx): Record<string, unknown>;
  /** Checks of the `value` answered by each write (and then by GET). */
  created(v: any, c: Ctx): void;
  replaced(v: any, c: Ctx): void;
  patched(v: any, c: Ctx): void;
  /** Data plane checks right after each write's answer (no wait: writes are live when answered). */
  live: Record<'created' | 'replaced' | 'patched' | 'deleted', (c: Ctx) => Promise<void>>;
  /** Resources that make the kind observable on the data plane (a route on an upstream, a consumer on a secret). */
  afterCreate?(c: Ctx): Promise<void>;
  beforeDelete?(c: Ctx): Promise<void>;
}

const node = (u: Upstream, weight = 1) => ({ host: '127.0.0.1', port: u.port, weight });
const put = async (path: string, body: unknown, status: number) => {
  const r = await main.admin.call('PUT', path, { body });
  assert.equal(r.status, status, `PUT ${path}: ${r.text}`);
  return r;
};
const del = async (path: string) => {
  const r = await main.admin.call('DELETE', path);
  assert.equal(r.status, 200, `DELETE ${path}: ${r.text}`);
};
const consumerKey = (c: Ctx, n: number) => planted(`c-${c.t}-${n}`);

const LIFECYCLES: Lifecycle[] = [
  {
    kind: 'routes',
    id: (c) => `r-${c.t}`,
    create: (c) => ({ uri: `/r-${c.t}`, desc: 'first', plugins: { mocking: { response_example: `r-${c.t} v1` } } }),
    created(v, c) {
      assert.equal(v.id, `r-${c.t}`);
      assert.deepEqual(v.uris, [`/r-${c.t}`]);
      assert.equal(v.desc, 'first');
      assert.equal(v.plugins.mocking.response_example, `r-${c.t} v1`);
    },
    replace: (c) => ({ uri: `/r-${c.t}`, name: 'second', plugins: { mocking: { response_example: `r-${c.t} v2`, response_headers: { 'x-one': '1', 'x-two': '2' } } } }),
    replaced(v, c) {
      assert.equal('desc' in v, false, 'a PUT replaces the whole resource');
      assert.equal(v.name, 'second');
      assert.equal(v.plugins.mocking.response_example, `r-${c.t} v2`);
    },
    // RFC 7386: null deletes a field, at any depth; objects merge
    patch: (c) => ({ name: null, desc: 'patched', plugins: { mocking: { response_example: `r-${c.t} v3`, response_status: 202, response_headers: { 'x-one': null } } } }),
    patched(v, c) {
      assert.equal('name' in v, false);
      assert.equal(v.desc, 'patched');
      assert.deepEqual(v.uris, [`/r-${c.t}`], 'kept from the stored route');
      assert.equal(v.plugins.mocking.response_example, `r-${c.t} v3`);
      assert.equal(v.plugins.mocking.response_status, 202);
      assert.deepEqual(v.plugins.mocking.response_headers, { 'x-two': '2' });
    },
    live: {
      async created(c) {
        assert.equal(await answer(main.url, `/r-${c.t}`), `200 r-${c.t} v1`);
      },
      async replaced(c) {
        const h = await hit(main.url, `/r-${c.t}`);
        assert.deepEqual([h.status, h.text, h.headers['x-one'], h.headers['x-two']], [200, `r-${c.t} v2`, '1', '2']);
      },
      async patched(c) {
        const h = await hit(main.url, `/r-${c.t}`);
        assert.deepEqual([h.status, h.text, h.headers['x-one'], h.headers['x-two']], [202, `r-${c.t} v3`, undefined, '2']);
      },
      async deleted(c) {
        assert.equal((await hit(main.url, `/r-${c.t}`)).status, 404);
      },
    },
  },
  {
    kind: 'upstreams',
    id: (c) => `u-${c.t}`,
    create: () => ({ nodes: { [A.node]: 1 }, desc: 'first' }),
    created(v, c) {
      assert.equal(v.id, `u-${c.t}`);
      assert.deepEqual(v.nodes, [node(A)]);
      assert.equal(v.desc, 'first');
    },
    // a route by upstream_id shows where the upstream sends requests
    afterCreate: async (c) => void (await put(`${c.p}routes/via-u-${c.t}`, { uri: `/via-u-${c.t}`, upstream_id: `u-${c.t}` }, 201)),
    replace: () => ({ nodes: { [B.node]: 1 }, name: 'second' }),
    replaced(v) {
      assert.deepEqual(v.nodes, [node(B)]);
      assert.equal('desc' in v, false, 'a PUT replaces the whole resource');
      assert.equal(v.name, 'second');
    },
    // null deletes a node of the map form, and a field
    patch: () => ({ nodes: { [B.node]: null, [A.node]: 2 }, name: null, desc: 'patched' }),
    patched(v) {
      assert.deepEqual(v.nodes, [node(A, 2)]);
      assert.equal('name' in v, false);
      assert.equal(v.desc, 'patched');
    },
    beforeDelete: (c) => del(`${c.p}routes/via-u-${c.t}`),
    live: {
      async created(c) {
        assert.equal(await servedBy(main.url, `/via-u-${c.t}`), 'A');
      },
      async replaced(c) {
        assert.equal(await servedBy(main.url, `/via-u-${c.t}`), 'B');
      },
      async patched(c) {
        assert.equal(await servedBy(main.url, `/via-u-${c.t}`), 'A');
      },
      async deleted(c) {
        const r = await main.admin.call('PUT', `${c.p}routes/via-u-${c.t}`, { body: { uri: `/via-u-${c.t}`, upstream_id: `u-${c.t}` } });
        assert.equal(r.status, 400, r.text);
        assert.match(r.json.error_msg, new RegExp(`^routes\\[\\d+\\]\\.upstream_id: refers to unknown upstream "u-${c.t}"$`));
      },
    },
  },
  {
    kind: 'consumers',
    id: (c) => `c-${c.t}`,
    create: (c) => ({ desc: 'first', plugins: { 'key-auth': { key: consumerKey(c, 1) } } }),
    created(v, c) {
      assert.equal(v.username, `c-${c.t}`);
      assert.equal(v.desc, 'first');
      assert.equal(v.plugins['key-auth'].key, '******', 'a literal key is shown as ******');
    },
    replace: (c) => ({ desc: 'second', plugins: { 'key-auth': { key: consumerKey(c, 2) } } }),
    replaced(v) {
      assert.equal(v.desc, 'second');
      assert.equal(v.plugins['key-auth'].key, '******');
    },
    patch: (c) => ({ desc: null, labels: { team: c.t }, plugins: { 'key-auth': { key: consumerKey(c, 3) } } }),
    patched(v, c) {
      assert.equal('desc' in v, false);
      assert.deepEqual(v.labels, { team: c.t });
      assert.equal(v.plugins['key-auth'].key, '******');
    },
    live: {
      async created(c) {
        assert.equal(await withKey(main.url, '/fx-ka', consumerKey(c, 1)), 200);
      },
      async replaced(c) {
        assert.deepEqual([await withKey(main.url, '/fx-ka', consumerKey(c, 2)), await withKey(main.url, '/fx-ka', consumerKey(c, 1))], [200, 401]);
      },
      async patched(c) {
        assert.deepEqual([await withKey(main.url, '/fx-ka', consumerKey(c, 3)), await withKey(main.url, '/fx-ka', consumerKey(c, 2))], [200, 401]);
      },
      async deleted(c) {
        assert.equal(await withKey(main.url, '/fx-ka', consumerKey(c, 3)), 401);
      },
    },
  },
  {
    kind: 'secrets',
    id: (c) => `vault/s-${c.t}`,
    create: () => vaultResource('apisix'),
    created(v, c) {
      assert.deepEqual(v, { id: `vault/s-${c.t}`, uri: vault.url, prefix: 'apisix', token: '******', kv_version: 1, timeout: 5 });
    },
    // a consumer whose key is a reference into the resource
    async afterCreate(c) {
      const ref = `$secret://vault/s-${c.t}/jack-${c.t}/auth-key`;
      const r = await put(`${c.p}consumers/sv-${c.t}`, { plugins: { 'key-auth': { key: ref } } }, 201);
      assert.equal(r.json.value.plugins['key-auth'].key, ref, 'a reference is shown as written');
    },
    replace: () => vaultResource('apisix2'),
    replaced(v) {
      assert.equal(v.prefix, 'apisix2');
      assert.equal(v.token, '******');
    },
    // "******" keeps the stored token; null brings kv_version back to its default
    patch: () => ({ prefix: 'apisix', kv_version: null, token: '******' }),
    patched(v, c) {
      assert.deepEqual(v, { id: `vault/s-${c.t}`, uri: vault.url, prefix: 'apisix', token: '******', kv_version: 'auto', timeout: 5 });
    },
    beforeDelete: (c) => del(`${c.p}consumers/sv-${c.t}`),
    live: {
      async created(c) {
        assert.equal(await withKey(main.url, '/fx-ka', vaultKey('apisix', `jack-${c.t}`)), 200);
      },
      async replaced(c) {
        assert.deepEqual([await withKey(main.url, '/fx-ka', vaultKey('apisix2', `jack-${c.t}`)), await withKey(main.url, '/fx-ka', vaultKey('apisix', `jack-${c.t}`))], [200, 401]);
      },
      async patched(c) {
        assert.deepEqual([await withKey(main.url, '/fx-ka', vaultKey('apisix', `jack-${c.t}`)), await withKey(main.url, '/fx-ka', vaultKey('apisix2', `jack-${c.t}`))], [200, 401]);
      },
      async deleted(c) {
        const r = await main.admin.call('PUT', `${c.p}consumers/sv-${c.t}`, { body: { plugins: { 'key-auth': { key: `$secret://vault/s-${c.t}/jack-${c.t}/auth-key` } } } });
        assert.equal(r.status, 400, r.text);
        assert.match(r.json.error_msg, new RegExp(`refers to unknown secret resource "vault/s-${c.t}"`));
      },
    },
  },
];

for (const p of PREFIXES) {
  for (const L of LIFECYCLES) {
    test(`${p}${L.kind}: PUT creates (201) and replaces (200), GET, list, PATCH merges, DELETE; each write live at once`, async () => {
      const c: Ctx = { t: tagOf(p), p };
      const id = L.id(c);
      const path = `${p}${L.kind}/${id}`;
      const key = `/apisix/${L.kind}/${id}`;
      const listBefore = (await main.admin.call('GET', `${p}${L.kind}`)).json;

      const created = await main.admin.call('PUT', path, { body: L.create(c) });
      assert.equal(created.status, 201, created.text);
      assert.deepEqual(Object.keys(created.json).sort(), ['key', 'value']);
      assert.equal(created.json.key, key);
      L.created(created.json.value, c);
      await L.afterCreate?.(c);
      await L.live.created(c);

      const replaced = await main.admin.call('PUT', path, { body: L.replace(c) });
      assert.equal(replaced.status, 200, replaced.text);
      assert.equal(replaced.json.key, key);
      L.replaced(replaced.json.value, c);
      await L.live.replaced(c);

      const one = await main.admin.call('GET', path);
      assert.equal(one.status, 200, one.text);
      assert.deepEqual(one.json, { key, value: replaced.json.value });

      const list = await main.admin.call('GET', `${p}${L.kind}`);
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(Object.keys(list.json).sort(), ['list', 'total']);
      assert.equal(list.json.total, list.json.list.length);
      assert.equal(list.json.total, listBefore.total + 1);
      for (const item of list.json.list) assert.deepEqual(Object.keys(item).sort(), ['key', 'value']);
      assert.deepEqual(
        list.json.list.find((i: { key: string }) => i.key === key),
        { key, value: one.json.value },
      );

      const patched = await main.admin.call('PATCH', path, { body: L.patch(c) });
      assert.equal(patched.status, 200, patched.text);
      assert.equal(patched.json.key, key);
      L.patched(patched.json.value, c);
      assert.deepEqual((await main.admin.call('GET', path)).json, { key, value: patched.json.value });
      await L.live.patched(c);

      await L.beforeDelete?.(c);
      const deleted = await main.admin.call('DELETE', path);
      assert.equal(deleted.status, 200, deleted.text);
      assert.deepEqual(deleted.json, { deleted: '1', key });
      const gone = await main.admin.call('GET', path);
      assert.equal(gone.status, 404, gone.text);
      assert.deepEqual(gone.json, { error_msg: `${ONE[L.kind]} "${id}" not found` });
      await L.live.deleted(c);
      assert.deepEqual((await main.admin.call('GET', `${p}${L.kind}`)).json, listBefore, 'the list is back to what it was');
    });
  }

  test(`${p}consumers: PUT on the list takes the username from the body (APISIX), create then replace`, async () => {
    const t = tagOf(p);
    const [k1, k2] = [planted(`b-${t}-1`), planted(`b-${t}-2`)];
    const created = await main.admin.call('PUT', `${p}consumers`, { body: { username: `b-${t}`, plugins: { 'key-auth': { key: k1 } } } });
    assert.equal(created.status, 201, created.text);
    assert.deepEqual(created.json, { key: `/apisix/consumers/b-${t}`, value: { username: `b-${t}`, plugins: { 'key-auth': { key: '******' } } } });
    assert.equal(await withKey(main.url, '/fx-ka', k1), 200);
    const replaced = await main.admin.call('PUT', `${p}consumers`, { body: { username: `b-${t}`, plugins: { 'key-auth': { key: k2 } } } });
    assert.equal(replaced.status, 200, replaced.text);
    assert.deepEqual([await withKey(main.url, '/fx-ka', k2), await withKey(main.url, '/fx-ka', k1)], [200, 401]);
    await del(`${p}consumers/b-${t}`);
    assert.equal(await withKey(main.url, '/fx-ka', k2), 401);
  });
}

// ---------------------------------------------------------------------------------------------
// 2. every refused call: exact status and error_msg, and nothing changes

const MISSING: Array<[Kind, string]> = [
  ['routes', 'nope'],
  ['upstreams', 'nope'],
  ['consumers', 'nope'],
  ['secrets', 'vault/nope'],
];

/** Built when run (the bodies name the test Vault's address). */
const refusals = (): Refusal[] => [
  // access
  { name: 'no X-API-KEY', method: 'GET', path: 'routes', key: null, status: 401, msg: 'failed to check token' },
  { name: 'no X-API-KEY on a write', method: 'PUT', path: 'routes/fx', key: null, body: { uri: '/fx' }, status: 401, msg: 'failed to check token' },
  { name: 'a wrong key', method: 'DELETE', path: 'routes/fx', key: 'wrong', status: 401, msg: 'failed to check token' },
  { name: 'the key with one more character', method: 'PATCH', path: 'consumers/fxc', key: `${ADMIN_KEY}x`, body: { desc: 'x' }, status: 401, msg: 'failed to check token' },
  // what is addressed
  { name: 'an unknown resource', method: 'GET', path: 'services', status: 404, msg: 'unknown resource "services"' },
  { name: 'a write to an unknown resource', method: 'PUT', path: 'services/s1', body: { name: 's1' }, status: 404, msg: 'unknown resource "services"' },
  { name: 'no resource at all', method: 'GET', path: '', status: 404, msg: 'unknown resource ""' },
  ...MISSING.flatMap(([kind, id]): Refusal[] => [
    { name: `GET of a missing ${ONE[kind]}`, method: 'GET', path: `${kind}/${id}`, status: 404, msg: `${ONE[kind]} "${id}" not found` },
    { name: `PATCH of a missing ${ONE[kind]}`, method: 'PATCH', path: `${kind}/${id}`, body: { desc: 'x' }, status: 404, msg: `${kind}/${id} not found` },
    { name: `DELETE of a missing ${ONE[kind]}`, method: 'DELETE', path: `${kind}/${id}`, status: 404, msg: `${kind}/${id} not found` },
  ]),
  { name: 'extra segments after a route id (GET)', method: 'GET', path: 'routes/fx/extra', status: 404, msg: 'not found' },
  { name: 'extra segments after a route id (PUT)', method: 'PUT', path: 'routes/fx/extra', body: { uri: '/fx' }, status: 404, msg: 'not found' },
  // a PATCH with segments after the id is APISIX's SubPath PATCH (test/admin-subpatch.test.ts): here of an attribute upstreams do not have
  { name: 'a sub-path PATCH of an unknown attribute', method: 'PATCH', path: 'upstreams/fxu/extra', body: { desc: 'x' }, status: 400, errors: (ix) => [`upstreams[${ix('upstreams', 'fxu')}].extra: is not a known field`] },
  { name: 'extra segments after a username (DELETE)', method: 'DELETE', path: 'consumers/fxc/extra', status: 404, msg: 'not found' },
  { name: 'extra segments after a secret id (GET)', method: 'GET', path: 'secrets/vault/fxs/extra', status: 404, msg: 'not found' },
  { name: 'extra segments after a secret id (PUT)', method: 'PUT', path: 'secrets/vault/fxs/extra', body: vaultResource('apisix', '******'), status: 404, msg: 'not found' },
  { name: 'extra segments after a secret id (DELETE)', method: 'DELETE', path: 'secrets/vault/fxs/a/b', status: 404, msg: 'not found' },
  { name: 'a secret manager without an id (GET)', method: 'GET', path: 'secrets/vault', status: 404, msg: 'not found' },
  // methods
  { name: 'PUT on the plugin list', method: 'PUT', path: 'plugins', body: {}, status: 405, msg: 'method not allowed' },
  { name: 'DELETE on the plugin list', method: 'DELETE', path: 'plugins', status: 405, msg: 'method not allowed' },
  { name: 'PATCH of a plugin', method: 'PATCH', path: 'plugins/key-auth', body: {}, status: 405, msg: 'method not allowed' },
  { name: 'OPTIONS on a list', method: 'OPTIONS', path: 'routes', status: 405, msg: 'method not allowed' },
  { name: 'GET of a refresh (POST only)', method: 'GET', path: 'secrets/vault/fxs/refresh', status: 405, msg: 'method not allowed' },
  // bodies
  { name: 'a body that is not JSON', method: 'PUT', path: 'routes/fx', raw: '{"uri": "/fx",', status: 400, msg: 'the body is not valid JSON' },
  { name: 'a truncated body holding a secret', method: 'PUT', path: 'consumers/fxc', raw: `{"plugins":{"key-auth":{"key":"${planted('truncated')}"`, status: 400, msg: 'the body is not valid JSON' },
  { name: 'no body', method: 'PUT', path: 'routes/fx', status: 400, msg: 'the body is not valid JSON' },
  { name: 'a JSON array', method: 'PUT', path: 'routes/fx', raw: '[{"uri":"/fx"}]', status: 400, msg: 'the body must be a JSON object' },
  { name: 'JSON null', method: 'PUT', path: 'upstreams/fxu', raw: 'null', status: 400, msg: 'the body must be a JSON object' },
  { name: 'JSON null as a merge patch', method: 'PATCH', path: 'consumers/fxc', raw: 'null', status: 400, msg: 'the body must be a JSON object' },
  { name: 'a JSON string as a merge patch', method: 'PATCH', path: 'secrets/vault/fxs', raw: '"text"', status: 400, msg: 'the body must be a JSON object' },
  { name: 'a body of 1 MiB + 1 byte', method: 'PUT', path: 'routes/big', raw: routeOfSize(MiB + 1), status: 413, msg: 'request body larger than 1048576 bytes' },
  // (much larger bodies, sent whole before reading: test/admin.test.ts)
  { name: 'a merge patch of 1 MiB + 1 byte', method: 'PATCH', path: 'routes/fx', raw: routeOfSize(MiB + 1), status: 413, msg: 'request body larger than 1048576 bytes' },
  // ids
  { name: 'a route id in the body differing from the path', method: 'PUT', path: 'routes/fx', body: { id: 'other', uri: '/fx' }, status: 400, msg: 'id "other" in the body does not match "fx" in the path' },
  { name: 'a merge patch changing the upstream id', method: 'PATCH', path: 'upstreams/fxu', body: { id: 'other' }, status: 400, msg: 'id "other" in the body does not match "fxu" in the path' },
  { name: 'a username in the body differing from the path', method: 'PUT', path: 'consumers/fxc', body: { username: 'other', plugins: { 'key-auth': { key: planted('other') } } }, status: 400, msg: 'username "other" in the body does not match "fxc" in the path' },
  { name: 'a secret id in the body differing from the path', method: 'PUT', path: 'secrets/vault/fxs', body: { id: 'vault/other', ...vaultResource('apisix', planted('other-token')) }, status: 400, msg: 'id "vault/other" in the body does not match "vault/fxs" in the path' },
  // the message says "missing from the path" although PUT /consumers takes it from the body (see the report)
  { name: 'PUT on the consumer list without a username', method: 'PUT', path: 'consumers', body: { plugins: { 'key-auth': { key: planted('nameless') } } }, status: 400, msg: /^the username is missing/ },
  { name: 'PUT on the route list (no id)', method: 'PUT', path: 'routes', body: { uri: '/x' }, status: 400, msg: 'the id is missing from the path' },
  { name: 'PUT of a secret resource without its id', method: 'PUT', path: 'secrets/vault', body: vaultResource('apisix', planted('no-id-token')), status: 400, msg: 'the id is missing from the path' },
  // validation: every problem with its path
  {
    name: 'an invalid route',
    method: 'PUT',
    path: 'routes/bad',
    body: { uri: 'no-slash', upstream: { nodes: {} }, bogus: 1 },
    status: 400,
    errors: (ix) => [`routes[${ix('routes')}].bogus: is not a known field`, `routes[${ix('routes')}].uri: has an invalid format (must match ^/)`, `routes[${ix('routes')}].upstream.nodes: must have at least 1 entry`],
  },
  {
    name: 'an invalid upstream',
    method: 'PUT',
    path: 'upstreams/bad',
    body: { nodes: {}, type: 'bogus' },
    status: 400,
    errors: (ix) => [`upstreams[${ix('upstreams')}].type: must be one of: "roundrobin", "chash", "least_conn"`, `upstreams[${ix('upstreams')}].nodes: must have at least 1 entry`],
  },
  {
    name: 'an invalid consumer',
    method: 'PUT',
    path: 'consumers/bad',
    body: { bogus: true, plugins: { 'key-auth': {} } },
    status: 400,
    errors: (ix) => [`consumers[${ix('consumers')}].bogus: is not a known field`, `consumers[${ix('consumers')}].plugins.key-auth.key: is required`],
  },
  {
    name: 'an invalid key-auth config holding a secret',
    method: 'PUT',
    path: 'consumers/bad',
    body: { plugins: { 'key-auth': { key: planted('bad'), extra: 1 } } },
    status: 400,
    errors: (ix) => [`consumers[${ix('consumers')}].plugins.key-auth.extra: is not a known field`],
  },
  {
    name: 'an invalid vault resource',
    method: 'PUT',
    path: 'secrets/vault/bad',
    body: { uri: '', prefix: 'apisix' },
    status: 400,
    errors: (ix) => [`secrets[${ix('secrets')}]: must set one of: token, auth`, `secrets[${ix('secrets')}].uri: must not be empty`],
  },
  {
    name: 'a vault resource with both a token and auth',
    method: 'PUT',
    path: 'secrets/vault/bad',
    body: { ...vaultResource('apisix', planted('both-token')), auth: { method: 'approle', role_id: 'r', secret_id: planted('both-secret-id') } },
    status: 400,
    errors: (ix) => [`secrets[${ix('secrets')}]: must set only one of: token, auth`],
  },
  { name: 'a merge patch deleting a required field', method: 'PATCH', path: 'routes/fx', body: { uri: null }, status: 400, errors: (ix) => [`routes[${ix('routes', 'fx')}].uri: is required`] },
  { name: 'a route id the schema refuses', method: 'PUT', path: 'routes/a%20b', body: { uri: '/ab' }, status: 400, errors: (ix) => [`routes[${ix('routes')}].id: has an invalid format (must match ^[A-Za-z0-9_.-]{1,64}$)`] },
  { name: 'a route on an unknown upstream', method: 'PUT', path: 'routes/x', body: { uri: '/x', upstream_id: 'nope' }, status: 400, errors: (ix) => [`routes[${ix('routes')}].upstream_id: refers to unknown upstream "nope"`] },
  { name: 'the env manager as a resource', method: 'PUT', path: 'secrets/env/x', body: {}, status: 400, errors: (ix) => [`secrets[${ix('secrets')}].id: the env manager needs no secret resource: use $env://NAME references directly`] },
  { name: 'an unknown secret manager', method: 'PUT', path: 'secrets/nope/x', body: {}, status: 400, errors: (ix) => [`secrets[${ix('secrets')}].id: unknown secret manager "nope"`] },
  {
    name: 'a reference to an unknown secret resource',
    method: 'PUT',
    path: 'consumers/x',
    body: { plugins: { 'key-auth': { key: '$secret://vault/nope/jack/auth-key' } } },
    status: 400,
    errors: (ix) => [`consumers[${ix('consumers')}].plugins.key-auth.key: refers to unknown secret resource "vault/nope" (add it under secrets:)`],
  },
  {
    name: "a consumer with another consumer's key",
    method: 'PUT',
    path: 'consumers/dup',
    body: { plugins: { 'key-auth': { key: FX_KEY } } },
    status: 400,
    errors: (ix) => [`consumers[${ix('consumers')}].plugins.key-auth.key: consumers "fxc" and "dup" have the same key; each key must identify one consumer`],
  },
  // plugins
  { name: 'a route naming an unknown plugin', method: 'PUT', path: 'routes/x', body: { uri: '/x', plugins: { nope: {} } }, status: 400, errors: (ix) => [`routes[${ix('routes')}].plugins.nope: unknown plugin "nope"`] },
  { name: 'a merge patch adding an unknown plugin', method: 'PATCH', path: 'routes/fx', body: { plugins: { nope: {} } }, status: 400, errors: (ix) => [`routes[${ix('routes', 'fx')}].plugins.nope: unknown plugin "nope"`] },
  { name: 'a consumer naming a plugin without consumer config', method: 'PUT', path: 'consumers/x', body: { plugins: { mocking: {} } }, status: 400, errors: (ix) => [`consumers[${ix('consumers')}].plugins.mocking: plugin "mocking" has no consumer configuration`] },
  // resources still in use
  { name: 'DELETE of an upstream a route uses', method: 'DELETE', path: 'upstreams/fxu', status: 400, msg: 'upstream "fxu" is still used by routes: fx-up' },
  {
    name: 'DELETE of a secret resource a consumer references',
    method: 'DELETE',
    path: 'secrets/vault/fxs',
    status: 400,
    msg: 'secret resource "vault/fxs" is still referenced by consumer fxv',
  },
  // "******" with nothing stored to keep
  { name: '"******" as the key of a new consumer', method: 'PUT', path: 'consumers/newc', body: { plugins: { 'key-auth': { key: '******' } } }, status: 400, msg: 'consumers/newc.plugins.key-auth.key is "******" but no value is stored to keep' },
  { name: '"******" as a key the consumer does not have', method: 'PATCH', path: 'consumers/fxn', body: { plugins: { 'key-auth': { key: '******' } } }, status: 400, msg: 'consumers/fxn.plugins.key-auth.key is "******" but no value is stored to keep' },
  { name: '"******" as the token of a new vault resource', method: 'PUT', path: 'secrets/vault/news', body: vaultResource('apisix', '******'), status: 400, msg: 'secrets/vault/news.token is "******" but no value is stored to keep' },
  // (last: this refusal comes after the compile step, which today has already swapped the live
  // backend of vault/fxs to the refused config; see the readonly test and the report)
  {
    name: "a secret resource change refused at compile time (its new value is another consumer's key)",
    method: 'PUT',
    path: 'secrets/vault/fxs',
    body: vaultResource('apisix2', '******'),
    status: 400,
    errors: (ix) => [`consumers[${ix('consumers', 'fxv')}].plugins.key-auth.key: consumers "fxc" and "fxv" have the same key; each key must identify one consumer`],
  },
];

for (const p of PREFIXES) {
  test(`${p}: every refused call answers its status and error_msg, and changes nothing`, async (t) => {
    for (const c of refusals()) await t.test(`${c.method} ${p}${c.path} -> ${c.status}: ${c.name}`, () => refuse(main, p, c));
  });
}


test('a body of exactly 1 MiB is taken (one byte more is the 413 above)', async () => {
  for (const p of PREFIXES) {
    const body = routeOfSize(MiB);
    assert.equal(Buffer.byteLength(body), MiB);
    const r = await main.admin.call('PUT', `${p}routes/big`, { raw: body });
    assert.equal(r.status, 201, r.text.slice(0, 300));
    assert.equal(r.json.value.desc.length, MiB - '{"uri":"/big","desc":""}'.length);
    await del(`${p}routes/big`);
  }
});

// ---------------------------------------------------------------------------------------------
// 3. GET-edit-PUT round trips: "******" written back keeps the stored secret

interface RoundTrip {
  kind: Kind;
  id: string;
  edit?(v: any): void;
  /** A merge patch sending "******" back for a plaintext secret field. */
  maskPatch?: Record<string, unknown>;
}

const ROUND_TRIPS: RoundTrip[] = [
  { kind: 'routes', id: 'fx', edit: (v) => (v.desc = 'edited') },
  { kind: 'upstreams', id: 'fxu', edit: (v) => (v.desc = 'edited') },
  { kind: 'consumers', id: 'fxc', edit: (v) => (v.desc = 'edited'), maskPatch: { plugins: { 'key-auth': { key: '******' } } } },
  { kind: 'consumers', id: 'fxv', edit: (v) => (v.desc = 'edited') },
  { kind: 'secrets', id: 'vault/fxs', maskPatch: { token: '******' } },
];

for (const p of PREFIXES) {
  test(`${p}: what GET answers can be PUT back as is; "******" keeps the stored secret and the data plane keeps accepting it`, async (t) => {
    for (const rt of ROUND_TRIPS) {
      await t.test(`${rt.kind}/${rt.id}`, async () => {
        const path = `${p}${rt.kind}/${rt.id}`;
        const before = await stateOf(main);
        const got = await main.admin.call('GET', path);
        assert.equal(got.status, 200, got.text);
        const value = structuredClone(got.json.value);
        rt.edit?.(value);
        const r = await main.admin.call('PUT', path, { body: value });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json.value, value, 'stored as sent, secrets shown as ******');
        assert.deepEqual((await main.admin.call('GET', path)).json.value, value);
        if (rt.maskPatch) {
          const m = await main.admin.call('PATCH', path, { body: rt.maskPatch });
          assert.equal(m.status, 200, m.text);
          assert.deepEqual(m.json.value, value);
        }
        const now = await stateOf(main);
        assert.deepEqual([now.plane, now.refresh], [before.plane, before.refresh], 'the data plane still accepts the stored keys; the Vault token still works');
      });
    }
    // the secrets are still shown as ******, references as written
    const c = (await main.admin.call('GET', `${p}consumers`)).json.list.map((i: any) => [i.value.username, i.value.plugins?.['key-auth']?.key]);
    assert.deepEqual(c, [
      ['fxc', '******'],
      ['fxv', '$secret://vault/fxs/fx/auth-key'],
      ['fxn', undefined],
    ]);
    assert.equal((await main.admin.call('GET', `${p}secrets/vault/fxs`)).json.value.token, '******');
  });
}

// ---------------------------------------------------------------------------------------------
// 4. config_store.readonly: every write method on every kind is 403, and nothing changes

function readonlyConfig(): Record<string, unknown> {
  return {
    admin: { key: ADMIN_KEY },
    config_store: { readonly: true },
    upstreams: [
      { id: 'rou', nodes: { [A.node]: 1 } },
      { id: 'rou-free', nodes: { [B.node]: 1 } },
    ],
    routes: [
      { id: 'ro', uri: '/ro', plugins: { mocking: { response_example: 'ro' } } },
      { id: 'ro-up', uri: '/ro-up', upstream_id: 'rou' },
      { id: 'ro-ka', uri: '/ro-ka', plugins: { 'key-auth': {}, mocking: { response_example: 'ro-ka' } } },
    ],
    consumers: [
      { username: 'roc', plugins: { 'key-auth': { key: RO_KEY } } },
      { username: 'rov', plugins: { 'key-auth': { key: '$secret://vault/ros/ro/auth-key' } } },
    ],
    secrets: [
      { id: 'vault/ros', ...vaultResource('apisix') },
      { id: 'vault/ros-free', ...vaultResource('apisix') },
    ],
  };
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
    ro('PUT replacing an upstream', 'PUT', 'upstreams/rou', { nodes: { [B.node]: 1 } }),
    ro('PUT creating an upstream', 'PUT', 'upstreams/rou-new', { nodes: { [B.node]: 1 } }),
    ro('PATCH of an upstream', 'PATCH', 'upstreams/rou', { nodes: { [A.node]: null, [B.node]: 1 } }),
    ro('DELETE of an upstream', 'DELETE', 'upstreams/rou-free'),
    ro('PUT replacing a consumer', 'PUT', 'consumers/roc', { plugins: { 'key-auth': { key: planted('ro-key-2') } } }),
    ro('PUT creating a consumer (username from the body)', 'PUT', 'consumers', { username: 'ro-new', plugins: { 'key-auth': { key: planted('ro-key-new') } } }),
    ro('PATCH of a consumer', 'PATCH', 'consumers/roc', { plugins: { 'key-auth': { key: planted('ro-key-3') } } }),
    ro('DELETE of a consumer', 'DELETE', 'consumers/roc'),
    ro('PUT creating a secret resource', 'PUT', 'secrets/vault/ros-new', vaultResource('apisix')),
    ro('PATCH of a secret resource', 'PATCH', 'secrets/vault/ros', { timeout: 3 }),
    ro('DELETE of a secret resource', 'DELETE', 'secrets/vault/ros-free'),
    // the refused config's backend (a Vault that refuses connections) must not replace the live
    // one: the refresh of vault/ros after it still succeeds
    ro('PUT moving a secret resource to another Vault', 'PUT', 'secrets/vault/ros', { ...vaultResource('apisix', '******'), uri: deadVault }),
  ];
}

for (const p of PREFIXES) {
  test(`${p}: with config_store.readonly every write method on every kind is 403 and changes nothing`, async (t) => {
    const dir = tempDir('gatehouse-admin-paths-ro-');
    dirs.push(dir);
    writeFileSync(join(dir, 'gitops.yaml'), JSON.stringify(readonlyConfig(), null, 2));
    const g = await bootGateway({}, { configPath: join(dir, 'gitops.yaml'), adminListen: '127.0.0.1:0' });
    t.after(() => g.close());
    const url = g.url;
    const rig: Rig = {
      admin: new Admin(`http://127.0.0.1:${g.gw.adminAddress!.port}`),
      url,
      refresh: 'vault/ros',
      probes: {
        'GET /ro': () => answer(url, '/ro'),
        'GET /ro-new': () => hit(url, '/ro-new').then((h) => h.status),
        'GET /ro-up (upstream rou)': () => servedBy(url, '/ro-up'),
        'ro-ka with the key of roc': () => withKey(url, '/ro-ka', RO_KEY),
        'ro-ka with the Vault key of rov': () => withKey(url, '/ro-ka', vaultKey('apisix', 'ro')),
        'ro-ka with a refused key': () => withKey(url, '/ro-ka', planted('ro-key-2')),
      },
    };
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
// 5. a malformed percent-escape in the path is the client's error: 400 saying what is wrong,
// never a 500

test('a malformed percent-escape in the path is a client error (400) saying so, not a 500', async (t) => {
  for (const p of PREFIXES) {
    for (const [method, body] of [['GET'], ['PUT', { uri: '/bad' }], ['DELETE']] as const) {
      await t.test(`${method} ${p}routes/%E0%A4%A`, () => refuse(main, p, { name: 'a malformed escape', method, path: 'routes/%E0%A4%A', body, status: 400, msg: 'the path has a malformed percent-encoding' }));
    }
  }
});

// ---------------------------------------------------------------------------------------------
// 6. persistence through the CLI: `gatehouse start -c <file>`, Admin writes, SIGTERM, start again

test('Admin writes to `gatehouse start -c <file>` survive SIGTERM and a restart (<name>.data.json is read on start)', { timeout: 60000 }, async (t) => {
  const dir = tempDir('gatehouse-admin-paths-cli-');
  dirs.push(dir);
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
  ok(await admin.call('PUT', '/admin/upstreams/pu', { body: { nodes: { [B.node]: 1 } } }), 201);
  ok(await admin.call('PUT', '/apisix/admin/routes/p-up', { body: { uri: '/p-up', upstream_id: 'pu' } }), 201);
  ok(await admin.call('PUT', '/admin/routes/p', { body: { uri: '/p', plugins: { mocking: { response_example: 'persisted' } } } }), 201);
  ok(await admin.call('PATCH', '/apisix/admin/routes/p', { body: { plugins: { mocking: { response_example: 'persisted and patched' } } } }), 200);
  ok(await admin.call('PUT', '/admin/routes/p-ka', { body: { uri: '/p-ka', plugins: { 'key-auth': {}, mocking: { response_example: 'p-ka' } } } }), 201);
  ok(await admin.call('PUT', '/apisix/admin/secrets/vault/ps', { body: vaultResource('apisix') }), 201);
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
// 7. redaction over the whole file

test('no Admin API answer in this file carried a planted secret', () => {
  assert.ok(answers.length > 500, `answers were collected (${answers.length})`);
  assert.ok(answers.filter((a) => a.text.includes('"******"')).length > 50, 'plaintext secret fields were answered, masked');
  assert.deepEqual(
    answers.filter((a) => a.text.includes(MARK)).map((a) => a.call),
    [],
  );
});
