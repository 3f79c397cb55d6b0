// Admin API fuzz over real HTTP on an in-process gateway: random JSON, near-valid resource bodies
// (mutated), and random bytes, PUT / POST / PATCH to every resource kind (routes, upstreams,
// consumers, secrets) on both prefixes, at existing, new, missing and odd ids. For every call:
// - the answer is 2xx or 4xx (never 5xx, never a dropped connection), JSON, with error_msg on 4xx;
// - a 4xx leaves the running config (every GET list) and the data plane (routes, upstream,
//   key-auth with a literal key and with a Vault key) exactly as they were;
// - a 2xx is undone through the API (the original PUT back, or the new resource DELETEd), and then
//   everything is as it was, which checks the 2xx was a clean change too;
// - no answer carries a planted secret: the admin key, the Vault token, the consumers' keys, and
//   every plaintext secret a generated body puts into a secret field all contain MARK.
// Bodies name planted values by placeholder ({{plant:...}}), so a counterexample prints no secret.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request, Agent, type Dispatcher } from 'undici';
import { bootGateway, startUpstream, tempDir, type TestGateway, type Upstream } from '../helpers/harness';
import { startVaultServer, type VaultServer } from '../servers/vault';
import { makeSslPki } from '../helpers/ssl-pki';
import { fc, noEscapes, params, placesOf, setOwn, watchProcess, type Path } from './runs';
import { rmSync } from 'node:fs';

watchProcess();

const MARK = `planted${randomBytes(6).toString('hex')}`;
const ADMIN_KEY = `${MARK}-admin-key`;
const VAULT_TOKEN = `hvs.${MARK}-vault-token`;
const FX_KEY = `${MARK}-fx-key`;
const VAULT_FX = `${MARK}-vault-fx`;

type Kind = 'routes' | 'upstreams' | 'consumers' | 'secrets' | 'ssls';
const KINDS: readonly Kind[] = ['routes', 'upstreams', 'consumers', 'secrets', 'ssls'];
/** PEMs for SSL resources, by placeholder (`{{pem:cert}}`): a pair, and a key of another certificate. */
const PEMS: Record<string, string> = {};
const PREFIXES = ['/admin/', '/apisix/admin/'];

let A: Upstream;
let vault: VaultServer;
let g: TestGateway;
let admin: string;
let dir: string;
const agent = new Agent({ keepAliveTimeout: 10000 });

/** The baseline resources, as written (with the planted values): what an undo PUTs back. */
let BASE: Record<Kind, Record<string, Record<string, unknown>>>;
let baseline: Record<string, unknown>;

