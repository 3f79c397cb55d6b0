// Property tests of config validation (core/config/validate.ts), YAML loading and the whole load
// pipeline (Gateway.create: validate, resolve, compile), over generated configs:
// - valid configs (routes, upstreams, consumers, secret resources, admin, references in every place
//   that may hold one) are accepted, with exactly the references they hold, and the normalised
//   config they give is accepted again unchanged (what GET answers can be PUT back);
// - mutations of them (fields deleted, replaced by odd values, unknown or prototype-named keys
//   added, entries duplicated) are accepted or refused with issues, never a throw: each issue has
//   a path under the document and a one-line message, and the caller's document is not modified;
// - the same through YAML text with bytes broken: a GH_ERR_CONFIG_PARSE error or a document;
// - the whole pipeline accepts every valid config and refuses the rest only with
//   GH_ERR_CONFIG_INVALID listing issues; nothing rejects later (unhandled), and no timer is armed
//   longer than Node keeps (secret_cache lifetimes of 40 days and more).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { builtinExtensions } from '../../core/extensions/builtins';
import { createRegistry, type Registry } from '../../core/config/registry';
import { validateConfig } from '../../core/config/validate';
import { parseConfigText } from '../../core/config/loader';
import { formatIssues, GatehouseError, type ConfigIssue } from '../../core/errors';
import { Gateway } from '../../core/gateway';
import { silentLogger } from '../../core/observe/log';
import type { Plugin, SecretProvider } from '../../core/contracts';
import { refusedPort, tempDir } from '../helpers/harness';
import { fc, noEscapes, params, placesOf, setOwn, watchProcess, type Path } from './runs';

watchProcess();

const registry: Registry = createRegistry(
  builtinExtensions.filter((e) => e.kind === 'plugin').map((e) => (e as { plugin: Plugin }).plugin),
  builtinExtensions.filter((e) => e.kind === 'provider').map((e) => (e as { provider: SecretProvider }).provider),
);

