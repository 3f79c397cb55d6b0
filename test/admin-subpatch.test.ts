// APISIX's SubPath PATCH (docs/admin-api.md): `PATCH /admin/{kind}/{id}/{path}` replaces the one
// attribute {path} names (nested: plugins/mocking, upstream/nodes) with the body, any JSON value;
// null deletes it. Routes and upstreams (as APISIX), consumers and secret resources too, on both
// prefixes; real HTTP against a booted gateway whose resources are all at their admin.limits.
// - each accepted sub-path PATCH answers 200 {key, value} (redacted like GET), keeps every other
//   attribute, and the data plane serves the change when the answer arrives;
// - "******" written back through a sub-path, also into a plugin config, keeps the stored secret;
// - every refusal (missing resource, id field, crossing a non-object, empty segment, __proto__,
//   validation, body size, admin key, allow list, readonly store) answers its exact status and
//   error_msg and changes nothing: lists, data plane, secret refresh, Object.prototype;
// - no answer carries a planted secret.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { makeSslPki, type SslPair } from './helpers/ssl-pki';
import { request, type Dispatcher } from 'undici';
import { bootGateway, startUpstream, type TestGateway, type Upstream } from './helpers/harness';
import { startVaultServer, type VaultServer } from './servers/vault';
import { adminCall, type Reply } from './helpers/admin-client';

const MARK = `planted${randomBytes(6).toString('hex')}`;
const planted = (what: string) => `${MARK}-${what}`;
const ADMIN_KEY = planted('admin-key');
const VAULT_TOKEN = `hvs.${planted('vault-token')}`;
const LIT_KEY = planted('lit-key');
const vaultKey = (mount: 'apisix' | 'apisix2') => planted(`vault-${mount}-sp`);

const PREFIXES = ['/admin/', '/apisix/admin/'] as const;
type Prefix = (typeof PREFIXES)[number];
type Kind = 'routes' | 'upstreams' | 'consumers' | 'secrets' | 'ssls';
const KINDS: readonly Kind[] = ['routes', 'upstreams', 'consumers', 'secrets', 'ssls'];
const MiB = 1024 * 1024;

const answers: Array<{ call: string; text: string }> = [];

/** One Admin API call: `body` is sent as JSON, `raw` as is; `key: null` sends no X-API-KEY. */
function call(base: string, method: string, path: string, o: { body?: unknown; raw?: string; key?: string | null } = {}): Promise<Reply> {
  return adminCall(answers, base, method, path, { ...o, key: o.key === undefined ? ADMIN_KEY : o.key });
}

async function hit(base: string, path: string, o: { headers?: Record<string, string>; method?: string } = {}) {
  const r = await request(`${base}${path}`, { method: (o.method ?? 'GET') as Dispatcher.HttpMethod, headers: o.headers ?? {} });
  return { status: r.statusCode, text: await r.body.text(), headers: r.headers };
}
const answer = (base: string, path: string) => hit(base, path).then((h) => `${h.status} ${h.text}`);
const servedBy = (base: string, path: string) => hit(base, path).then((h) => (h.status === 200 ? (JSON.parse(h.text) as { name: string }).name : `status ${h.status}`));
const withKey = (base: string, path: string, key?: string) => hit(base, path, { headers: key === undefined ? {} : { apikey: key } }).then((h) => h.status);

let A: Upstream;
let B: Upstream;
let vault: VaultServer;
let gw: TestGateway;
let admin: string;
let url: string;

const vaultResource = (prefix: 'apisix' | 'apisix2') => ({ uri: vault.url, prefix, token: VAULT_TOKEN, kv_version: 1 });
const node = (u: Upstream, weight = 1) => ({ host: '127.0.0.1', port: u.port, weight });
let sslMade: { pair: SslPair; other: SslPair } | undefined;
/** The SSL resource's certificate and key, and a key of another certificate (made with openssl when first asked for). */
const ssl = () => {
  if (sslMade === undefined) {
    const pki = makeSslPki();
    sslMade = { pair: pki.leaf(['sp.ssl.test']), other: pki.leaf(['other.ssl.test']) };
  }
  return sslMade;
};

