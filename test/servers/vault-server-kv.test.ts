// The Vault test server, wire format, KV engines and mounts: driven by the real node-vault client
// and by raw HTTP (undici) for exact wire checks.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { request } from 'undici';
import NodeVault = require('node-vault');
import { ENVELOPE_KEYS, INVALID_TOKEN, assertErrorBody, client, raw, rejectedStatus, useVaultServer, vault } from '../helpers/vault-server';

useVaultServer();

// ---------------------------------------------------------------------------------------------

describe('wire format', () => {
  test('answers with the envelope fields in Vault order, data keys sorted and HTML characters escaped as Go does', async () => {
    await raw(vault, 'POST', 'secret/data/wire/order', { body: { data: { zeta: 'a<b&c', alpha: '1' } } });
    const r = await raw(vault, 'GET', 'secret/data/wire/order');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(Object.keys(r.json), ENVELOPE_KEYS);
    assert.match(r.text, /^\{"request_id":"[0-9a-f-]{36}","lease_id":"","renewable":false,"lease_duration":0,"data":\{"data":\{"alpha":"1","zeta":"a\\u003cb\\u0026c"\},"metadata":\{"created_time":"[^"]+","custom_metadata":null,"deletion_time":"","destroyed":false,"version":1\}\},"wrap_info":null,"warnings":null,"auth":null,"mount_type":"kv"\}$/);
    assert.equal(r.json.data.data.zeta, 'a<b&c');
  });

  test('answers a request without a token with 403 permission denied', async () => {
    assertErrorBody(await raw(vault, 'GET', 'secret/data/wire/order', { token: null }), 403, ['permission denied']);
    assertErrorBody(await raw(vault, 'GET', 'no/such/mount', { token: null }), 403, ['permission denied']);
  });

  test('answers an unknown token with 403 naming both permission denied and invalid token', async () => {
    assertErrorBody(await raw(vault, 'GET', 'secret/data/wire/order', { token: 'hvs.nope' }), 403, [INVALID_TOKEN]);
  });

  test('accepts the token as Authorization: Bearer', async () => {
    const r = await raw(vault, 'GET', 'auth/token/lookup-self', { token: null, headers: { authorization: `Bearer ${vault.rootToken}` } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.data.policies, ['root']);
  });

  test('answers unknown paths with 404 and an empty errors list', async () => {
    assertErrorBody(await raw(vault, 'GET', 'no/such/mount'), 404, []);
    assertErrorBody(await raw(vault, 'GET', 'sys/no-such-endpoint'), 404, []);
    const outside = await request(`${vault.url}/ui/`, { headers: { 'x-vault-token': vault.rootToken } });
    assert.equal(outside.statusCode, 404);
    assert.equal(await outside.body.text(), '{"errors":[]}');
  });

  test('rejects a body that is not JSON with 400', async () => {
    const r = await raw(vault, 'POST', 'secret/data/wire/bad', { body: 'not json' });
    assert.equal(r.status, 400);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.match(r.json.errors[0], /^failed to parse JSON input/);
  });

  test('treats PUT and POST as the same write', async () => {
    assert.equal((await raw(vault, 'PUT', 'secret/data/wire/synonym', { body: { data: { v: 'put' } } })).json.data.version, 1);
    assert.equal((await raw(vault, 'POST', 'secret/data/wire/synonym', { body: { data: { v: 'post' } } })).json.data.version, 2);
    assert.equal((await raw(vault, 'GET', 'secret/data/wire/synonym')).json.data.data.v, 'post');
  });

  test('lists with the LIST verb and with GET ?list=true, including through node-vault', async () => {
    await raw(vault, 'POST', 'secret/data/listing/a', { body: { data: { x: '1' } } });
    await raw(vault, 'POST', 'secret/data/listing/sub/b', { body: { data: { x: '1' } } });
    const viaVerb = await raw(vault, 'LIST', 'secret/metadata/listing');
    assert.equal(viaVerb.status, 200, viaVerb.text);
    assert.deepEqual(viaVerb.json.data.keys, ['a', 'sub/']);
    assert.deepEqual((await raw(vault, 'GET', 'secret/metadata/listing/?list=true')).json.data.keys, ['a', 'sub/']);
    assert.deepEqual((await client(vault).list('secret/metadata/listing')).data.keys, ['a', 'sub/']);
    const c = NodeVault({ endpoint: vault.url, token: vault.rootToken, noCustomHTTPVerbs: true });
    assert.deepEqual((await c.list('secret/metadata/listing/sub')).data.keys, ['b']);
    assertErrorBody(await raw(vault, 'LIST', 'secret/metadata/nothing-here'), 404, []);
  });

  test('serves a LIST sent with a chunked body on a kept-alive connection between other requests', async () => {
    await raw(vault, 'POST', 'secret/data/chunked/a', { body: { data: { x: '1' } } });
    const r = await request(`${vault.url}/v1/secret/metadata/chunked`, {
      method: 'LIST' as 'GET',
      headers: { 'x-vault-token': vault.rootToken },
      body: Readable.from([Buffer.from('{"LIST '), Buffer.from('x":1}')]),
    });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(JSON.parse(await r.body.text()).data.keys, ['a']);
    const after = await raw(vault, 'GET', 'secret/data/chunked/a');
    assert.equal(after.status, 200);
  });
});

describe('KV v1', () => {
  before(async () => {
    assert.equal((await raw(vault, 'POST', 'sys/mounts/kv1', { body: { type: 'kv', options: { version: '1' } } })).status, 204);
  });

  test('writes with 204 and reads the fields back with the mount default lease', async () => {
    const w = await raw(vault, 'POST', 'kv1/app/db', { body: { password: 's3cr3t', port: 5432 } });
    assert.equal(w.status, 204);
    assert.equal(w.text, '');
    const r = await raw(vault, 'GET', 'kv1/app/db');
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.json), ENVELOPE_KEYS);
    assert.equal(r.json.lease_id, '');
    assert.equal(r.json.renewable, false);
    assert.equal(r.json.lease_duration, 2764800);
    assert.deepEqual(r.json.data, { password: 's3cr3t', port: 5432 });
    assert.equal(r.json.mount_type, 'kv');
  });

  test('takes lease_duration from a ttl field in the data', async () => {
    await client(vault).write('kv1/app/short', { key: 'v', ttl: '1h' });
    const r = await client(vault).read('kv1/app/short');
    assert.equal(r.lease_duration, 3600);
    assert.equal(r.data.ttl, '1h');
    await raw(vault, 'POST', 'kv1/app/seconds', { body: { key: 'v', ttl: 90 } });
    assert.equal((await raw(vault, 'GET', 'kv1/app/seconds')).json.lease_duration, 90);
  });

  test('lists keys and folders, deletes with 204, and answers a missing secret with 404 {"errors":[]}', async () => {
    assert.deepEqual((await client(vault).list('kv1/app')).data.keys, ['db', 'seconds', 'short']);
    assert.deepEqual((await client(vault).list('kv1')).data.keys, ['app/']);
    assert.equal((await raw(vault, 'DELETE', 'kv1/app/seconds')).status, 204);
    assertErrorBody(await raw(vault, 'GET', 'kv1/app/seconds'), 404, []);
    const e = await rejectedStatus(client(vault).read('kv1/app/seconds'));
    assert.equal(e.status, 404);
    assert.equal(e.message, 'Status 404');
  });
});

describe('KV v2', () => {
  test('keeps versions and serves ?version=N and the metadata', async () => {
    const c = client(vault);
    assert.equal((await c.write('secret/data/v2/versions', { data: { k: 'one' } })).data.version, 1);
    const w2 = await raw(vault, 'POST', 'secret/data/v2/versions', { body: { data: { k: 'two' } } });
    assert.equal(w2.status, 200);
    assert.deepEqual(Object.keys(w2.json.data), ['created_time', 'custom_metadata', 'deletion_time', 'destroyed', 'version']);
    assert.equal(w2.json.data.version, 2);
    const latest = await c.read('secret/data/v2/versions');
    assert.equal(latest.data.data.k, 'two');
    assert.equal(latest.data.metadata.version, 2);
    assert.equal(latest.lease_duration, 0);
    const first = await c.read('secret/data/v2/versions?version=1');
    assert.equal(first.data.data.k, 'one');
    assert.equal(first.data.metadata.version, 1);
    assertErrorBody(await raw(vault, 'GET', 'secret/data/v2/versions?version=7'), 404, []);
    const meta = await c.read('secret/metadata/v2/versions');
    assert.equal(meta.data.current_version, 2);
    assert.equal(meta.data.oldest_version, 1);
    assert.deepEqual(Object.keys(meta.data.versions), ['1', '2']);
    assertErrorBody(await raw(vault, 'GET', 'secret/data/v2/never-written'), 404, []);
  });

  test('check-and-set: cas 0 only creates and a stale cas is refused with 400', async () => {
    assert.equal((await raw(vault, 'POST', 'secret/data/v2/cas', { body: { options: { cas: 0 }, data: { a: '1' } } })).status, 200);
    assertErrorBody(await raw(vault, 'POST', 'secret/data/v2/cas', { body: { options: { cas: 0 }, data: { a: '2' } } }), 400, ['check-and-set parameter did not match the current version']);
    assert.equal((await raw(vault, 'POST', 'secret/data/v2/cas', { body: { options: { cas: 1 }, data: { a: '2' } } })).json.data.version, 2);
  });

  test('refuses a write without data with 400 no data provided', async () => {
    assertErrorBody(await raw(vault, 'POST', 'secret/data/v2/empty', { body: { options: {} } }), 400, ['no data provided']);
  });

  test('answers a soft-deleted latest version with 404 and a full envelope, and undelete restores it', async () => {
    await raw(vault, 'POST', 'secret/data/v2/soft', { body: { data: { k: 'v1' } } });
    await raw(vault, 'POST', 'secret/data/v2/soft', { body: { data: { k: 'v2' } } });
    assert.equal((await raw(vault, 'DELETE', 'secret/data/v2/soft')).status, 204);
    const r = await raw(vault, 'GET', 'secret/data/v2/soft');
    assert.equal(r.status, 404);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(Object.keys(r.json), ENVELOPE_KEYS);
    assert.equal(r.json.data.data, null);
    assert.equal(r.json.data.metadata.version, 2);
    assert.equal(r.json.data.metadata.destroyed, false);
    assert.match(r.json.data.metadata.deletion_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.equal((await raw(vault, 'GET', 'secret/data/v2/soft?version=1')).json.data.data.k, 'v1');
    assert.equal((await raw(vault, 'POST', 'secret/undelete/v2/soft', { body: { versions: [2] } })).status, 204);
    assert.equal((await raw(vault, 'GET', 'secret/data/v2/soft')).json.data.data.k, 'v2');
    assert.equal((await raw(vault, 'POST', 'secret/delete/v2/soft', { body: { versions: [1] } })).status, 204);
    assert.equal((await raw(vault, 'GET', 'secret/data/v2/soft?version=1')).status, 404);
    assertErrorBody(await raw(vault, 'POST', 'secret/delete/v2/soft', { body: {} }), 400, ['no version number provided']);
  });

  test('answers a destroyed version with 404, destroyed true and no data; node-vault rejects it', async () => {
    await raw(vault, 'POST', 'secret/data/v2/destroy', { body: { data: { k: 'gone' } } });
    await raw(vault, 'POST', 'secret/data/v2/destroy', { body: { data: { k: 'kept' } } });
    assert.equal((await raw(vault, 'PUT', 'secret/destroy/v2/destroy', { body: { versions: [1] } })).status, 204);
    const r = await raw(vault, 'GET', 'secret/data/v2/destroy?version=1');
    assert.equal(r.status, 404);
    assert.deepEqual(r.json.data, { data: null, metadata: { created_time: r.json.data.metadata.created_time, custom_metadata: null, deletion_time: '', destroyed: true, version: 1 } });
    assert.doesNotMatch(r.text, /gone/);
    assert.equal((await rejectedStatus(client(vault).read('secret/data/v2/destroy?version=1'))).status, 404);
    assert.equal((await raw(vault, 'GET', 'secret/data/v2/destroy')).json.data.data.k, 'kept');
  });

  test('answers a v1-style read of a v2 mount with 404 carrying only the versioned-engine warning', async () => {
    const r = await raw(vault, 'GET', 'secret/v2/versions');
    assert.equal(r.status, 404);
    assert.deepEqual(Object.keys(r.json), ENVELOPE_KEYS);
    assert.equal(r.json.data, null);
    assert.equal(r.json.errors, undefined);
    assert.match(r.json.warnings[0], /^Invalid path for a versioned K\/V secrets engine/);
  });

  test('keeps at most max_versions versions and deletes all of them with the metadata', async () => {
    assert.equal((await raw(vault, 'POST', 'secret/metadata/v2/pruned', { body: { max_versions: 2, custom_metadata: { owner: 'team-a' } } })).status, 204);
    for (const v of ['1', '2', '3']) await raw(vault, 'POST', 'secret/data/v2/pruned', { body: { data: { v } } });
    const meta = (await raw(vault, 'GET', 'secret/metadata/v2/pruned')).json.data;
    assert.deepEqual(Object.keys(meta.versions), ['2', '3']);
    assert.equal(meta.oldest_version, 2);
    assert.equal((await raw(vault, 'GET', 'secret/data/v2/pruned')).json.data.metadata.custom_metadata.owner, 'team-a');
    assertErrorBody(await raw(vault, 'GET', 'secret/data/v2/pruned?version=1'), 404, []);
    assert.equal((await raw(vault, 'DELETE', 'secret/metadata/v2/pruned')).status, 204);
    assertErrorBody(await raw(vault, 'GET', 'secret/data/v2/pruned'), 404, []);
  });

  test('merges a PATCH into a new version (node-vault update)', async () => {
    await raw(vault, 'POST', 'secret/data/v2/patch', { body: { data: { a: '1', b: '2' } } });
    const r = await client(vault).update('secret/data/v2/patch', { data: { b: null, c: '3' } });
    assert.equal(r.data.version, 2);
    assert.deepEqual((await raw(vault, 'GET', 'secret/data/v2/patch')).json.data.data, { a: '1', c: '3' });
  });
});

describe('mounts', () => {
  test('enables KV v1 and v2 engines and lists them in sys/mounts', async () => {
    assert.equal((await raw(vault, 'POST', 'sys/mounts/mounts-v2', { body: { type: 'kv', options: { version: '2' } } })).status, 204);
    await client(vault).mount({ mount_point: 'mounts-v1', type: 'kv' });
    const mounts = await client(vault).mounts();
    assert.equal(mounts.data['mounts-v2/'].type, 'kv');
    assert.deepEqual(mounts.data['mounts-v2/'].options, { version: '2' });
    assert.equal(mounts.data['mounts-v1/'].options, null);
    assert.equal(mounts.data['secret/'].options.version, '2');
    assert.equal(mounts.data['sys/'].type, 'system');
    assertErrorBody(await raw(vault, 'POST', 'sys/mounts/mounts-v2', { body: { type: 'kv' } }), 400, ['path is already in use at mounts-v2/']);
    assertErrorBody(await raw(vault, 'POST', 'sys/mounts/mounts-v2/inner', { body: { type: 'kv' } }), 400, ['path is already in use at mounts-v2/']);
  });

  test('reports the owning mount and its KV version for any sub-path in sys/internal/ui/mounts', async () => {
    const v2 = await raw(vault, 'GET', 'sys/internal/ui/mounts/mounts-v2/team/app');
    assert.equal(v2.status, 200);
    assert.equal(v2.json.data.path, 'mounts-v2/');
    assert.equal(v2.json.data.type, 'kv');
    assert.deepEqual(v2.json.data.options, { version: '2' });
    const v1 = await raw(vault, 'GET', 'sys/internal/ui/mounts/mounts-v1');
    assert.equal(v1.json.data.path, 'mounts-v1/');
    assert.equal(v1.json.data.options, null);
    assertErrorBody(await raw(vault, 'GET', 'sys/internal/ui/mounts/nomount/x'), 403, [`preflight capability check returned 403, please ensure client's policies grant access to path "nomount/x/"`]);
  });

  test('refuses an unknown engine type with 400', async () => {
    assertErrorBody(await raw(vault, 'POST', 'sys/mounts/transit', { body: { type: 'transit' } }), 400, ['plugin not found in the catalog: transit']);
  });
});