before(async () => {
  A = await startUpstream(undefined, 'A');
  vault = await startVaultServer({ rootToken: VAULT_TOKEN });
  for (const [path, body] of [
    ['sys/mounts/apisix', { type: 'kv', options: { version: '1' } }],
    ['apisix/fx', { 'auth-key': VAULT_FX }],
  ] as const) {
    const r = await request(`${vault.url}/v1/${path}`, { method: 'POST', headers: { 'x-vault-token': VAULT_TOKEN, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await r.body.text();
    assert.ok(r.statusCode === 200 || r.statusCode === 204, `vault ${path}: ${r.statusCode}`);
  }
  dir = tempDir('gatehouse-fuzz-admin-');
  const pki = makeSslPki();
  const pair = pki.leaf(['fx.ssl.test']);
  Object.assign(PEMS, { cert: pair.cert, key: pair.key, 'other-key': pki.leaf(['other.ssl.test'], 'rsa').key, ca: pki.ca });
  BASE = {
    routes: {
      fx: { uri: '/fx', plugins: { mocking: { response_example: 'fx' } } },
      'fx-up': { uri: '/fx-up', upstream_id: 'fxu' },
      'fx-ka': { uri: '/fx-ka', plugins: { 'key-auth': {}, mocking: { response_example: 'fx-ka' } } },
    },
    upstreams: { fxu: { nodes: { [A.node]: 1 } } },
    consumers: {
      fxc: { plugins: { 'key-auth': { key: FX_KEY } } },
      fxv: { plugins: { 'key-auth': { key: '$secret://vault/fxs/fx/auth-key' } } },
      fxn: { desc: 'no plugins' },
    },
    secrets: { 'vault/fxs': { uri: vault.url, prefix: 'apisix', token: VAULT_TOKEN, kv_version: 1 } },
    ssls: { fxl: { cert: pair.cert, key: pair.key, snis: ['fx.ssl.test'] } },
  };
  const section = (kind: Kind, idField: string) => Object.entries(BASE[kind]).map(([id, v]) => ({ [idField]: id, ...structuredClone(v) }));
  g = await bootGateway(
    { admin: { key: ADMIN_KEY }, routes: section('routes', 'id'), upstreams: section('upstreams', 'id'), consumers: section('consumers', 'username'), secrets: section('secrets', 'id'), ssls: section('ssls', 'id') },
    { adminListen: '127.0.0.1:0' },
  );
  admin = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
  baseline = await stateOf();
  assert.deepEqual(baseline.plane, { fx: '200 fx', 'fx-up': 'A', 'fx-ka literal key': 200, 'fx-ka vault key': 200, 'fx-ka no key': 401, nowhere: 404 });
});

after(async () => {
  await g?.close();
  await A?.close();
  await vault?.close();
  await agent.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// calls, with the leak check on every answer

let calls = 0;

interface Answer {
  status: number;
  text: string;
  json: any;
}

/** One Admin API call; fails on a dropped connection, and on a planted secret in the answer. */
async function call(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  calls++;
  let r: Dispatcher.ResponseData;
  try {
    r = await request(`${admin}${path}`, { method: method as Dispatcher.HttpMethod, headers: { 'x-api-key': ADMIN_KEY, ...headers }, body, dispatcher: agent });
  } catch (err) {
    assert.fail(`${method} ${path}: no answer (${(err as Error).name}: ${(err as Error).message})`);
  }
  const text = await r.body.text();
  assert.equal(text.includes(MARK), false, `${method} ${path} -> ${r.statusCode}: the answer carries a planted secret`);
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`${method} ${path} -> ${r.statusCode}: the answer is not JSON`);
  }
  return { status: r.statusCode, text, json };
}

async function probe(path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const r = await request(`${g.url}${path}`, { headers, dispatcher: agent });
  return { status: r.statusCode, text: await r.body.text() };
}

/** Everything a refused write must leave as it was: every list and the data plane. */
async function stateOf(): Promise<Record<string, unknown>> {
  const lists: Record<string, unknown> = {};
  for (const kind of KINDS) {
    const r = await call('GET', `/admin/${kind}`);
    assert.equal(r.status, 200);
    lists[kind] = r.json;
  }
  const fx = await probe('/fx');
  const up = await probe('/fx-up');
  return {
    lists,
    plane: {
      fx: `${fx.status} ${fx.text}`,
      'fx-up': up.status === 200 ? (JSON.parse(up.text) as { name: string }).name : up.status,
      'fx-ka literal key': (await probe('/fx-ka', { apikey: FX_KEY })).status,
      'fx-ka vault key': (await probe('/fx-ka', { apikey: VAULT_FX })).status,
      'fx-ka no key': (await probe('/fx-ka')).status,
      nowhere: (await probe('/nowhere')).status,
    },
  };
}

const enc = (kind: Kind, id: string) => (kind === 'secrets' ? id.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(id));

/** Undo a 2xx write named by its answer's key: PUT the baseline resource back, or DELETE a new one. */
async function undo(kind: Kind, key: string): Promise<void> {
  const prefix = `/apisix/${kind}/`;
  assert.ok(key.startsWith(prefix), `a 2xx answer names its resource: ${key}`);
  const id = key.slice(prefix.length);
  const original = Object.hasOwn(BASE[kind], id) ? BASE[kind][id] : undefined;
  const r = original !== undefined ? await call('PUT', `/admin/${kind}/${enc(kind, id)}`, JSON.stringify(original), { 'content-type': 'application/json' }) : await call('DELETE', `/admin/${kind}/${enc(kind, id)}`);
  assert.equal(r.status, 200, `undo of ${kind}/${id}: ${r.text}`);
}

// ---------------------------------------------------------------------------------------------
// generated calls

/** Planted values, by placeholder: a secret field set to one must never come back. */
let planted = 0;
const PLANTS: Record<string, () => string> = {
  new: () => `${MARK}-new-${++planted}`,
  'fx-key': () => FX_KEY,
  'vault-fx': () => VAULT_FX,
  'vault-token': () => VAULT_TOKEN,
  'admin-key': () => ADMIN_KEY,
};
const plant = fc.constantFrom(...Object.keys(PLANTS)).map((n) => `{{plant:${n}}}`);
const render = (body: unknown) =>
  JSON.stringify(body)
    .replace(/\{\{plant:([a-z-]+)\}\}/g, (_, n: string) => PLANTS[n]())
    .replace(/\{\{pem:([a-z-]+)\}\}/g, (_, n: string) => JSON.stringify(PEMS[n]).slice(1, -1));
/** A PEM of the test PKI, or what is not one. */
const pem = (...names: string[]) => fc.constantFrom(...names.map((n) => `{{pem:${n}}}`));

/** A secret field's value: a planted secret (often), "******", or a reference. */
const secretValue = fc.oneof({ weight: 4, arbitrary: plant }, { weight: 1, arbitrary: fc.constantFrom('******', '$env://GATEHOUSE_FUZZ_NOPE', '$secret://vault/fxs/fx/auth-key', '$secret://vault/nope/a/b') });

const ODD = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<unknown>(null, 0, -1, 1.5, 1e308, true, [], {}, [null], '', ' ', '******', '$env://', '$secret://vault/fxs/x', '/:(', '/a/*/b', 'a\nb', '__proto__', '\u0000', 'x'.repeat(3000), 'fxu', 'fx', 'nope', '127.0.0.1:1', { '': null }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
const oddKey = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'toString', 'id', 'username', 'uri', 'uris', 'host', 'hosts', 'plugins', 'upstream', 'upstream_id', 'nodes', 'token', 'key', 'status', 'priority'), fc.string({ maxLength: 6 }));

const uri = fc.constantFrom('/fz', '/fz/*', '/fx', '/fx-ka', '/*', '/fz/:id');
const nearValid: Record<Kind, fc.Arbitrary<Record<string, unknown>>> = {
  routes: fc
    .tuple(
      fc.record(
        {
          uri,
          methods: fc.subarray(['GET', 'POST', 'PUT'], { minLength: 1 }),
          hosts: fc.constantFrom(['a.example.com'], ['*.example.com']),
          priority: fc.integer({ min: -3, max: 3 }),
          plugins: fc.record({ mocking: fc.record({ response_example: fc.constantFrom('fz', '') }, { requiredKeys: [] }), 'key-auth': fc.constant({}) }, { requiredKeys: [] }),
          status: fc.constantFrom(0, 1),
        },
        { requiredKeys: ['uri'] },
      ),
      fc.constantFrom({}, { upstream_id: 'fxu' }, { upstream_id: 'nope' }, { upstream: { nodes: { '127.0.0.1:1': 1 } } }),
    )
    .map(([r, up]) => ({ ...r, ...up })),
  upstreams: fc.record(
    {
      nodes: fc.oneof(fc.constant({ '127.0.0.1:1': 1 }), fc.constant([{ host: '127.0.0.1', port: 2, weight: 1 }]), fc.constant({})),
      type: fc.constantFrom('roundrobin', 'chash', 'least_conn'),
      retries: fc.integer({ min: -1, max: 3 }),
      timeout: fc.constant({ connect: 1 }),
    },
    { requiredKeys: ['nodes'] },
  ),
  consumers: fc.record(
    {
      username: fc.constantFrom('USERNAME', 'USERNAME', 'fz', 'fxc', 'bad name'),
      desc: fc.constantFrom('fz'),
      plugins: fc.oneof(
        fc.record({ 'key-auth': fc.record({ key: secretValue }) }),
        fc.record({ 'basic-auth': fc.record({ username: fc.constantFrom('fz', 'fxc'), password: secretValue }) }),
        fc.record({ 'jwt-auth': fc.record({ key: fc.constantFrom('fz-jwt'), secret: secretValue, base64_secret: fc.boolean() }, { requiredKeys: ['key', 'secret'] }) }),
        fc.constant({}),
      ),
    },
    { requiredKeys: [] },
  ),
  secrets: fc.oneof(
    fc
      .tuple(
        fc.record(
          {
            // https: the provider reads tls.ca / cert / key (PEM text or a file) before it connects
            uri: fc.constantFrom('VAULT', 'VAULT', 'VAULT_TLS'),
            prefix: fc.constantFrom('apisix', 'apisix', 'nope'),
            kv_version: fc.constantFrom(1, 2),
            timeout: fc.constant(1),
          },
          { requiredKeys: ['uri', 'prefix'] },
        ),
        fc.oneof(fc.record({ token: secretValue }), fc.record({ auth: fc.record({ method: fc.constant('approle'), role_id: fc.constant('r'), secret_id: secretValue }) })),
        fc.option(
          fc.oneof(
            fc.record({ key: secretValue, verify: fc.boolean() }, { requiredKeys: ['key'] }),
            fc.record({ ca: fc.constantFrom('/nonexistent/ca.pem'), cert: fc.constantFrom('/nonexistent/cert.pem'), key: secretValue }, { requiredKeys: [] }),
          ),
          { nil: undefined },
        ),
      )
      .map(([base, cred, tls]) => ({ ...base, ...cred, ...(tls === undefined ? {} : { tls }) })),
    fc.record({ dir: fc.constant('DIR') }),
    fc.record({ region: fc.constant('us-east-1'), access_key_id: fc.constant('AKIDFUZZ'), secret_access_key: secretValue, endpoint_url: fc.constant('VAULT'), max_attempts: fc.constant(1) }, { requiredKeys: ['region'] }),
  ),
  ssls: fc.record(
    {
      cert: fc.oneof({ weight: 4, arbitrary: pem('cert') }, { weight: 1, arbitrary: pem('ca') }, { weight: 1, arbitrary: secretValue }),
      key: fc.oneof({ weight: 4, arbitrary: pem('key') }, { weight: 1, arbitrary: pem('other-key') }, { weight: 2, arbitrary: secretValue }),
      snis: fc.constantFrom(['fz.ssl.test'], ['*.fz.ssl.test'], ['fx.ssl.test'], ['FZ.ssl.test', 'fz.ssl.test'], ['bad name'], []),
      certs: fc.constantFrom(['{{pem:cert}}'], []),
      keys: fc.oneof(pem('key').map((k) => [k]), secretValue.map((k) => [k]), fc.constant([])),
      type: fc.constantFrom('server', 'client'),
      status: fc.constantFrom(0, 1),
      client: fc.record({ ca: fc.oneof(pem('ca'), secretValue), depth: fc.constantFrom(0, 1, -1) }),
    },
    { requiredKeys: ['cert', 'key', 'snis'] },
  ),
};

/** A near-valid body with 0-2 mutations (a field deleted, replaced by an odd value, an odd key added). */
const mutated = (kind: Kind) =>
  fc.tuple(nearValid[kind], fc.gen()).map(([b, gen]) => {
    const body = structuredClone(b);
    const n = gen(fc.nat, 2);
    for (let i = 0; i < n; i++) {
      const places: Path[] = [[], ...placesOf(body)];
      const at = places[gen(fc.nat, places.length - 1)];
      const op = gen(fc.constantFrom, 'delete', 'replace', 'add-key');
      const parent = at.slice(0, -1).reduce<any>((o, k) => o[k], body);
      const target = at.length === 0 ? body : parent[at[at.length - 1]];
      if (op === 'add-key' || at.length === 0) {
        if (target !== null && typeof target === 'object' && !Array.isArray(target)) setOwn(target, gen(() => oddKey), structuredClone(gen(() => ODD)));
      } else if (op === 'delete') {
        if (Array.isArray(parent)) parent.splice(at[at.length - 1] as number, 1);
        else delete parent[at[at.length - 1]];
      } else setOwn(parent, String(at[at.length - 1]), structuredClone(gen(() => ODD)));
    }
    return body;
  });

const ids: Record<Kind, string[]> = {
  routes: ['fx', 'fx-ka', 'fz-1'],
  upstreams: ['fxu', 'fz-1'],
  consumers: ['fxc', 'fxv', 'fxn', 'fz'],
  // vault/fxs most: consumer fxv's key comes from it, so what a write does to it is resolved at once
  secrets: ['vault/fxs', 'vault/fxs', 'vault/fxs', 'vault/fz', 'file/fz', 'aws/fz', 'env/x', 'nope/x', 'vault', 'vault/a/b'],
  ssls: ['fxl', 'fxl', 'fz-1'],
};
const BASE_IDS: Record<Kind, string[]> = { routes: ['fx', 'fx-up', 'fx-ka'], upstreams: ['fxu'], consumers: ['fxc', 'fxv', 'fxn'], secrets: ['vault/fxs'], ssls: ['fxl'] };
const ODD_IDS = ['%2e%2e', 'a%2Fb', '%zz', '__proto__', 'constructor', 'x'.repeat(100), '%C3%A9', '0', 'a b', '%20', '..%2F..'];

interface Call {
  method: 'PUT' | 'POST' | 'PATCH';
  prefix: string;
  kind: Kind;
  /** Path segment(s) after the kind, as sent (already encoded); undefined: the list path. */
  id: string | undefined;
}
const target = fc.tuple(fc.constantFrom(...KINDS), fc.constantFrom<Call['method']>('PUT', 'PUT', 'POST', 'PATCH', 'PATCH')).chain(([kind, method]) =>
  fc.record({
    method: fc.constant(method),
    prefix: fc.constantFrom(...PREFIXES),
    kind: fc.constant(kind),
    // mostly what the method is for (POST: the list; PATCH: an existing resource), sometimes not
    id: fc.oneof(
      { weight: method === 'POST' ? 1 : 5, arbitrary: fc.constantFrom(...(method === 'PATCH' ? ids[kind].filter((i) => BASE_IDS[kind].includes(i)) : ids[kind])) },
      { weight: method === 'POST' ? 5 : 1, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom(...ODD_IDS) },
    ),
  }),
);

/** Body text: near-valid (mutated) for the kind, any JSON value, or an object of odd keys and values. */
const jsonBody = (kind: Kind) =>
  fc.oneof(
    { weight: 5, arbitrary: mutated(kind) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    { weight: 1, arbitrary: fc.array(fc.tuple(oddKey, ODD), { maxLength: 4 }).map((kv) => kv.reduce<Record<string, unknown>>((o, [k, v]) => (setOwn(o, k, v), o), {})) },
  );

const pathOf = (c: Call) => `${c.prefix}${c.kind}${c.id === undefined ? '' : `/${c.id}`}`;

let logOffset = 0;
/** Fail when a log line written since the last call holds a planted secret (shown with the secret cut out). */
function checkLogs(what: string): void {
  const text = g.logs.text();
  const fresh = text.slice(logOffset);
  logOffset = text.length;
  const line = fresh.split('\n').find((l) => l.includes(MARK));
  assert.equal(line, undefined, `${what}: a log line carries a planted secret: ${line?.replaceAll(MARK, '<planted>')}`);
}

/** Send one generated write and check everything the file header promises. */
async function check(c: Call, body: string | Buffer): Promise<number> {
  const r = await call(c.method, pathOf(c), body, { 'content-type': 'application/json' });
  checkLogs(`${c.method} ${pathOf(c)} -> ${r.status}`);
  assert.ok((r.status >= 200 && r.status < 300) || (r.status >= 400 && r.status < 500), `${c.method} ${pathOf(c)} answered ${r.status}: ${r.json?.error_msg ?? ''}`);
  if (r.status >= 400) {
    assert.equal(typeof r.json?.error_msg, 'string', 'a 4xx says what is wrong');
  } else {
    assert.equal(typeof r.json?.key, 'string');
    await undo(c.kind, r.json.key);
  }
  assert.deepEqual(await stateOf(), baseline, r.status >= 400 ? `a ${r.status} left everything as it was` : 'undone, everything is as it was');
  checkLogs('after the undo');
  return r.status;
}

// ---------------------------------------------------------------------------------------------

const statuses = new Map<number, number>();
const count = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);

test('random and near-valid JSON to every resource kind: 2xx or 4xx, a 4xx changes nothing, no planted secret answered', async () => {
  const input = target.chain((c) => jsonBody(c.kind).map((body) => ({ c, body })));
  await fc.assert(
    fc.asyncProperty(input, async ({ c, body }) => {
      // a consumer body names the consumer of its path (else a generated one is refused for the mismatch)
      const username = c.kind === 'consumers' && c.id !== undefined ? c.id : 'fz';
      const text = render(body).replace(/"VAULT"/g, JSON.stringify(vault.url)).replace(/"VAULT_TLS"/g, JSON.stringify(vault.url.replace('http:', 'https:'))).replace(/"DIR"/g, JSON.stringify(dir)).replace(/"USERNAME"/g, JSON.stringify(username));
      count(await check(c, text));
    }),
    params('admin: JSON bodies', 600, { shrink: false }),
  );
  // the generators must reach both outcomes, or this test says little
  const ok = [...statuses].filter(([s]) => s < 300).reduce((n, [, k]) => n + k, 0);
  const refused = [...statuses].filter(([s]) => s >= 400).reduce((n, [, k]) => n + k, 0);
  console.log(`fuzz: admin: JSON answers by status: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`);
  assert.ok(ok >= 10 && refused >= 10, `accepted ${ok}, refused ${refused}`);
  await noEscapes();
});

test('random bytes and broken JSON as the body: 4xx (or a 2xx when they happen to be a valid object), nothing changes', async () => {
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
    fc.string({ unit: 'binary', maxLength: 40 }).map((s) => Buffer.from(s, 'utf8')),
    // a near-valid body cut short, or with a byte changed
    fc.tuple(mutated('routes'), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, at, byte]) => {
      const buf = Buffer.from(render(b));
      const i = at % (buf.length + 1);
      return byte % 2 ? buf.subarray(0, i) : Buffer.concat([buf.subarray(0, i), Buffer.from([byte]), buf.subarray(i + 1)]);
    }),
    // nesting deeper than any resource: the parser's or the merge's recursion must not answer 500
    fc.integer({ min: 1000, max: 200000 }).map((d) => Buffer.from(`{"desc":${'['.repeat(d)}${']'.repeat(d)}}`)),
  );
  await fc.assert(
    fc.asyncProperty(target, bytes, async (c, body) => {
      count(await check(c, body));
    }),
    params('admin: random bytes', 300, { shrink: false }),
  );
  await noEscapes();
});

