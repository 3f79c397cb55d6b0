// GET /admin/openapi.json against a real gateway: it needs the admin key, is valid
// OpenAPI 3.1 to a third-party validator (@seriousme/openapi-schema-validator: the official OAS
// 3.1 schema, every $ref resolved), describes the plugins registered at run time (a draft-07
// extension included), holds no config value, and matches the router both ways:
// - every documented method and path, called with a valid request, succeeds with a documented
//   status and an answer its response schema accepts;
// - no (method, path) outside the document succeeds, over a grid of methods and paths built from
//   the router's kinds, APISIX's kinds Gatehouse lacks, and deeper or odd paths.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import type { ValidateFunction } from 'ajv';
import { definePlugin } from '../core/sdk';
import type { Extension } from '../core/contracts';
import { builtinExtensions } from '../core/extensions/builtins';
import { adminOpenApi, extensionsOf } from '../core/admin/openapi';
import { ADMIN_KINDS, ADMIN_PREFIXES, OPENAPI_DOCUMENT } from '../core/admin/paths';
import { makeSslPki } from './helpers/ssl-pki';
import { bootGateway, startUpstream, tempDir, type TestGateway, type Upstream } from './helpers/harness';
import { plantCanary } from './helpers/leak-tap';
import { componentsAjv, legacySchema, legacySamples, matchPath } from './helpers/openapi';

type Json = Record<string, any>;

const KEY_ENV = 'GH_OPENAPI_TEST_KEY';
const ADMIN_KEY = `planted-openapi-admin-${randomBytes(6).toString('hex')}`;
const VAULT_TOKEN = `hvs.planted-openapi-${randomBytes(6).toString('hex')}`;

/** An extension with a draft-07 schema, known to the gateway only at run time. */
const legacy: Extension = { kind: 'plugin', plugin: definePlugin({ name: 'legacy', version: '1.0.0', priority: 1, schema: legacySchema, create: () => ({}) }) };

/** APISIX resource kinds Gatehouse does not have: the router must not answer them, nor the document list them. */
const ABSENT_KINDS = ['services', 'plugin_configs', 'global_rules', 'consumer_groups', 'ssls', 'protos', 'stream_routes', 'plugin_metadata', 'nosuch'];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

let up: Upstream;
let g: TestGateway;
let admin: string;
let dir: string;

/** Resource bodies by kind (routes, upstreams, consumers) and by secret manager. */
let FIXTURE: Record<string, Json>;
/** The id field of each kind. */
const ID_FIELD: Record<string, string> = { routes: 'id', upstreams: 'id', consumers: 'username', ssls: 'id' };
/** A writable attribute of each resource, for SubPath PATCH: routes take a nested one. */
const ATTRIBUTE: Record<string, string> = { routes: 'labels/probe', upstreams: 'desc', consumers: 'desc', ssls: 'desc', file: 'dir', aws: 'region', vault: 'prefix' };

before(async () => {
  process.env[KEY_ENV] = ADMIN_KEY;
  plantCanary('admin-openapi vault token', VAULT_TOKEN);
  up = await startUpstream();
  dir = tempDir();
  FIXTURE = {
    upstreams: { id: 'ufx1', desc: 'd', nodes: { [up.node]: 1 } },
    routes: { id: 'rfx1', uri: '/rfx1', desc: 'd', labels: { probe: 'x' }, upstream_id: 'ufx1', plugins: { legacy: { port: 80 } } },
    consumers: { username: 'cfx1', desc: 'd' },
    ssls: { id: 'sslfx1', desc: 'd', ...makeSslPki().leaf(['fx.example.test']), snis: ['fx.example.test'] },
    file: { dir },
    aws: { region: 'us-east-1', endpoint_url: 'http://127.0.0.1:1' },
    vault: { uri: 'http://127.0.0.1:1', prefix: 'kv', kv_version: 1, token: VAULT_TOKEN },
  };
  g = await bootGateway(
    {
      admin: { key: `$env://${KEY_ENV}` },
      secret_policy: { files: [dir] },
      upstreams: [FIXTURE.upstreams],
      routes: [FIXTURE.routes],
      consumers: [FIXTURE.consumers],
      ssls: [FIXTURE.ssls],
      secrets: ['file', 'aws', 'vault'].map((m) => ({ id: `${m}/sfx1`, ...FIXTURE[m] })),
    },
    { extensions: [legacy], adminListen: '127.0.0.1:0' },
  );
  admin = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
});
after(async () => {
  await g?.close();
  await up?.close();
});