function fixture(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    admin: { key: ADMIN_KEY, limits: { routes: 4, upstreams: 1, consumers: 3, secrets: 1 } },
    upstreams: [{ id: 'su', nodes: { [A.node]: 1 } }],
    routes: [
      { id: 'sp', uri: '/sp', desc: 'kept', plugins: { mocking: { response_example: 'sp v1' } } },
      { id: 'sp-up', uri: '/sp-up', upstream_id: 'su' },
      { id: 'sp-ka', uri: '/sp-ka', plugins: { 'key-auth': {}, mocking: { response_example: 'sp-ka' } } },
      { id: 'sp-in', uri: '/sp-in', upstream: { nodes: [node(A)] } },
    ],
    consumers: [
      { username: 'spc', desc: 'literal', plugins: { 'key-auth': { key: LIT_KEY } } },
      { username: 'spv', plugins: { 'key-auth': { key: '$secret://vault/sps/sp/auth-key' } } },
      { username: 'spn', desc: 'no plugins' },
    ],
    secrets: [{ id: 'vault/sps', ...vaultResource('apisix') }],
    ssls: [{ id: 'sps', ...ssl().pair, snis: ['sp.ssl.test'] }],
    ...extra,
  };
}

/** Everything a refused write must leave as it was. */
async function stateOf(base = admin, plane = url): Promise<Record<string, unknown>> {
  const lists: Record<string, unknown> = {};
  for (const kind of KINDS) {
    const r = await call(base, 'GET', `/admin/${kind}`);
    assert.equal(r.status, 200, r.text);
    lists[kind] = r.json;
  }
  const refresh = await call(base, 'POST', '/admin/secrets/vault/sps/refresh');
  return {
    lists,
    refresh: refresh.json,
    plane: {
      '/sp': await answer(plane, '/sp'),
      '/sp-up': await servedBy(plane, '/sp-up'),
      '/sp-in': await servedBy(plane, '/sp-in'),
      'sp-ka literal key': await withKey(plane, '/sp-ka', LIT_KEY),
      'sp-ka vault key': await withKey(plane, '/sp-ka', vaultKey('apisix')),
      'sp-ka apisix2 key': await withKey(plane, '/sp-ka', vaultKey('apisix2')),
      'sp-ka no key': await withKey(plane, '/sp-ka'),
    },
    polluted: Object.getOwnPropertyNames(Object.prototype).filter((n) => /polluted/.test(n)),
    constructorIsObject: ({} as { constructor: unknown }).constructor === Object,
  };
}

const INITIAL_PLANE = {
  '/sp': '200 sp v1',
  '/sp-up': 'A',
  '/sp-in': 'A',
  'sp-ka literal key': 200,
  'sp-ka vault key': 200,
  'sp-ka apisix2 key': 401,
  'sp-ka no key': 401,
};

