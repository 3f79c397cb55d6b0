// The Admin API path by path (docs/admin-api.md): every refused call, on both prefixes (/admin/
// and /apisix/admin/) and for every resource kind, answers its exact status and an error_msg
// saying what is wrong, and leaves the running config, the data plane and the secret backends as
// they were; no answer in the whole file carries a planted secret (every plaintext secret written
// here contains MARK; the last test scans every answer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminPathsFixture, ADMIN_KEY, FX_KEY, MiB, ONE, planted, PREFIXES, refuse, routeOfSize, scanAnswers, type Kind, type Refusal } from './helpers/admin-paths';

const fx = adminPathsFixture({ main: true });

// ---------------------------------------------------------------------------------------------
// 1. every refused call: exact status and error_msg, and nothing changes

const MISSING: Array<[Kind, string]> = [
  ['routes', 'nope'],
  ['upstreams', 'nope'],
  ['consumers', 'nope'],
  ['secrets', 'vault/nope'],
  ['ssls', 'nope'],
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
  { name: 'extra segments after a secret id (PUT)', method: 'PUT', path: 'secrets/vault/fxs/extra', body: fx.vaultResource('apisix', '******'), status: 404, msg: 'not found' },
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
  { name: 'a secret id in the body differing from the path', method: 'PUT', path: 'secrets/vault/fxs', body: { id: 'vault/other', ...fx.vaultResource('apisix', planted('other-token')) }, status: 400, msg: 'id "vault/other" in the body does not match "vault/fxs" in the path' },
  // PUT /consumers takes the username from the body: without one, the answer says it is missing
  { name: 'PUT on the consumer list without a username', method: 'PUT', path: 'consumers', body: { plugins: { 'key-auth': { key: planted('nameless') } } }, status: 400, msg: /^the username is missing/ },
  { name: 'PUT on the route list (no id)', method: 'PUT', path: 'routes', body: { uri: '/x' }, status: 400, msg: 'the id is missing from the path' },
  { name: 'PUT of a secret resource without its id', method: 'PUT', path: 'secrets/vault', body: fx.vaultResource('apisix', planted('no-id-token')), status: 400, msg: 'the id is missing from the path' },
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
    body: { ...fx.vaultResource('apisix', planted('both-token')), auth: { method: 'approle', role_id: 'r', secret_id: planted('both-secret-id') } },
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
    // two literal keys alike (a key held in a secret manager never refuses a write: see secret-values-data.test)
    name: "a consumer with another consumer's literal key",
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
  { name: '"******" as the token of a new vault resource', method: 'PUT', path: 'secrets/vault/news', body: fx.vaultResource('apisix', '******'), status: 400, msg: 'secrets/vault/news.token is "******" but no value is stored to keep' },
];

for (const p of PREFIXES) {
  test(`${p}: every refused call answers its status and error_msg, and changes nothing`, async (t) => {
    for (const c of refusals()) await t.test(`${c.method} ${p}${c.path} -> ${c.status}: ${c.name}`, () => refuse(fx.main, p, c));
  });
}


test('a body of exactly 1 MiB is taken (one byte more is the 413 above)', async () => {
  for (const p of PREFIXES) {
    const body = routeOfSize(MiB);
    assert.equal(Buffer.byteLength(body), MiB);
    const r = await fx.main.admin.call('PUT', `${p}routes/big`, { raw: body });
    assert.equal(r.status, 201, r.text.slice(0, 300));
    assert.equal(r.json.value.desc.length, MiB - '{"uri":"/big","desc":""}'.length);
    await fx.del(`${p}routes/big`);
  }
});

// ---------------------------------------------------------------------------------------------
// 2. a malformed percent-escape in the path is the client's error: 400 saying what is wrong,
// never a 500

test('a malformed percent-escape in the path is a client error (400) saying so, not a 500', async (t) => {
  for (const p of PREFIXES) {
    for (const [method, body] of [['GET'], ['PUT', { uri: '/bad' }], ['DELETE']] as const) {
      await t.test(`${method} ${p}routes/%E0%A4%A`, () => refuse(fx.main, p, { name: 'a malformed escape', method, path: 'routes/%E0%A4%A', body, status: 400, msg: 'the path has a malformed percent-encoding' }));
    }
  }
});

// ---------------------------------------------------------------------------------------------
// redaction over the whole file

scanAnswers({ answers: 500, masked: 50 });