interface Answer {
  status: number;
  type: string;
  text: string;
  json: any;
}

async function call(method: string, path: string, o: { body?: unknown; key?: string | null } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (o.key !== null) headers['x-api-key'] = o.key ?? ADMIN_KEY;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const r = await request(`${admin}${path}`, { method: method as Dispatcher.HttpMethod, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  const text = await r.body.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, type: String(r.headers['content-type'] ?? ''), text, json };
}

const fetchDoc = async (prefix = '/admin/'): Promise<Json> => {
  const r = await call('GET', `${prefix}${OPENAPI_DOCUMENT}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
};

test('GET /admin/openapi.json needs the admin key and answers application/json on both prefixes', async () => {
  for (const prefix of ADMIN_PREFIXES) {
    const path = `${prefix}${OPENAPI_DOCUMENT}`;
    for (const key of [null, 'wrong-key']) {
      const r = await call('GET', path, { key });
      assert.equal(r.status, 401, `${path} with key ${key}`);
      assert.deepEqual(r.json, { error_msg: 'failed to check token' });
      assert.ok(!r.text.includes('"openapi"'));
    }
    const ok = await call('GET', path);
    assert.equal(ok.status, 200);
    assert.equal(ok.type, 'application/json');
    assert.equal(ok.json.openapi, '3.1.0');
    // only GET
    for (const method of ['PUT', 'POST', 'DELETE', 'PATCH']) assert.equal((await call(method, path, { body: {} })).status, 405, `${method} ${path}`);
  }
  assert.deepEqual(await fetchDoc('/apisix/admin/'), await fetchDoc('/admin/'));
});

test('the served document is valid OpenAPI 3.1 to @seriousme/openapi-schema-validator, every $ref resolving', async () => {
  const { Validator } = await import('@seriousme/openapi-schema-validator');
  const doc = await fetchDoc();
  const validator = new Validator();
  const result = await validator.validate(doc);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  assert.equal(validator.version, '3.1');
  // fully dereferenced: nothing left to point elsewhere
  const resolved = validator.resolveRefs();
  const refs: string[] = [];
  const walk = (v: unknown, at: string, depth: number): void => {
    if (depth > 40 || v === null || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref') refs.push(`${at}: ${String(x)}`);
      walk(x, `${at}/${k}`, depth + 1);
    }
  };
  walk(resolved, '', 0);
  assert.deepEqual(refs, []);
  // the validator does say no to a broken document (a $ref to nowhere, a missing info)
  const broken = structuredClone(doc);
  broken.paths['/admin/routes'].get.responses['200'].content['application/json'].schema = { $ref: '#/components/schemas/Nowhere' };
  assert.equal((await new Validator().validate(broken)).valid, false);
  const noInfo = structuredClone(doc);
  delete noInfo.info;
  assert.equal((await new Validator().validate(noInfo)).valid, false);
});

test('the document describes the registered extensions, built-ins and the loaded one, and holds no config value', async () => {
  const r = await call('GET', `/admin/${OPENAPI_DOCUMENT}`);
  const doc: Json = JSON.parse(r.text);
  // exactly what the generator makes for this gateway's registry
  assert.deepEqual(JSON.parse(r.text), adminOpenApi(extensionsOf([...builtinExtensions, legacy])));
  assert.ok(doc.components.schemas['plugin.legacy']);
  assert.deepEqual(doc.components.schemas.RoutePlugins.properties.legacy, { $ref: '#/components/schemas/plugin.legacy' });
  // schemas only: not the admin key, a secret field, or any value of the running config
  for (const value of [ADMIN_KEY, VAULT_TOKEN, dir, up.node, 'rfx1', 'ufx1', 'cfx1', 'sfx1']) assert.ok(!r.text.includes(value), `the document holds ${value === ADMIN_KEY || value === VAULT_TOKEN ? 'a secret' : JSON.stringify(value)}`);
  assert.deepEqual(doc.components.securitySchemes.adminKey, { type: 'apiKey', in: 'header', name: 'X-API-KEY', description: 'The admin key (admin.key)' });
});

test('the loaded draft-07 plugin schema, as served, accepts exactly the configs the Admin API accepts', async () => {
  const doc = await fetchDoc();
  const check = componentsAjv(doc).compile({ $ref: '#/components/schemas/plugin.legacy' });
  const verdicts: boolean[] = [];
  for (const sample of legacySamples) {
    const r = await call('PUT', '/admin/routes/legacy-probe', { body: { uri: '/legacy-probe', plugins: { legacy: sample } } });
    assert.ok(r.status === 200 || r.status === 201 || r.status === 400, r.text);
    const accepted = r.status !== 400;
    verdicts.push(accepted);
    assert.equal(check(structuredClone(sample)), accepted, `${JSON.stringify(sample)}: the Admin API ${accepted ? 'accepts' : 'refuses'} it (${r.text})`);
  }
  assert.ok(verdicts.includes(true) && verdicts.includes(false));
  assert.equal((await call('DELETE', '/admin/routes/legacy-probe')).status, 200);
});

// ---------------------------------------------------------------------------------------------
// the document against the router

/** The kind and concrete parts of a documented path: `/admin/secrets/vault/{id}/refresh`. */
function parse(template: string): { prefix: string; segs: string[]; kind: string; manager?: string } {
  const prefix = ADMIN_PREFIXES.find((p) => template.startsWith(p)) ?? '';
  const segs = template.slice(prefix.length).split('/');
  return { prefix, segs, kind: segs[0], manager: segs[0] === 'secrets' && segs.length > 2 ? segs[1] : undefined };
}

/** The stored body of a fixture (`fixtureKey`: a kind, or a secret manager), renamed to `id`. */
function bodyOf(fixtureKey: string, id?: string): Json {
  const body = structuredClone(FIXTURE[fixtureKey]);
  const field = ID_FIELD[fixtureKey];
  if (field && id !== undefined) body[field] = id;
  // another SSL resource serves a name of its own (two claiming one name are refused)
  if (fixtureKey === 'ssls' && id !== FIXTURE.ssls.id) body.snis = [`n${++fresh}.example.test`];
  return body;
}

/** The value at a `/` path of an object. */
const valueAt = (o: Json, path: string): unknown => path.split('/').reduce<any>((v, k) => v?.[k], o);

let fresh = 0;

/**
 * A valid request for one documented operation: its path with the fixtures' ids, its body. A
 * DELETE gets a resource of its own, created first (deleting a fixture would change what other
 * calls see, and the upstream fixture is in use).
 */
async function instantiate(template: string, method: string): Promise<{ path: string; body?: unknown }> {
  if (!template.startsWith('/admin/') && !template.startsWith('/apisix/admin/')) return { path: template };
  const { prefix, segs, kind, manager } = parse(template);
  const fixtureKey = manager ?? kind;
  let id = kind === 'consumers' ? 'cfx1' : kind === 'plugins' ? 'legacy' : kind === 'secrets' ? 'sfx1' : FIXTURE[kind]?.id;
  if (method === 'delete') {
    id = `del${++fresh}`;
    const where = manager ? `${prefix}secrets/${manager}/${id}` : `${prefix}${kind}/${id}`;
    const made = await call('PUT', where, { body: bodyOf(fixtureKey, id) });
    assert.equal(made.status, 201, `${where}: ${made.text}`);
  }
  const path = segs.map((s) => (s === '{path}' ? ATTRIBUTE[fixtureKey] : s.startsWith('{') ? id : s)).join('/');
  let body: unknown;
  if (segs.at(-1) === '{path}') body = valueAt(FIXTURE[fixtureKey], ATTRIBUTE[fixtureKey]);
  else if (method === 'put' || method === 'patch') body = bodyOf(fixtureKey, segs.length > 1 || kind === 'consumers' ? id : undefined);
  else if (method === 'post' && segs.length === 1) {
    body = bodyOf(fixtureKey);
    delete (body as Json)[ID_FIELD[kind]];
  }
  return { path: `${prefix}${path}`, body };
}

test('every documented method and path succeeds with a valid request, answering a documented status and schema', async () => {
  const doc = await fetchDoc();
  const ajv = componentsAjv(doc);
  const compiled = new Map<string, ValidateFunction>();
  const schemaCheck = (schema: unknown) => {
    const k = JSON.stringify(schema);
    if (!compiled.has(k)) compiled.set(k, ajv.compile(schema));
    return compiled.get(k)!;
  };
  let calls = 0;
  for (const [template, item] of Object.entries(doc.paths as Json)) {
    for (const [method, op] of Object.entries(item as Json)) {
      const { path, body } = await instantiate(template, method);
      const r = await call(method.toUpperCase(), path, { body, key: op.security?.length === 0 ? null : undefined });
      calls++;
      const what = `${method.toUpperCase()} ${path} (${template})`;
      assert.ok(r.status >= 200 && r.status < 300, `${what}: ${r.status} ${r.text}`);
      const response = op.responses[String(r.status)];
      assert.ok(response, `${what}: ${r.status} is not a documented answer`);
      if (method === 'head') continue;
      const [mediaType, { schema }] = Object.entries(response.content as Json)[0] as [string, Json];
      assert.ok(r.type.startsWith(mediaType), `${what}: content-type ${r.type}, documented ${mediaType}`);
      if (mediaType !== 'application/json') continue;
      const check = schemaCheck(schema);
      assert.ok(check(r.json), `${what}: the answer does not match its schema: ${JSON.stringify(check.errors)}`);
    }
  }
  // both prefixes, every kind, /metrics: well over what a handful of paths would make
  assert.ok(calls > 80, `${calls} operations`);
});

/** Paths to try under each prefix: every kind of the router and of APISIX, at each depth, odd ones too. */
function gridPaths(): string[] {
  const managers = ['file', 'aws', 'vault'];
  const out = new Set<string>(['', OPENAPI_DOCUMENT, `${OPENAPI_DOCUMENT}/x`, 'metrics', 'secrets/env/x', 'secrets/nosuch/sfx1', 'plugins/legacy', 'plugins/legacy/x']);
  for (const kind of [...ADMIN_KINDS, ...ABSENT_KINDS]) {
    const id = kind === 'consumers' ? 'cfx1' : (FIXTURE[kind]?.id ?? 'x');
    for (const tail of ['', `/${id}`, `/${id}/desc`, `/${id}/labels/probe`, `/${id}/refresh`]) out.add(`${kind}${tail}`);
  }
  for (const m of managers) for (const tail of ['', '/sfx1', '/sfx1/refresh', `/sfx1/${ATTRIBUTE[m]}`, '/sfx1/refresh/x']) out.add(`secrets/${m}${tail}`);
  return [...out];
}

test('no method and path outside the document succeeds, even with a valid body', async () => {
  const doc = await fetchDoc();
  const paths = [...ADMIN_PREFIXES.flatMap((p) => gridPaths().map((x) => `${p}${x}`)), '/metrics/x', '/', `/${OPENAPI_DOCUMENT}`, '/admin', '/apisix', '/apisix/admin'];
  let tried = 0;
  const undocumented: string[] = [];
  for (const path of paths) {
    const { kind, manager } = parse(path);
    const fixtureKey = manager ?? (FIXTURE[kind] ? kind : 'routes');
    for (const method of METHODS) {
      if ((matchPath(doc, path)?.item as Json | undefined)?.[method.toLowerCase()]) continue; // documented: the test above
      // what would make the call succeed if it were an endpoint: the resource's body, with and without its id
      const bodies: unknown[] = method === 'POST' || method === 'PUT' || method === 'PATCH' ? [bodyOf(fixtureKey), { ...bodyOf(fixtureKey), [ID_FIELD[kind] ?? 'id']: undefined }] : [undefined];
      for (const body of bodies) {
        const r = await call(method, path, { body });
        tried++;
        if (r.status >= 200 && r.status < 300) undocumented.push(`${method} ${path} -> ${r.status}`);
      }
    }
  }
  assert.deepEqual(undocumented, [], 'the Admin API answers these, but the document does not list them');
  assert.ok(tried > 1000, `${tried} calls`);
});