// APISIX's SubPath PATCH (`PATCH /admin/{kind}/{id}/{path}`): the body, any JSON value, replaces
// one attribute. Same promises as above, with sub-paths into every kind's attributes and plugin
// configs, odd segments (prototype keys, empty, percent-encoded), and planted secrets as the
// value of a secret field (or of an object holding one): only those must come back masked.
const plain = fc.oneof({ weight: 3, arbitrary: ODD }, { weight: 1, arbitrary: fc.constant(null) });
const SUB_PATHS: Record<Kind, Record<string, fc.Arbitrary<unknown>>> = {
  routes: {
    plugins: nearValid.routes.map((r) => r.plugins ?? {}),
    'plugins/mocking': fc.record({ response_example: fc.constantFrom('fz', ''), response_status: fc.integer({ min: 99, max: 600 }) }, { requiredKeys: [] }),
    'plugins/mocking/response_example': fc.oneof(fc.constantFrom('fz'), plain),
    'plugins/key-auth': fc.constantFrom({}, { header: 'x-key' }),
    uri: fc.oneof(uri, plain),
    uris: fc.oneof(uri.map((u) => [u]), plain),
    methods: fc.oneof(fc.constant(['GET']), plain),
    upstream: nearValid.upstreams,
    'upstream/nodes': nearValid.upstreams.map((u) => u.nodes),
    upstream_id: fc.oneof(fc.constantFrom('fxu', 'nope'), plain),
    'labels/x': plain,
    priority: plain,
  },
  upstreams: {
    nodes: nearValid.upstreams.map((u) => u.nodes),
    'nodes/127.0.0.1:1': plain,
    'nodes/127.0.0.1:1/x': plain,
    type: plain,
    retries: plain,
    'timeout/connect': plain,
  },
  consumers: {
    plugins: nearValid.consumers.map((c) => c.plugins ?? {}),
    'plugins/key-auth': fc.record({ key: secretValue }),
    'plugins/key-auth/key': secretValue,
    'plugins/basic-auth': fc.record({ username: fc.constantFrom('fz', 'fxc'), password: secretValue }),
    desc: plain,
    labels: plain,
  },
  secrets: {
    token: secretValue,
    prefix: fc.oneof(fc.constantFrom('apisix', 'nope'), plain),
    kv_version: plain,
    auth: fc.record({ method: fc.constant('approle'), role_id: fc.constant('r'), secret_id: secretValue }),
    'auth/secret_id': secretValue,
    tls: fc.record({ key: secretValue, verify: fc.boolean() }, { requiredKeys: ['key'] }),
    'tls/key': secretValue,
    timeout: plain,
  },
  ssls: {
    key: fc.oneof(pem('key', 'other-key'), secretValue),
    cert: fc.oneof(pem('cert', 'ca'), plain),
    'keys/0': fc.oneof(pem('key'), secretValue),
    snis: fc.oneof(fc.constantFrom(['fz.ssl.test'], ['bad name']), plain),
    'client/ca': fc.oneof(pem('ca'), secretValue),
    desc: plain,
  },
};
const ODD_SUB_PATHS = ['id', 'username', '__proto__', '__proto__/polluted', '%5F%5Fproto%5F%5F/x', 'constructor', 'constructor/prototype/polluted', 'labels/constructor', 'plugins//x', 'plugins/', 'desc/x', '%zz', 'a%2Fb', 'x'.repeat(200)];
const subCall = fc.constantFrom(...KINDS).chain((kind) =>
  fc.record({
    prefix: fc.constantFrom(...PREFIXES),
    kind: fc.constant(kind),
    id: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...BASE_IDS[kind]) }, { weight: 1, arbitrary: fc.constantFrom(...ids[kind], ...ODD_IDS) }),
    at: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...Object.keys(SUB_PATHS[kind])).chain((sub) => fc.tuple(fc.constant(sub), SUB_PATHS[kind][sub])) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...ODD_SUB_PATHS), plain) },
    ),
  }),
);