let dir: string;
let vaultUri: string;
const ENV = 'GATEHOUSE_FUZZ_CFG';
before(async () => {
  dir = tempDir('gatehouse-fuzz-config-');
  mkdirSync(join(dir, 'c'));
  for (let i = 0; i < 8; i++) {
    writeFileSync(join(dir, 'c', `key-${i}`), `file-key-${i}\n`);
    process.env[`${ENV}_${i}`] = `env-key-${i}`;
  }
  // the admin key's own variable: data sections can never reference the gateway's own credential
  process.env[`${ENV}_ADMIN`] = 'env-admin-key';
  // a Vault that refuses connections: references to it fail closed, fast, and the config stays valid
  vaultUri = `http://127.0.0.1:${await refusedPort()}`;
});
after(() => rmSync(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// valid configs

type Doc = Record<string, any>;
interface Built {
  doc: Doc;
  /** Every reference placed, with its config path. */
  refs: Array<{ path: string; text: string }>;
}

const SEGS = ['a', 'b', 'api', 'v1'];
const HOSTS = ['a.example.com', 'B.Example.com', '*.example.com', 'example.com'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'PURGE'];

const uri = fc.tuple(fc.array(fc.constantFrom(...SEGS, ':id'), { maxLength: 3 }), fc.constantFrom('', '/', '/*', '*')).map(([s, e]) => {
  const base = `/${s.join('/')}`;
  // "/:id*" would make "*" part of the parameter's name
  const end = e === '*' && s[s.length - 1] === ':id' ? '/*' : e;
  return end === '' ? base : end === '*' ? `${base}*` : base === '/' ? `/${end.slice(1)}` : `${base}${end}`;
});
const node = fc.record({ host: fc.constantFrom('127.0.0.1', 'localhost', 'up.example.com'), port: fc.integer({ min: 1, max: 65535 }), weight: fc.integer({ min: 1, max: 100 }) });
const upstreamBody = fc.record(
  {
    type: fc.constantFrom('roundrobin', 'least_conn', 'chash'),
    nodes: fc.oneof(
      // a node twice is an error (the balancer refuses it)
      fc.uniqueArray(node, { minLength: 1, maxLength: 3, selector: (n) => `${n.host}:${n.port}` }),
      fc.array(node, { minLength: 1, maxLength: 3 }).map((ns) => Object.fromEntries(ns.map((n) => [`${n.host}:${n.port}`, n.weight]))),
    ),
    scheme: fc.constantFrom('http', 'https'),
    pass_host: fc.constantFrom('pass', 'node'),
    timeout: fc.record({ connect: fc.constantFrom(0.5, 1, 6), read: fc.constantFrom(1, 30) }, { requiredKeys: [] }),
    retries: fc.integer({ min: 0, max: 3 }),
    desc: fc.string({ maxLength: 10 }),
  },
  { requiredKeys: ['nodes'] },
);
const routePlugins = fc.record(
  {
    'key-auth': fc.constantFrom({}, { header: 'x-key' }, { query: 'k', hide_credentials: true }),
    mocking: fc.record({ response_status: fc.integer({ min: 200, max: 599 }), response_example: fc.string({ maxLength: 10 }) }, { requiredKeys: [] }),
    'request-id': fc.constantFrom({}, { header_name: 'X-Trace' }),
    'proxy-rewrite': fc.constantFrom({ uri: '/rewritten' }, { host: 'backend.example.com' }),
    'ip-restriction': fc.constantFrom({ whitelist: ['10.0.0.0/8', '127.0.0.1'] }, { blacklist: ['192.0.2.1'] }),
    cors: fc.constantFrom({}, { allow_origins: 'https://a.example.com' }),
  },
  { requiredKeys: [] },
);

const validConfig: fc.Arbitrary<Built> = fc.gen().map((g) => {
  const refs: Built['refs'] = [];
  const doc: Doc = {};
  // secret resources first: references may only name declared ones
  const secrets: Doc[] = [];
  const hasVault = g(fc.boolean);
  const hasFile = g(fc.boolean);
  if (hasVault) {
    const tokenRef = g(fc.boolean);
    const token = tokenRef ? `$env://${ENV}_${g(fc.nat, 7)}` : `hvs.fuzz-token-${g(fc.nat, 99)}`;
    if (tokenRef) refs.push({ path: `secrets[${secrets.length}].token`, text: token });
    secrets.push({ id: 'vault/s0', uri: vaultUri, prefix: 'kv', token, kv_version: g(fc.constantFrom, 1, 2), timeout: 1 });
  }
  if (hasFile) {
    secrets.push({ id: 'file/f0', dir });
    // the file provider reads only what the operator's policy allows
    doc.secret_policy = { files: [dir] };
  }
  if (g(fc.boolean)) secrets.push({ id: 'aws/a0', region: 'us-east-1', endpoint_url: vaultUri, max_attempts: 1 });
  if (secrets.length || g(fc.boolean)) doc.secrets = secrets;

  const nUp = g(fc.nat, 3);
  const upstreams: Doc[] = [];
  for (let i = 0; i < nUp; i++) upstreams.push({ id: g(fc.boolean) ? `u${i}` : 1000 + i, ...g(() => upstreamBody) });
  if (nUp || g(fc.boolean)) doc.upstreams = upstreams;

  const nRoutes = g(fc.nat, 5);
  const routes: Doc[] = [];
  for (let i = 0; i < nRoutes; i++) {
    const r: Doc = { id: g(fc.boolean) ? `r${i}` : i };
    if (g(fc.boolean)) r.uri = g(() => uri);
    else r.uris = g(fc.array, uri, { minLength: 1, maxLength: 3 });
    if (g(fc.boolean)) r.methods = g(fc.subarray, METHODS, { minLength: 1 });
    const hostForm = g(fc.nat, 2);
    if (hostForm === 1) r.host = g(fc.constantFrom, ...HOSTS);
    if (hostForm === 2) r.hosts = g(fc.subarray, HOSTS, { minLength: 1 });
    if (g(fc.boolean)) r.priority = g(fc.integer, { min: -5, max: 5 });
    if (g(fc.boolean)) r.status = g(fc.constantFrom, 0, 1);
    const plugins = g(() => routePlugins);
    if (Object.keys(plugins).length || g(fc.boolean)) r.plugins = plugins;
    const up = g(fc.nat, 2);
    if (up === 1) r.upstream = g(() => upstreamBody);
    if (up === 2 && upstreams.length) r.upstream_id = upstreams[g(fc.nat, upstreams.length - 1)].id;
    if (g(fc.boolean)) r.name = g(fc.string, { maxLength: 8 });
    routes.push(r);
  }
  if (nRoutes || g(fc.boolean)) doc.routes = routes;

  const nConsumers = g(fc.nat, 4);
  const consumers: Doc[] = [];
  for (let i = 0; i < nConsumers; i++) {
    const c: Doc = { username: `user_${i}` };
    const form = g(fc.nat, 4);
    let key: string | undefined;
    if (form === 1) key = `literal-key-${i}`;
    if (form === 2) key = `$env://${ENV}_${i}`;
    if (form === 3 && hasFile) key = `$secret://file/f0/c/key-${i}`;
    if (form === 4 && hasVault) key = `$secret://vault/s0/consumers/user_${i}/key${g(fc.boolean) ? '#2' : ''}`;
    if (key !== undefined) {
      c.plugins = { 'key-auth': { key } };
      if (key.startsWith('$')) refs.push({ path: `consumers[${i}].plugins.key-auth.key`, text: key });
    }
    if (g(fc.boolean)) c.desc = g(fc.string, { maxLength: 8 });
    consumers.push(c);
  }
  if (nConsumers || g(fc.boolean)) doc.consumers = consumers;

  if (g(fc.boolean)) doc.gateway = { workers: g(fc.constantFrom, 1, 2, 'auto'), access_log: g(fc.boolean), log_level: g(fc.constantFrom, 'info', 'silent'), drain_timeout: g(fc.constantFrom, 0, 1.5) };
  if (g(fc.boolean)) {
    const keyRef = g(fc.boolean);
    const key = keyRef ? `$ENV://${ENV}_ADMIN` : 'fuzz-admin-key';
    if (keyRef) refs.push({ path: 'admin.key', text: key });
    doc.admin = { key, allow: g(fc.subarray, ['127.0.0.0/8', '::1/128', '10.1.2.3'], { minLength: 1 }) };
  }
  // long lifetimes too: 40 days (refreshed at 80 %, past the longest timer Node keeps) and beyond
  if (g(fc.boolean)) doc.secret_cache = { ttl: g(fc.constantFrom, 0, 60, 40 * 86400, 1e12), neg_ttl: g(fc.constantFrom, 5, 1e12), stale_if_error: g(fc.constantFrom, 0, 86400, 1e12) };
  return { doc, refs };
});

// ---------------------------------------------------------------------------------------------
// mutations


const ODD_STRINGS = ['', ' ', '$env://', '$ENV://x y', '$secret://', '$secret://vault/nope/a/b', '$secret://vault/s0/x', '$secret://file/f0/missing', '$env://1BAD', '*', '/a/*/b', '/:(', '/a/:id(^\\d+', '/a/::b', 'a\nb', '"quoted"', '__proto__', 'constructor', '\u0000', '\u2028', '..', '/..', 'x'.repeat(5000), 'ümlaut', '127.0.0.1:99999', 'u0', 'r0', 'user_0'];
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<unknown>(null, 0, -1, 1.5, -0, 1e308, Infinity, -Infinity, NaN, 2 ** 53 + 1, true, false, [], {}, [null], { '': null }, ...ODD_STRINGS) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);
const oddKey = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'id', 'uri', 'uris', 'host', 'plugins', 'key-auth', 'nodes', 'upstream', 'a\nb', '', 'a.b', '0', 'username'), fc.string({ maxLength: 6 }));