before(async () => {
  A = await startUpstream(undefined, 'A');
  B = await startUpstream(undefined, 'B');
  vault = await startVaultServer({ rootToken: VAULT_TOKEN });
  const v = async (path: string, body: unknown) => {
    const r = await request(`${vault.url}/v1/${path}`, { method: 'POST', headers: { 'x-vault-token': VAULT_TOKEN, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await r.body.text();
    assert.ok(r.statusCode === 200 || r.statusCode === 204, `vault ${path}: ${r.statusCode}`);
  };
  for (const mount of ['apisix', 'apisix2'] as const) {
    await v(`sys/mounts/${mount}`, { type: 'kv', options: { version: '1' } });
    await v(`${mount}/sp`, { 'auth-key': vaultKey(mount) });
  }
  gw = await bootGateway(fixture(), { adminListen: '127.0.0.1:0' });
  admin = `http://127.0.0.1:${gw.gw.adminAddress!.port}`;
  url = gw.url;
  const s = await stateOf();
  assert.deepEqual(s.plane, INITIAL_PLANE);
  assert.deepEqual(s.refresh, { key: '/apisix/secrets/vault/sps', refreshed: 1, failed: 0, published: true });
});

after(async () => {
  await gw?.close();
  await A?.close();
  await B?.close();
  await vault?.close();
});

/** A sub-path PATCH that must succeed: 200 and APISIX's envelope, the same value GET answers. */
async function subPatch(p: Prefix, kind: Kind, id: string, sub: string, body: unknown): Promise<any> {
  const r = await call(admin, 'PATCH', `${p}${kind}/${id}/${sub}`, { body });
  assert.equal(r.status, 200, `PATCH ${p}${kind}/${id}/${sub}: ${r.text}`);
  assert.deepEqual(Object.keys(r.json).sort(), ['key', 'value']);
  assert.equal(r.json.key, `/apisix/${kind}/${id}`);
  assert.deepEqual((await call(admin, 'GET', `${p}${kind}/${id}`)).json, r.json, 'GET answers what the PATCH answered');
  return r.json.value;
}

const getValue = async (kind: Kind, id: string) => (await call(admin, 'GET', `/admin/${kind}/${id}`)).json.value;

// ---------------------------------------------------------------------------------------------
// accepted sub-path PATCHes, each live at once

for (const p of PREFIXES) {
  test(`${p}routes/{id}/{path}: the body replaces one attribute (object, string, number, boolean, array, null deletes); the rest is kept; live at once`, async () => {
    const before = await getValue('routes', 'sp');

    // an object: the whole plugins attribute is replaced, not merged
    let v = await subPatch(p, 'routes', 'sp', 'plugins', { mocking: { response_example: 'sp v2', response_status: 201 } });
    assert.deepEqual(v, { ...before, plugins: { mocking: { response_example: 'sp v2', response_status: 201, delay: 0, content_type: 'application/json;charset=utf8', with_mock_header: true } } });
    assert.equal(await answer(url, '/sp'), '201 sp v2');

    // nested: one plugin's config, then one field of it
    v = await subPatch(p, 'routes', 'sp', 'plugins/mocking', { response_example: 'sp v3' });
    assert.equal(v.plugins.mocking.response_status, 200, 'the plugin config is replaced: response_status is back to its default');
    assert.equal(await answer(url, '/sp'), '200 sp v3');
    v = await subPatch(p, 'routes', 'sp', 'plugins/mocking/response_example', 'sp v4');
    assert.equal(await answer(url, '/sp'), '200 sp v4');
    v = await subPatch(p, 'routes', 'sp', 'plugins/mocking/with_mock_header', false);
    assert.equal(v.plugins.mocking.with_mock_header, false);
    assert.equal((await hit(url, '/sp')).headers['x-mock-by'], undefined);
    v = await subPatch(p, 'routes', 'sp', 'plugins/mocking/response_status', 203);
    assert.equal(await answer(url, '/sp'), '203 sp v4');

    // strings and arrays at the top level (before: 400 "the body must be a JSON object")
    v = await subPatch(p, 'routes', 'sp', 'desc', 'a string');
    assert.equal(v.desc, 'a string');
    v = await subPatch(p, 'routes', 'sp', 'methods', ['POST']);
    assert.deepEqual(v.methods, ['POST']);
    assert.deepEqual([(await hit(url, '/sp')).status, (await hit(url, '/sp', { method: 'POST' })).status], [404, 203]);
    // "uri" replaces the stored "uris" (as GET shows it), as a merge PATCH does
    v = await subPatch(p, 'routes', 'sp', 'uri', '/sp-moved');
    assert.deepEqual(v.uris, ['/sp-moved']);
    assert.deepEqual([(await hit(url, '/sp-moved', { method: 'POST' })).status, (await hit(url, '/sp', { method: 'POST' })).status], [203, 404]);
    // null deletes the attribute
    v = await subPatch(p, 'routes', 'sp', 'methods', null);
    assert.equal('methods' in v, false);
    v = await subPatch(p, 'routes', 'sp', 'desc', null);
    assert.equal('desc' in v, false);
    // percent-decoded segments: %6D is "m"
    v = await subPatch(p, 'routes', 'sp', 'plugins/%6Docking/response_example', 'decoded');
    assert.equal(v.plugins.mocking.response_example, 'decoded');

    // a missing object on the way is created (as APISIX): a route without plugins gets one
    const up = await subPatch(p, 'routes', 'sp-up', 'plugins/mocking', { response_example: 'now mocked' });
    assert.deepEqual(up.plugins, { mocking: { response_example: 'now mocked', response_status: 200, delay: 0, content_type: 'application/json;charset=utf8', with_mock_header: true } });
    assert.equal(up.upstream_id, 'su', 'kept');
    assert.equal(await answer(url, '/sp-up'), '200 now mocked');
    await subPatch(p, 'routes', 'sp-up', 'plugins', null);
    assert.equal(await servedBy(url, '/sp-up'), 'A');

    // an inline upstream's nodes (list form), replaced whole
    const inl = await subPatch(p, 'routes', 'sp-in', 'upstream/nodes', [node(B)]);
    assert.deepEqual(inl.upstream.nodes, [node(B)]);
    assert.equal(await servedBy(url, '/sp-in'), 'B');
    await subPatch(p, 'routes', 'sp-in', 'upstream/nodes', [node(A)]);

    // back to the fixture by sub-path PATCHes alone
    await subPatch(p, 'routes', 'sp', 'plugins', { mocking: { response_example: 'sp v1' } });
    await subPatch(p, 'routes', 'sp', 'uris', ['/sp']);
    await subPatch(p, 'routes', 'sp', 'desc', 'kept');
    assert.deepEqual(await getValue('routes', 'sp'), before);
    assert.deepEqual((await stateOf()).plane, INITIAL_PLANE);
  });

  test(`${p}upstreams/{id}/nodes and nodes/{host:port}: replaced and added at once on the data plane`, async () => {
    const before = await getValue('upstreams', 'su');
    let v = await subPatch(p, 'upstreams', 'su', 'nodes', { [B.node]: 1 });
    assert.deepEqual(v, { ...before, nodes: [node(B)] });
    assert.equal(await servedBy(url, '/sp-up'), 'B');
    // a node of the map form by its key ("127.0.0.1:port", the colon percent-encoded)
    v = await subPatch(p, 'upstreams', 'su', `nodes/${encodeURIComponent(A.node)}`, 5);
    assert.deepEqual(v.nodes, [node(B), node(A, 5)]);
    v = await subPatch(p, 'upstreams', 'su', `nodes/${encodeURIComponent(B.node)}`, null);
    assert.deepEqual(v.nodes, [node(A, 5)]);
    assert.equal(await servedBy(url, '/sp-up'), 'A');
    v = await subPatch(p, 'upstreams', 'su', 'retries', 2);
    assert.equal(v.retries, 2);
    await subPatch(p, 'upstreams', 'su', 'retries', null);
    await subPatch(p, 'upstreams', 'su', 'nodes', { [A.node]: 1 });
    assert.deepEqual(await getValue('upstreams', 'su'), before);
  });

  test(`${p}consumers/{username}/plugins/key-auth: a new key is live at once; "******" through a sub-path keeps the stored key`, async () => {
    const newKey = planted(`new-key-${p.length}`);
    const before = await getValue('consumers', 'spc');
    let v = await subPatch(p, 'consumers', 'spc', 'plugins/key-auth', { key: newKey });
    assert.deepEqual(v, { username: 'spc', desc: 'literal', plugins: { 'key-auth': { key: '******' } } });
    assert.deepEqual([await withKey(url, '/sp-ka', newKey), await withKey(url, '/sp-ka', LIT_KEY)], [200, 401]);

    // what GET shows, written back through three sub-paths: the key stays the new one
    v = await subPatch(p, 'consumers', 'spc', 'plugins/key-auth', { key: '******' });
    assert.deepEqual(v.plugins, { 'key-auth': { key: '******' } });
    v = await subPatch(p, 'consumers', 'spc', 'plugins/key-auth/key', '******');
    v = await subPatch(p, 'consumers', 'spc', 'plugins', v.plugins);
    assert.deepEqual([await withKey(url, '/sp-ka', newKey), await withKey(url, '/sp-ka', LIT_KEY)], [200, 401]);

    v = await subPatch(p, 'consumers', 'spc', 'plugins/key-auth/key', LIT_KEY);
    assert.deepEqual(v, before);
    assert.deepEqual([await withKey(url, '/sp-ka', LIT_KEY), await withKey(url, '/sp-ka', newKey)], [200, 401]);
    v = await subPatch(p, 'consumers', 'spn', 'labels', { team: 'x' });
    assert.deepEqual(v, { username: 'spn', desc: 'no plugins', labels: { team: 'x' }, plugins: {} });
    await subPatch(p, 'consumers', 'spn', 'labels', null);
  });

  test(`${p}secrets/{manager}/{id}/{path}: the sub-path starts after two segments; "******" keeps the token; a new prefix is resolved at once`, async () => {
    const before = await getValue('secrets', 'vault/sps');
    let v = await subPatch(p, 'secrets', 'vault/sps', 'token', '******');
    assert.deepEqual(v, before);
    v = await subPatch(p, 'secrets', 'vault/sps', 'prefix', 'apisix2');
    assert.deepEqual(v, { ...before, prefix: 'apisix2', token: '******' });
    assert.deepEqual([await withKey(url, '/sp-ka', vaultKey('apisix2')), await withKey(url, '/sp-ka', vaultKey('apisix'))], [200, 401]);
    await subPatch(p, 'secrets', 'vault/sps', 'prefix', 'apisix');
    const s = await stateOf();
    assert.deepEqual([s.plane, s.refresh], [INITIAL_PLANE, { key: '/apisix/secrets/vault/sps', refreshed: 1, failed: 0, published: true }], 'the token kept is the one Vault takes');
  });

  test(`${p}ssls/{id}/{path}: names and a key replaced one at a time; "******" keeps the stored key; a key of another certificate is refused with its path`, async () => {
    const tag = p === '/admin/' ? 'a' : 'x';
    const served = (name: string) => gw.gw.snapshot.tls.select(name)?.sslId;
    let v = await subPatch(p, 'ssls', 'sps', 'snis', ['sp.ssl.test', `${tag}.sp.ssl.test`]);
    assert.deepEqual(v.snis, ['sp.ssl.test', `${tag}.sp.ssl.test`]);
    assert.equal(served(`${tag}.sp.ssl.test`), 'sps', 'live at once');
    v = await subPatch(p, 'ssls', 'sps', 'key', '******');
    assert.equal(v.key, '******');
    assert.ok(gw.gw.snapshot.config.ssls[0].key === ssl().pair.key, 'the stored key is kept');
    const bad = await call(admin, 'PATCH', `${p}ssls/sps/key`, { body: ssl().other.key });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json.error_msg, 'ssls[0].key: does not match its certificate (ssls[0].cert)');
    assert.equal(served('sp.ssl.test'), 'sps');
    v = await subPatch(p, 'ssls', 'sps', 'snis', ['sp.ssl.test']);
    assert.equal(served(`${tag}.sp.ssl.test`), undefined);
  });

  test(`${p}: "constructor" and "prototype" are plain own keys; nothing reaches Object.prototype`, async () => {
    const v = await subPatch(p, 'routes', 'sp', 'labels/constructor', 'c');
    assert.deepEqual(v.labels, { constructor: 'c' });
    assert.equal(Object.hasOwn(v.labels, 'constructor'), true);
    await subPatch(p, 'routes', 'sp', 'labels/prototype', 'p');
    assert.deepEqual((await getValue('routes', 'sp')).labels, { constructor: 'c', prototype: 'p' });
    await subPatch(p, 'routes', 'sp', 'labels', null);
    const s = await stateOf();
    assert.deepEqual([s.plane, s.polluted, s.constructorIsObject], [INITIAL_PLANE, [], true]);
  });
}

test('at its admin.limits a create is refused while a sub-path PATCH of an existing resource works', async () => {
  const r = await call(admin, 'PUT', '/admin/routes/sp-new', { body: { uri: '/sp-new' } });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error_msg, 'the routes limit is reached (admin.limits.routes: 4, stored: 4): delete routes, or raise admin.limits.routes in the config file');
  await subPatch('/apisix/admin/', 'routes', 'sp', 'name', 'at the limit');
  await subPatch('/apisix/admin/', 'routes', 'sp', 'name', null);
});

// ---------------------------------------------------------------------------------------------
// refusals: exact status and error_msg, nothing changed

interface Refusal {
  path: string;
  body?: unknown;
  raw?: string;
  key?: string | null;
  method?: string;
  status: number;
  msg: string | RegExp;
  errors?: string[];
}

async function refuse(p: Prefix, c: Refusal, base = admin, plane = url): Promise<void> {
  const before = await stateOf(base, plane);
  const r = await call(base, c.method ?? 'PATCH', `${p}${c.path}`, { body: c.body, raw: c.raw, key: c.key });
  assert.equal(r.status, c.status, r.text.slice(0, 300));
  if (typeof c.msg === 'string') assert.equal(r.json?.error_msg, c.msg);
  else assert.match(r.json?.error_msg, c.msg);
  assert.deepEqual(r.json.errors, c.errors);
  assert.deepEqual(await stateOf(base, plane), before, 'the lists, the data plane, the secret backend and Object.prototype are unchanged');
}

const ix = (id: string) => ['sp', 'sp-up', 'sp-ka', 'sp-in'].indexOf(id);
/** A validation refusal: error_msg is its one problem, listed in `errors`. */
const invalid = (problem: string) => ({ msg: problem, errors: [problem] });

const refusals = (): Refusal[] => [
  // the resource must exist, the kind must be known
  { path: 'routes/nope/plugins', body: {}, status: 404, msg: 'routes/nope not found' },
  { path: 'upstreams/nope/nodes', body: { '127.0.0.1:1': 1 }, status: 404, msg: 'upstreams/nope not found' },
  { path: 'consumers/nope/desc', body: 'x', status: 404, msg: 'consumers/nope not found' },
  { path: 'secrets/vault/nope/token', body: 'x', status: 404, msg: 'secrets/vault/nope not found' },
  { path: 'secrets/nope/sps/token', body: 'x', status: 404, msg: 'secrets/nope/sps not found' },
  { path: 'services/sp/desc', body: 'x', status: 404, msg: 'unknown resource "services"' },
  { path: 'plugins/mocking/desc', body: 'x', status: 405, msg: 'method not allowed' },
  { path: 'secrets/vault/sps/refresh', body: {}, status: 405, msg: 'method not allowed' },
  // the id field
  { path: 'routes/sp/id', body: 'other', status: 400, msg: 'the id cannot be changed through a sub-path: PUT the resource to its new id' },
  { path: 'routes/sp/id', body: 'sp', status: 400, msg: 'the id cannot be changed through a sub-path: PUT the resource to its new id' },
  { path: 'upstreams/su/id', body: 'other', status: 400, msg: 'the id cannot be changed through a sub-path: PUT the resource to its new id' },
  { path: 'consumers/spc/username', body: 'other', status: 400, msg: 'the username cannot be changed through a sub-path: PUT the resource to its new username' },
  { path: 'secrets/vault/sps/id', body: 'vault/x', status: 400, msg: 'the id cannot be changed through a sub-path: PUT the resource to its new id' },
  // the shape of the path
  { path: 'routes/sp/desc/x', body: 'y', status: 400, msg: 'invalid sub-path "desc/x": "desc" is a string, not an object' },
  { path: `upstreams/su/nodes/${encodeURIComponent(A.node)}/weight`, body: 2, status: 400, msg: `invalid sub-path "nodes/${A.node}/weight": "nodes/${A.node}" is a number, not an object` },
  { path: 'routes/sp-in/upstream/nodes/0', body: node(B), status: 400, msg: 'invalid sub-path "upstream/nodes/0": "upstream/nodes" is an array, not an object' },
  { path: 'upstreams/su/nodes/x/y', body: 1, status: 400, ...invalid('upstreams[0].nodes.x: must be an integer') },
  { path: 'routes/sp/plugins//mocking', body: {}, status: 400, msg: 'the sub-path "plugins//mocking" has an empty segment' },
  { path: 'routes/sp/plugins/', body: {}, status: 400, msg: 'the sub-path "plugins/" has an empty segment' },
  { path: 'routes/sp//desc', body: 'x', status: 400, msg: 'the sub-path "/desc" has an empty segment' },
  { path: 'routes/sp/plugins/%E0%A4%A', body: {}, status: 400, msg: 'the path has a malformed percent-encoding' },
  // prototype pollution attempts
  { path: 'routes/sp/__proto__', body: { polluted: 'yes' }, status: 400, msg: 'the sub-path segment "__proto__" is not allowed' },
  { path: 'routes/sp/__proto__/polluted', body: 'yes', status: 400, msg: 'the sub-path segment "__proto__" is not allowed' },
  { path: 'routes/sp/%5F%5Fproto%5F%5F/polluted', body: 'yes', status: 400, msg: 'the sub-path segment "__proto__" is not allowed' },
  { path: 'routes/sp/plugins/__proto__', body: { polluted: 'yes' }, status: 400, msg: 'the sub-path segment "__proto__" is not allowed' },
  { path: 'routes/sp/constructor/prototype/polluted', body: 'yes', status: 400, msg: `routes[${ix('sp')}].constructor: is not a known field`, errors: [`routes[${ix('sp')}].constructor: is not a known field`] },
  { path: 'routes/sp/labels', raw: '{"__proto__":{"polluted":"yes"}}', status: 400, msg: `routes[${ix('sp')}].labels.__proto__: must be a string`, errors: [`routes[${ix('sp')}].labels.__proto__: must be a string`] },
  // the result is validated like any write
  { path: 'routes/sp/plugins/mocking/response_status', body: 'x', status: 400, msg: `routes[${ix('sp')}].plugins.mocking.response_status: must be an integer`, errors: [`routes[${ix('sp')}].plugins.mocking.response_status: must be an integer`] },
  { path: 'routes/sp/plugins/no-such-plugin', body: {}, status: 400, ...invalid(`routes[${ix('sp')}].plugins.no-such-plugin: unknown plugin "no-such-plugin"`) },
  { path: 'routes/sp-up/upstream_id', body: 'nope', status: 400, msg: `routes[${ix('sp-up')}].upstream_id: refers to unknown upstream "nope"`, errors: [`routes[${ix('sp-up')}].upstream_id: refers to unknown upstream "nope"`] },
  { path: 'routes/sp/uris', body: null, status: 400, ...invalid(`routes[${ix('sp')}].uri: is required`) },
  { path: 'upstreams/su/nodes', body: {}, status: 400, ...invalid('upstreams[0].nodes: must have at least 1 entry') },
  { path: 'consumers/spv/plugins/key-auth/key', body: LIT_KEY, status: 400, ...invalid('consumers[1].plugins.key-auth.key: consumers "spc" and "spv" have the same key; each key must identify one consumer') },
  // "******" with nothing stored to keep
  { path: 'consumers/spn/plugins/key-auth', body: { key: '******' }, status: 400, msg: 'consumers/spn.plugins.key-auth.key is "******" but no value is stored to keep' },
  { path: 'consumers/spn/plugins', body: { 'key-auth': { key: '******' } }, status: 400, msg: 'consumers/spn.plugins.key-auth.key is "******" but no value is stored to keep' },
  // the body
  { path: 'routes/sp/desc', raw: '', status: 400, msg: 'the body is not valid JSON' },
  { path: 'routes/sp/desc', raw: '"unterminated', status: 400, msg: 'the body is not valid JSON' },
  { path: 'routes/sp/desc', raw: JSON.stringify('x'.repeat(MiB)), status: 413, msg: `request body larger than ${MiB} bytes` },
  // the admin key
  { path: 'routes/sp/desc', body: 'x', key: null, status: 401, msg: 'failed to check token' },
  { path: 'routes/sp/desc', body: 'x', key: 'wrong', status: 401, msg: 'failed to check token' },
];

for (const p of PREFIXES) {
  test(`${p}: every refused sub-path PATCH answers its status and error_msg and changes nothing`, async (t) => {
    for (const c of refusals()) await t.test(`PATCH ${p}${c.path} -> ${c.status}`, () => refuse(p, c));
  });
}

test('a sub-path PATCH from outside admin.allow is 403 and changes nothing', async () => {
  const g = await bootGateway(fixture({ admin: { key: ADMIN_KEY, allow: ['10.0.0.0/8'] } }), { adminListen: '127.0.0.1:0' });
  try {
    const base = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
    const r = await call(base, 'PATCH', '/apisix/admin/routes/sp/plugins', { body: {} });
    assert.deepEqual([r.status, r.json], [403, { error_msg: 'IP address not allowed' }]);
    assert.equal(await answer(g.url, '/sp'), '200 sp v1');
  } finally {
    await g.close();
  }
});

test('with config_store.readonly a sub-path PATCH on every kind is 403 (before the resource is looked up) and changes nothing', async (t) => {
  const g = await bootGateway(fixture({ config_store: { readonly: true } }), { adminListen: '127.0.0.1:0' });
  t.after(() => g.close());
  const base = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
  const ro = (path: string, body: unknown): Refusal => ({ path, body, status: 403, msg: 'the config store is read-only: config_store.readonly is set' });
  for (const p of PREFIXES) {
    for (const c of [
      ro('routes/sp/plugins', { mocking: { response_example: 'changed' } }),
      ro('routes/sp/desc', 'changed'),
      ro('upstreams/su/nodes', { [B.node]: 1 }),
      ro('consumers/spc/plugins/key-auth', { key: planted('ro') }),
      ro('secrets/vault/sps/prefix', 'apisix2'),
      ro('ssls/sps/key', '******'),
      ro('routes/nope/desc', 'x'),
      // the path's shape is checked after the store: a readonly store answers 403 first, as for every write
      ro('routes/sp/__proto__/x', 1),
      ro('routes/sp/id', 'other'),
      ro('routes/sp/plugins//x', 1),
    ]) {
      await t.test(`PATCH ${p}${c.path}`, () => refuse(p, c, base, g.url));
    }
  }
});

test('no answer in this file carried a planted secret', () => {
  assert.ok(answers.length > 300, `answers were collected (${answers.length})`);
  assert.ok(answers.filter((a) => a.text.includes('"******"')).length > 20, 'plaintext secret fields were answered, masked');
  assert.deepEqual(
    answers.filter((a) => a.text.includes(MARK)).map((a) => a.call),
    [],
  );
});