test('sub-path PATCH with any JSON value: 2xx or 4xx, a 4xx changes nothing, no planted secret answered, Object.prototype untouched', async () => {
  const before = new Map<number, number>(statuses);
  await fc.assert(
    fc.asyncProperty(subCall, async ({ prefix, kind, id, at: [sub, body] }) => {
      const text = render(body === undefined ? null : body).replace(/"VAULT"/g, JSON.stringify(vault.url));
      count(await check({ method: 'PATCH', prefix, kind, id: `${id}/${sub}` }, text));
      assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).filter((n) => n.includes('polluted')), [], 'Object.prototype is untouched');
    }),
    params('admin: sub-path PATCH', 300, { shrink: false }),
  );
  const ok = [...statuses].filter(([s]) => s < 300).reduce((n, [st, k]) => n + k - (before.get(st) ?? 0), 0);
  const refused = [...statuses].filter(([s]) => s >= 400).reduce((n, [st, k]) => n + k - (before.get(st) ?? 0), 0);
  console.log(`fuzz: admin: sub-path PATCH: accepted ${ok}, refused ${refused}`);
  assert.ok(ok >= 10 && refused >= 10, `accepted ${ok}, refused ${refused}`);
  await noEscapes();
});

test('found by the property above: a tls.key that is neither PEM text nor a file is not echoed in the log', async () => {
  // before the fix: "secret unavailable ... vault: tls.key: cannot read PEM file \"<the key>\" (ENOENT)", logged twice
  const tlsKey = `${MARK}-tls-key-without-its-BEGIN-line`;
  const body = JSON.stringify({ uri: vault.url.replace('http:', 'https:'), tls: { key: tlsKey } });
  const r = await call('PATCH', '/admin/secrets/vault/fxs', body, { 'content-type': 'application/json' });
  // a tls field that is no PEM text names a file the backend would read: outside secret_policy.files
  // it is refused, naming the field, never what it holds
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error_msg, /^secrets\[\d+\]\.tls\.key: names a file outside the folders secret_policy\.files allows/);
  assert.equal(r.text.includes(tlsKey), false);
  checkLogs('PATCH vault/fxs with a tls.key that is no PEM');
  assert.deepEqual(await stateOf(), baseline);
  await noEscapes();
});

test('the fuzzed gateway logged no planted secret and still answers', async () => {
  console.log(`fuzz: admin: ${calls} Admin API calls in all`);
  assert.equal(g.logs.text().includes(MARK), false, 'no planted secret in the gateway log');
  assert.deepEqual(await stateOf(), baseline);
  await noEscapes();
});