interface Mutation {
  at: Path;
  op: 'delete' | 'replace' | 'add-key' | 'duplicate' | 'wrap';
}

/** A valid config with 1-3 mutations; `what` describes them (no values that matter: the config holds no real secret). */
const mutatedConfig: fc.Arbitrary<{ doc: Doc; what: Mutation[] }> = fc.tuple(validConfig, fc.gen()).map(([b, g]) => {
  const doc = structuredClone(b.doc);
  const what: Mutation[] = [];
  const n = g(fc.integer, { min: 1, max: 3 });
  for (let i = 0; i < n; i++) {
    const places: Path[] = [[], ...placesOf(doc)];
    const at = places[g(fc.nat, places.length - 1)];
    const op = g(fc.constantFrom, 'delete', 'replace', 'replace', 'add-key', 'duplicate', 'wrap') as Mutation['op'];
    what.push({ at, op });
    if (at.length === 0) {
      if (op === 'add-key') setOwn(doc, g(() => oddKey), g(() => oddValue));
      continue;
    }
    const parent = at.slice(0, -1).reduce<any>((o, k) => o[k], doc);
    const k = at[at.length - 1];
    if (op === 'delete') {
      if (Array.isArray(parent)) parent.splice(k as number, 1);
      else delete parent[k];
    } else if (op === 'replace') setOwn(parent, String(k), g(() => oddValue));
    else if (op === 'add-key') {
      const target = parent[k];
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) setOwn(target, g(() => oddKey), g(() => oddValue));
      else if (Array.isArray(target)) target.push(g(() => oddValue));
    } else if (op === 'duplicate') {
      if (Array.isArray(parent)) parent.push(structuredClone(parent[k as number]));
      else setOwn(parent, `${String(k)}_copy`, structuredClone(parent[k]));
    } else setOwn(parent, String(k), g(fc.boolean) ? [parent[k]] : { value: parent[k] });
  }
  return { doc, what };
});

// ---------------------------------------------------------------------------------------------
// checks

const TOP = new Set(['', 'gateway', 'admin', 'config_store', 'secret_cache', 'secret_policy', 'extensions', 'routes', 'upstreams', 'consumers', 'secrets', 'ssls']);

/** Issues are a non-empty list of {path, message}, each path under the document, each message one line. */
function checkIssues(issues: readonly ConfigIssue[], doc: Doc): void {
  assert.ok(Array.isArray(issues) && issues.length > 0, 'a refusal lists at least one issue');
  for (const i of issues) {
    assert.equal(typeof i.path, 'string');
    assert.ok(typeof i.message === 'string' && i.message.length > 0, `a message for ${i.path}`);
    // the first step of the path: `name`, `["odd key"]` or `[0]` (joinPath writes a key of digits like an index)
    const root = /^([A-Za-z_$][A-Za-z0-9_$-]*)|^\[("(?:[^"\\]|\\.)*")\]|^\[([0-9]+)\]/.exec(i.path);
    const first = i.path === '' ? '' : root?.[1] ?? root?.[3] ?? (root?.[2] !== undefined ? (JSON.parse(root[2]) as string) : undefined);
    assert.ok(first !== undefined && (TOP.has(first) || Object.prototype.hasOwnProperty.call(doc, first)), `issue path ${JSON.stringify(i.path)} is under the document`);
  }
  const text = formatIssues(issues);
  assert.equal(text.split('\n').length, issues.length, `one line per issue:\n${text.slice(0, 2000)}`);
}

function validate(doc: Doc): ReturnType<typeof validateConfig> {
  try {
    return validateConfig(doc, registry);
  } catch (err) {
    assert.fail(`validateConfig threw ${err instanceof Error ? `${err.name}: ${err.message}` : typeof err} instead of listing issues`);
  }
}

/** Plain (unfrozen) copy of a validated config, as the Admin API's GET gives it. */
const thaw = <T>(v: T): T => structuredClone(v);

// ---------------------------------------------------------------------------------------------

test('valid generated configs are accepted with exactly the references they hold, and their normalised form is accepted unchanged', async () => {
  fc.assert(
    fc.property(validConfig, (b) => {
      const r = validate(b.doc);
      assert.equal(r.issues, undefined, r.issues && formatIssues(r.issues));
      const got = r.refs!.map((s) => ({ path: s.path, text: s.ref.text })).sort((x, y) => (x.path < y.path ? -1 : 1));
      assert.deepEqual(got, [...b.refs].sort((x, y) => (x.path < y.path ? -1 : 1)));
      const again = validate(thaw(r.config!));
      assert.equal(again.issues, undefined, again.issues && formatIssues(again.issues));
      assert.deepEqual(again.config, r.config, 'normalising is a fixed point');
    }),
    params('config: valid configs accepted', 550),
  );
  await noEscapes();
});

test('mutated configs are accepted or refused with issues under the document, never a throw, and the input is left as it was', async () => {
  let refused = 0;
  let total = 0;
  fc.assert(
    fc.property(mutatedConfig, ({ doc }) => {
      total++;
      const before = structuredClone(doc);
      const r = validate(doc);
      assert.deepEqual(doc, before, 'validation does not modify the caller\'s document');
      if (r.issues) {
        refused++;
        checkIssues(r.issues, doc);
      } else assert.ok(Object.isFrozen(r.config) && Array.isArray(r.refs));
    }),
    params('config: mutated configs', 2000),
  );
  // the mutations must mostly break something, or this property tests little
  assert.ok(refused > total / 3, `${refused} of ${total} mutated configs refused`);
  await noEscapes();
});

test('YAML text of (mutated) configs with broken bytes parses to a document or fails with GH_ERR_CONFIG_PARSE', async () => {
  const noise = fc.constantFrom(':', '- ', '{', '}', '[', ']', '"', "'", '\t', '\n', '&a ', '*a', '!!binary ', '? ', '#', '%YAML 1.2\n', '---\n', '\u0000', '\ufeff', '|', '>', '<<: *a\n', '@', '`');
  const text = fc.tuple(fc.oneof(validConfig.map((b) => b.doc), mutatedConfig.map((m) => m.doc)), fc.array(fc.tuple(fc.nat(), noise), { maxLength: 4 })).map(([doc, edits]) => {
    let t = dump(doc, { skipInvalid: true, lineWidth: -1 });
    for (const [at, s] of edits) {
      const i = at % (t.length + 1);
      t = t.slice(0, i) + s + t.slice(i);
    }
    return t;
  });
  fc.assert(
    fc.property(text, (t) => {
      let doc: Doc;
      try {
        doc = parseConfigText(t, 'fuzz.yaml');
      } catch (err) {
        assert.ok(err instanceof GatehouseError && err.code === 'GH_ERR_CONFIG_PARSE', `a parse error, not ${err instanceof Error ? `${err.name}: ${err.message}` : typeof err}`);
        assert.match(err.message, /fuzz\.yaml/, 'the error names the file');
        return;
      }
      const r = validate(doc);
      if (r.issues) checkIssues(r.issues, doc);
    }),
    params('config: YAML text with broken bytes', 700),
  );
  await noEscapes();
});

test('the whole load (validate, resolve, compile) accepts every valid config and refuses others only with GH_ERR_CONFIG_INVALID', async () => {
  const input = fc.oneof(validConfig.map((b) => ({ doc: b.doc, valid: true })), mutatedConfig.map((m) => ({ doc: m.doc, valid: false })));
  let created = 0;
  await fc.assert(
    fc.asyncProperty(input, async ({ doc, valid }) => {
      let gw: Gateway | undefined;
      try {
        gw = await Gateway.create({ config: structuredClone(doc), logger: silentLogger(), watch: false });
        created++;
      } catch (err) {
        assert.ok(err instanceof GatehouseError, `a GatehouseError, not ${err instanceof Error ? `${err.name}: ${err.message}` : typeof err}`);
        assert.equal(valid, false, `a valid config is accepted: ${err.message}`);
        assert.equal(err.code, 'GH_ERR_CONFIG_INVALID', err.message);
        checkIssues(err.issues, doc);
      } finally {
        await gw?.close(0);
      }
    }),
    params('config: whole load pipeline', 420, { shrink: false }),
  );
  assert.ok(created > 0);
  await noEscapes();
});

test('found by the properties above: hosts a pool cannot open, nodes listed twice, weights past 2^53, and keys or values with line breaks are issues with paths, one line each', async () => {
  // before: Gateway.create rejected with a bare TypeError "Invalid URL" (no path), from undici
  for (const [nodes, issue] of [
    [[{ host: 'bad host', port: 80 }], 'upstreams[0].nodes[0].host: is not a valid host name or IP address'],
    [{ '1.2.3.256:80': 1 }, 'upstreams[0].nodes[0]: "1.2.3.256" is not a valid host name or IP address'],
    // before: a bare TypeError "duplicate upstream node 127.0.0.1:80" from the balancer
    [[{ host: '127.0.0.1', port: 80 }, { host: '127.0.0.1', port: 81 }, { host: '127.0.0.1', port: 80 }], 'upstreams[0].nodes[2]: is the same node as nodes[0]'],
    [{ '127.0.0.1:80': 1, '127.0.0.1': 2 }, 'upstreams[0].nodes[1]: is the same node as nodes[0]'],
    // before: a bare TypeError "weight must be a non-negative integer, got 4.7e+196" from the balancer
    [{ '127.0.0.1:80': 4.7e196 }, 'upstreams[0].nodes["127.0.0.1:80"]: must be <= 9007199254740991'],
    [[{ host: '127.0.0.1', port: 80, weight: 2 ** 53 }], 'upstreams[0].nodes[0].weight: must be <= 9007199254740991'],
  ] as const) {
    const err = await Gateway.create({ config: { upstreams: [{ id: 'u', nodes }], routes: [{ id: 'r', uri: '/', upstream_id: 'u' }] }, logger: silentLogger(), watch: false }).then(
      async (gw) => (await gw.close(0), undefined),
      (e: unknown) => e,
    );
    assert.ok(err instanceof GatehouseError && err.code === 'GH_ERR_CONFIG_INVALID', String(err));
    assert.deepEqual(err.issues.map((i) => `${i.path}: ${i.message}`), [issue]);
  }
  // before: the raw key or value was quoted as is, so a line break split one issue into two lines
  const lines = (doc: Doc) => formatIssues(validateConfig(doc, registry).issues ?? []).split('\n');
  assert.deepEqual(lines({ routes: [{ id: 'r', uri: '/', plugins: { 'a\nb': {} } }] }), ['routes[0].plugins["a\\nb"]: unknown plugin "a\\nb"']);
  assert.deepEqual(lines({ routes: [{ id: 'r', uri: '/', upstream_id: 'x\ny' }] }), ['routes[0].upstream_id: refers to unknown upstream "x\\ny"']);
  assert.deepEqual(lines({ admin: { allow: ['a\nb'] } }), ['admin.allow[0]: "a\\nb" is not an IP address or CIDR range']);
  // before: a second issue on the node itself, "port \n is out of range", echoed the value
  assert.deepEqual(lines({ upstreams: [{ id: 'u', nodes: [{ host: 'h', port: '\n' }] }] }), ['upstreams[0].nodes[0].port: must be an integer']);
  await noEscapes();
});

test('found by the pipeline property: a secret_cache.ttl over 31 days arms no timer Node cuts to 1 ms', async () => {
  // before the fix the refresh timer (due at 80 % of 40 days) overflowed: it fired every millisecond,
  // each time with a TimeoutOverflowWarning on stderr
  const gw = await Gateway.create({ config: { secret_cache: { ttl: 40 * 86400 }, secret_policy: { files: [dir] }, secrets: [{ id: 'file/f0', dir }], consumers: [{ username: 'u', plugins: { 'key-auth': { key: '$secret://file/f0/c/key-0' } } }] }, logger: silentLogger(), watch: false });
  try {
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    await gw.close(0);
  }
  await noEscapes();
});
