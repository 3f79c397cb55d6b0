// The Vault test server, driven by the real node-vault client and by raw HTTP (undici) for exact wire checks.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import NodeVault = require('node-vault');
import { startVaultServer, type VaultServer } from './vault';

// ---------------------------------------------------------------------------------------------
// helpers

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

interface RawOpts {
  /** default: the root token; null: none */
  token?: string | null;
  body?: unknown;
  ns?: string;
  headers?: Record<string, string>;
}

/** One raw HTTP request to the server. */
async function raw(server: VaultServer, method: string, path: string, o: RawOpts = {}): Promise<Raw> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  const token = o.token === undefined ? server.rootToken : o.token;
  if (token !== null) headers['x-vault-token'] = token;
  if (o.ns) headers['x-vault-namespace'] = o.ns;
  let body: string | undefined;
  if (o.body !== undefined) {
    body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
    headers['content-type'] ??= 'application/json';
  }
  const r = await request(`${server.url}/v1/${path}`, { method: method as 'GET', headers, body });
  const text = await r.body.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, headers: r.headers, text, json };
}

function client(server: VaultServer, opts: { token?: string; namespace?: string } = {}): NodeVault.client {
  return NodeVault({ endpoint: server.url, token: opts.token ?? server.rootToken, namespace: opts.namespace, requestOptions: { timeout: 5000 } });
}

/** The status of a rejected node-vault call (fails the test if it resolved). */
async function rejectedStatus(p: Promise<unknown>): Promise<{ status: number | undefined; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { response?: { statusCode?: number }; message: string };
    return { status: err.response?.statusCode, message: err.message };
  }
  assert.fail('expected the call to be rejected');
}

const ENVELOPE_KEYS = ['request_id', 'lease_id', 'renewable', 'lease_duration', 'data', 'wrap_info', 'warnings', 'auth', 'mount_type'];
const INVALID_TOKEN = '2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n';

function assertErrorBody(r: Raw, status: number, errors: string[]): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(r.text), { errors });
  assert.equal(r.text, JSON.stringify({ errors }));
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function jwt(claims: Record<string, unknown>, key: KeyObject, alg: 'RS256' | 'ES256'): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc({ alg, typ: 'JWT', kid: 'test' })}.${enc(claims)}`;
  const sig = alg === 'RS256' ? sign('sha256', Buffer.from(input), key) : sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

const policy = (s: VaultServer, name: string, text: string, ns?: string) => raw(s, 'PUT', `sys/policies/acl/${name}`, { body: { policy: text }, ns });
const createToken = async (s: VaultServer, body: Record<string, unknown>, ns?: string): Promise<string> => {
  const r = await raw(s, 'POST', 'auth/token/create', { body, ns });
  assert.equal(r.status, 200, r.text);
  return r.json.auth.client_token;
};

let vault: VaultServer;
before(async () => {
  vault = await startVaultServer();
});
after(async () => {
  await vault?.close();
});

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

describe('policies', () => {
  before(async () => {
    await raw(vault, 'POST', 'sys/mounts/pol', { body: { type: 'kv', options: { version: '2' } } });
    for (const p of ['team/app/key', 'team/other/key', 'team/app/deny-me', 'shared/x']) await raw(vault, 'POST', `pol/data/${p}`, { body: { data: { v: p } } });
  });

  test('a token reads inside its HCL policy and gets 403 permission denied outside it', async () => {
    const r = await policy(
      vault,
      'app-read',
      `# comment
path "pol/data/team/app/*" {
  capabilities = ["read"]
}
// another comment
path "pol/metadata/team/*" { capabilities = ["list"] }
`,
    );
    assert.equal(r.status, 204, r.text);
    const token = await createToken(vault, { policies: ['app-read'] });
    const c = client(vault, { token });
    assert.equal((await c.read('pol/data/team/app/key')).data.data.v, 'team/app/key');
    assertErrorBody(await raw(vault, 'GET', 'pol/data/team/other/key', { token }), 403, ['permission denied']);
    assertErrorBody(await raw(vault, 'POST', 'pol/data/team/app/key', { token, body: { data: { v: 'x' } } }), 403, ['permission denied']);
    assert.deepEqual((await c.list('pol/metadata/team')).data.keys, ['app/', 'other/']);
    assert.equal((await rejectedStatus(c.list('pol/metadata'))).status, 403);
    assert.equal((await c.tokenLookupSelf()).data.policies.join(','), 'app-read,default');
  });

  test('applies + segment wildcards, the most specific rule and deny', async () => {
    await policy(
      vault,
      'wild',
      `path "pol/data/+/+/key" { capabilities = ["read"] }
path "pol/data/team/app/deny-me" { capabilities = ["deny"] }
path "pol/data/shared/*" { capabilities = ["create", "update"] }
path "pol/data/shared/x" { capabilities = ["read"] }`,
    );
    const token = await createToken(vault, { policies: ['wild'] });
    assert.equal((await raw(vault, 'GET', 'pol/data/team/app/key', { token })).status, 200);
    assert.equal((await raw(vault, 'GET', 'pol/data/team/other/key', { token })).status, 200);
    assert.equal((await raw(vault, 'GET', 'pol/data/team/app/deny-me', { token })).status, 403);
    // the exact rule wins over the glob: read allowed, write not
    assert.equal((await raw(vault, 'GET', 'pol/data/shared/x', { token })).status, 200);
    assert.equal((await raw(vault, 'POST', 'pol/data/shared/x', { token, body: { data: { v: '1' } } })).status, 403);
    // create on a new key under the glob
    assert.equal((await raw(vault, 'POST', 'pol/data/shared/new', { token, body: { data: { v: '1' } } })).status, 200);
    const caps = await raw(vault, 'POST', 'sys/capabilities-self', { token, body: { paths: ['pol/data/team/app/deny-me', 'pol/data/shared/y'] } });
    assert.deepEqual(caps.json.data['pol/data/team/app/deny-me'], ['deny']);
    assert.deepEqual(caps.json.data['pol/data/shared/y'], ['create', 'update']);
  });

  test('distinguishes create from update by whether the secret exists', async () => {
    await policy(vault, 'create-only', 'path "pol/data/fresh/*" { capabilities = ["create"] }');
    const token = await createToken(vault, { policies: ['create-only'] });
    assert.equal((await raw(vault, 'POST', 'pol/data/fresh/one', { token, body: { data: { v: '1' } } })).status, 200);
    assert.equal((await raw(vault, 'POST', 'pol/data/fresh/one', { token, body: { data: { v: '2' } } })).status, 403);
  });

  test('accepts the JSON policy form and the legacy sys/policy endpoint (node-vault addPolicy)', async () => {
    assert.equal((await policy(vault, 'json-pol', JSON.stringify({ path: { 'pol/data/shared/*': { capabilities: ['read'] } } }))).status, 204);
    await client(vault).addPolicy({ name: 'legacy', rules: 'path "pol/data/team/other/*" { policy = "read" }' });
    const token = await createToken(vault, { policies: ['json-pol', 'legacy'] });
    assert.equal((await raw(vault, 'GET', 'pol/data/shared/x', { token })).status, 200);
    assert.equal((await raw(vault, 'GET', 'pol/data/team/other/key', { token })).status, 200);
    assert.equal((await raw(vault, 'GET', 'pol/data/team/app/key', { token })).status, 403);
    assert.match((await raw(vault, 'GET', 'sys/policies/acl/legacy')).json.data.policy, /policy = "read"/);
    assert.ok((await raw(vault, 'LIST', 'sys/policies/acl')).json.data.keys.includes('json-pol'));
  });

  test('rejects an unparsable policy with 400', async () => {
    const r = await policy(vault, 'broken', 'path "x/*" { capabilities = ["read" }');
    assert.equal(r.status, 400);
    assert.match(r.json.errors[0], /^failed to parse policy/);
    const unknownCap = await policy(vault, 'broken', 'path "x/*" { capabilities = ["fly"] }');
    assert.match(unknownCap.json.errors[0], /invalid capability "fly"/);
  });

  test('the default policy lets a token look itself up but not read secrets or list mounts', async () => {
    const token = await createToken(vault, { policies: ['nothing-else'] });
    assert.equal((await raw(vault, 'GET', 'auth/token/lookup-self', { token })).status, 200);
    assert.equal((await raw(vault, 'GET', 'pol/data/shared/x', { token })).status, 403);
    assert.equal((await raw(vault, 'GET', 'sys/mounts', { token })).status, 403);
    const pre = await raw(vault, 'GET', 'sys/internal/ui/mounts/pol/shared', { token });
    assert.equal(pre.status, 403);
    assert.match(pre.json.errors[0], /^preflight capability check returned 403/);
  });

  test('sys/internal/ui/mounts answers a token that can reach something under the mount', async () => {
    const token = await createToken(vault, { policies: ['app-read'] });
    const r = await raw(vault, 'GET', 'sys/internal/ui/mounts/pol/team/app', { token });
    assert.equal(r.status, 200);
    assert.equal(r.json.data.path, 'pol/');
  });
});

describe('tokens', () => {
  test('expires a token at its TTL on the server clock: 403 invalid token afterwards', async () => {
    const s = await startVaultServer();
    try {
      const token = await createToken(s, { policies: ['default'], ttl: '30s' });
      const look = await raw(s, 'GET', 'auth/token/lookup-self', { token });
      assert.equal(look.json.data.creation_ttl, 30);
      assert.ok(look.json.data.ttl <= 30 && look.json.data.ttl >= 29);
      assert.equal(look.json.data.renewable, true);
      assert.equal(look.json.data.path, 'auth/token/create');
      s.advanceClock(31_000);
      assertErrorBody(await raw(s, 'GET', 'auth/token/lookup-self', { token }), 403, [INVALID_TOKEN]);
      assert.equal(s.tokens().some((t) => t.token === token), false);
    } finally {
      await s.close();
    }
  });

  test('expires a token in real time', async () => {
    const token = await createToken(vault, { ttl: '1s' });
    assert.equal((await raw(vault, 'GET', 'auth/token/lookup-self', { token })).status, 200);
    await delay(1100);
    assert.equal((await raw(vault, 'GET', 'auth/token/lookup-self', { token })).status, 403);
  });

  test('renew-self extends the TTL with an empty body, a non-JSON body or an increment, capped at the max TTL', async () => {
    const s = await startVaultServer();
    try {
      const token = await createToken(s, { policies: ['default'], ttl: '60s', explicit_max_ttl: '100s' });
      s.advanceClock(50_000);
      const empty = await raw(s, 'POST', 'auth/token/renew-self', { token });
      assert.equal(empty.status, 200, empty.text);
      assert.deepEqual(Object.keys(empty.json.auth), ['client_token', 'accessor', 'policies', 'token_policies', 'metadata', 'lease_duration', 'renewable', 'entity_id', 'token_type', 'orphan', 'mfa_requirement', 'num_uses']);
      assert.equal(empty.json.auth.client_token, token);
      // 50 s of max TTL left, less the few ms this test has taken
      assert.ok([49, 50].includes(empty.json.auth.lease_duration), String(empty.json.auth.lease_duration));
      assert.match(empty.json.warnings[0], /capped/);
      const junk = await raw(s, 'POST', 'auth/token/renew-self', { token, body: 'not json', headers: { 'content-type': 'text/plain' } });
      assert.equal(junk.status, 200, junk.text);
      const inc = await client(s, { token }).tokenRenewSelf({ increment: '10s' });
      assert.equal(inc.auth.lease_duration, 10);
      s.advanceClock(9_000);
      assert.equal((await raw(s, 'GET', 'auth/token/lookup-self', { token })).status, 200);
      assert.equal((await raw(s, 'GET', 'auth/token/lookup-self', { token })).json.data.ttl <= 1, true);
    } finally {
      await s.close();
    }
  });

  test('refuses to renew a non-renewable token with 400', async () => {
    const token = await createToken(vault, { ttl: '1h', renewable: false });
    assertErrorBody(await raw(vault, 'POST', 'auth/token/renew-self', { token }), 400, ['lease is not renewable']);
  });

  test('revoke-self and revokeToken end a token and its children', async () => {
    await policy(vault, 'token-maker', 'path "auth/token/create" { capabilities = ["update"] }');
    const parent = await createToken(vault, { policies: ['token-maker'] });
    const child = await createToken(vault, {});
    assert.equal((await raw(vault, 'POST', 'auth/token/revoke-self', { token: child })).status, 204);
    assert.equal((await raw(vault, 'GET', 'auth/token/lookup-self', { token: child })).status, 403);
    const r = await raw(vault, 'POST', 'auth/token/create', { token: parent, body: { policies: ['default'] } });
    const grandchild = r.json.auth.client_token;
    assert.equal(vault.revokeToken(parent), true);
    assert.equal((await raw(vault, 'GET', 'auth/token/lookup-self', { token: parent })).status, 403);
    assert.equal((await raw(vault, 'GET', 'auth/token/lookup-self', { token: grandchild })).status, 403);
    assert.equal(vault.revokeToken(parent), false);
  });

  test('a token with num_uses stops working after that many requests', async () => {
    const token = await createToken(vault, { num_uses: 2 });
    assert.equal((await raw(vault, 'GET', 'auth/token/lookup-self', { token })).json.data.num_uses, 1);
    assert.equal((await raw(vault, 'GET', 'auth/token/lookup-self', { token })).status, 200);
    assert.equal((await raw(vault, 'GET', 'auth/token/lookup-self', { token })).status, 403);
  });

  test('a child token cannot get policies its parent lacks', async () => {
    await policy(vault, 'p-a', 'path "a/*" { capabilities = ["read"] }');
    await policy(vault, 'token-maker', 'path "auth/token/create" { capabilities = ["update"] }');
    const parent = await createToken(vault, { policies: ['p-a', 'token-maker'] });
    const r = await raw(vault, 'POST', 'auth/token/create', { token: parent, body: { policies: ['root'] } });
    assertErrorBody(r, 400, ['child policies must be subset of parent']);
    assert.equal((await raw(vault, 'POST', 'auth/token/create', { token: parent, body: { policies: ['p-a'] } })).status, 200);
    // without the right to create tokens at all: 403
    const plain = await createToken(vault, { policies: ['p-a'] });
    assertErrorBody(await raw(vault, 'POST', 'auth/token/create', { token: plain, body: {} }), 403, ['permission denied']);
  });
});

describe('AppRole', () => {
  let roleId: string;
  let secretId: string;
  before(async () => {
    const c = client(vault);
    await c.enableAuth({ mount_point: 'approle', type: 'approle' });
    await policy(vault, 'app', 'path "secret/data/app/*" { capabilities = ["read"] }');
    await c.addApproleRole({ role_name: 'gateway', policies: 'app', token_ttl: 1200, token_max_ttl: 3600, secret_id_ttl: 600 });
    roleId = (await c.getApproleRoleId({ role_name: 'gateway' })).data.role_id;
    const s = await c.getApproleRoleSecret({ role_name: 'gateway' });
    secretId = s.data.secret_id;
    assert.deepEqual(Object.keys(s.data), ['secret_id', 'secret_id_accessor', 'secret_id_num_uses', 'secret_id_ttl']);
    assert.equal(s.data.secret_id_ttl, 600);
  });

  test('logs in with role_id and secret_id and issues a token with the role policies and TTL', async () => {
    const c = NodeVault({ endpoint: vault.url });
    const res = await c.approleLogin({ mount_point: 'approle', role_id: roleId, secret_id: secretId });
    assert.equal(res.data, null);
    assert.equal(res.mount_type, 'approle');
    assert.deepEqual(res.auth.policies, ['app', 'default']);
    assert.deepEqual(res.auth.token_policies, ['app', 'default']);
    assert.deepEqual(res.auth.metadata, { role_name: 'gateway' });
    assert.equal(res.auth.lease_duration, 1200);
    assert.equal(res.auth.renewable, true);
    assert.match(res.auth.client_token, /^hvs\./);
    await raw(vault, 'POST', 'secret/data/app/key', { body: { data: { v: '1' } } });
    assert.equal((await raw(vault, 'GET', 'secret/data/app/key', { token: res.auth.client_token })).status, 200);
    const look = await raw(vault, 'GET', 'auth/token/lookup-self', { token: res.auth.client_token });
    assert.equal(look.json.data.path, 'auth/approle/login');
  });

  test('answers login errors with 400: missing role_id, missing secret_id, invalid role or secret ID', async () => {
    assertErrorBody(await raw(vault, 'POST', 'auth/approle/login', { token: null, body: { secret_id: secretId } }), 400, ['missing role_id']);
    assertErrorBody(await raw(vault, 'POST', 'auth/approle/login', { token: null, body: { role_id: roleId } }), 400, ['missing secret_id']);
    assertErrorBody(await raw(vault, 'POST', 'auth/approle/login', { token: null, body: { role_id: roleId, secret_id: 'wrong' } }), 400, ['invalid role or secret ID']);
    assertErrorBody(await raw(vault, 'POST', 'auth/approle/login', { token: null, body: { role_id: 'wrong', secret_id: secretId } }), 400, ['invalid role or secret ID']);
  });

  test('refuses an expired secret_id and honours secret_id num_uses', async () => {
    const s = await startVaultServer();
    try {
      const c = client(s);
      await c.enableAuth({ mount_point: 'ar', type: 'approle' });
      await c.addApproleRole({ mount_point: 'ar', role_name: 'r', secret_id_ttl: 60, secret_id_num_uses: 1 });
      const rid = (await c.getApproleRoleId({ mount_point: 'ar', role_name: 'r' })).data.role_id;
      const once = (await c.getApproleRoleSecret({ mount_point: 'ar', role_name: 'r' })).data.secret_id;
      const expiring = (await c.getApproleRoleSecret({ mount_point: 'ar', role_name: 'r' })).data.secret_id;
      assert.equal((await raw(s, 'POST', 'auth/ar/login', { token: null, body: { role_id: rid, secret_id: once } })).status, 200);
      assert.equal((await raw(s, 'POST', 'auth/ar/login', { token: null, body: { role_id: rid, secret_id: once } })).status, 400);
      s.advanceClock(61_000);
      assertErrorBody(await raw(s, 'POST', 'auth/ar/login', { token: null, body: { role_id: rid, secret_id: expiring } }), 400, ['invalid role or secret ID']);
    } finally {
      await s.close();
    }
  });

  test('enabling an auth method needs sudo: a policy without it gets 403', async () => {
    await policy(vault, 'no-sudo', 'path "sys/auth/*" { capabilities = ["create", "update"] }');
    const token = await createToken(vault, { policies: ['no-sudo'] });
    assert.equal((await raw(vault, 'POST', 'sys/auth/approle2', { token, body: { type: 'approle' } })).status, 403);
  });
});

describe('Kubernetes auth', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }).toString();
  const future = () => Math.floor(Date.now() / 1000) + 3600;
  const legacyClaims = (name: string, ns: string) => ({
    iss: 'kubernetes/serviceaccount',
    'kubernetes.io/serviceaccount/namespace': ns,
    'kubernetes.io/serviceaccount/secret.name': `${name}-token-abcde`,
    'kubernetes.io/serviceaccount/service-account.name': name,
    'kubernetes.io/serviceaccount/service-account.uid': 'uid-legacy-1',
    sub: `system:serviceaccount:${ns}:${name}`,
  });
  const projectedClaims = (name: string, ns: string, exp = future()) => ({
    aud: ['https://kubernetes.default.svc'],
    exp,
    iat: exp - 3600,
    iss: 'https://kubernetes.default.svc',
    'kubernetes.io': { namespace: ns, pod: { name: 'gw-0', uid: 'pod-uid' }, serviceaccount: { name, uid: 'uid-projected-1' } },
    sub: `system:serviceaccount:${ns}:${name}`,
  });

  before(async () => {
    const c = client(vault);
    await c.enableAuth({ mount_point: 'kubernetes', type: 'kubernetes' });
    await c.write('auth/kubernetes/config', { kubernetes_host: 'https://127.0.0.1:6443', pem_keys: [pem(rsa.publicKey), pem(ec.publicKey)] });
    // (node-vault's addKubernetesRole has a broken request schema: write the role directly)
    await c.write('auth/kubernetes/role/gatehouse', { bound_service_account_names: ['gatehouse'], bound_service_account_namespaces: 'edge,staging', token_policies: ['app'], token_ttl: '15m' });
  });

  test('logs in with an RS256 legacy service-account token through node-vault kubernetesLogin', async () => {
    const c = NodeVault({ endpoint: vault.url });
    const res = await c.kubernetesLogin({ mount_point: 'kubernetes', role: 'gatehouse', jwt: jwt(legacyClaims('gatehouse', 'edge'), rsa.privateKey, 'RS256') });
    assert.deepEqual(res.auth.metadata, { role: 'gatehouse', service_account_name: 'gatehouse', service_account_namespace: 'edge', service_account_secret_name: 'gatehouse-token-abcde', service_account_uid: 'uid-legacy-1' });
    assert.deepEqual(res.auth.policies, ['app', 'default']);
    assert.equal(res.auth.lease_duration, 900);
    assert.equal(res.data, null);
  });

  test('logs in with an ES256 projected token (kubernetes.io claim)', async () => {
    const r = await raw(vault, 'POST', 'auth/kubernetes/login', { token: null, body: { role: 'gatehouse', jwt: jwt(projectedClaims('gatehouse', 'staging'), ec.privateKey, 'ES256') } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.auth.metadata.service_account_uid, 'uid-projected-1');
    assert.equal(r.json.auth.metadata.service_account_namespace, 'staging');
  });

  test('refuses a token signed by an unknown key, an expired token and a tampered payload with 403 permission denied', async () => {
    const login = (token: string) => raw(vault, 'POST', 'auth/kubernetes/login', { token: null, body: { role: 'gatehouse', jwt: token } });
    assertErrorBody(await login(jwt(legacyClaims('gatehouse', 'edge'), stranger.privateKey, 'RS256')), 403, ['permission denied']);
    assertErrorBody(await login(jwt(projectedClaims('gatehouse', 'edge', Math.floor(Date.now() / 1000) - 10), ec.privateKey, 'ES256')), 403, ['permission denied']);
    const good = jwt(legacyClaims('gatehouse', 'edge'), rsa.privateKey, 'RS256').split('.');
    const forged = Buffer.from(JSON.stringify(legacyClaims('admin', 'kube-system'))).toString('base64url');
    assertErrorBody(await login(`${good[0]}.${forged}.${good[2]}`), 403, ['permission denied']);
    assertErrorBody(await login('not-a-jwt'), 403, ['permission denied']);
  });

  test('enforces the bound service-account names and namespaces', async () => {
    const login = (claims: Record<string, unknown>) => raw(vault, 'POST', 'auth/kubernetes/login', { token: null, body: { role: 'gatehouse', jwt: jwt(claims, rsa.privateKey, 'RS256') } });
    assertErrorBody(await login(legacyClaims('intruder', 'edge')), 403, ['service account name not authorized']);
    assertErrorBody(await login(legacyClaims('gatehouse', 'default')), 403, ['namespace not authorized']);
  });

  test('answers missing fields and unknown roles with 400', async () => {
    const token = jwt(legacyClaims('gatehouse', 'edge'), rsa.privateKey, 'RS256');
    assertErrorBody(await raw(vault, 'POST', 'auth/kubernetes/login', { token: null, body: { jwt: token } }), 400, ['missing role']);
    assertErrorBody(await raw(vault, 'POST', 'auth/kubernetes/login', { token: null, body: { role: 'gatehouse' } }), 400, ['missing jwt']);
    assertErrorBody(await raw(vault, 'POST', 'auth/kubernetes/login', { token: null, body: { role: 'nobody', jwt: token } }), 400, ['invalid role name "nobody"']);
  });
});

describe('namespaces', () => {
  before(async () => {
    const r = await raw(vault, 'POST', 'sys/namespaces/ns1', { body: {} });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.data.path, 'ns1/');
    await raw(vault, 'POST', 'sys/mounts/kv', { ns: 'ns1', body: { type: 'kv', options: { version: '2' } } });
    await raw(vault, 'POST', 'kv/data/app', { ns: 'ns1/', body: { data: { where: 'ns1' } } });
  });

  test('scopes mounts and secrets to a namespace, by header or by path prefix', async () => {
    assert.equal((await raw(vault, 'GET', 'kv/data/app', { ns: 'ns1' })).json.data.data.where, 'ns1');
    assert.equal((await raw(vault, 'GET', 'ns1/kv/data/app')).json.data.data.where, 'ns1');
    assert.equal((await client(vault, { namespace: 'ns1' }).read('kv/data/app')).data.data.where, 'ns1');
    assertErrorBody(await raw(vault, 'GET', 'kv/data/app'), 404, []);
    const mounts = await raw(vault, 'GET', 'sys/mounts', { ns: 'ns1' });
    assert.ok(mounts.json.data['kv/']);
    assert.equal(mounts.json.data['secret/'], undefined);
    assert.equal((await raw(vault, 'GET', 'sys/internal/ui/mounts/kv/app', { ns: 'ns1' })).json.data.path, 'kv/');
    assert.deepEqual((await raw(vault, 'LIST', 'sys/namespaces')).json.data.keys, ['ns1/']);
  });

  test('a token made in a namespace works there with that namespace’s policies and nowhere above it', async () => {
    await policy(vault, 'ns-read', 'path "kv/data/*" { capabilities = ["read"] }', 'ns1');
    const token = await createToken(vault, { policies: ['ns-read'] }, 'ns1');
    assert.equal((await raw(vault, 'GET', 'kv/data/app', { ns: 'ns1', token })).status, 200);
    assert.equal((await raw(vault, 'GET', 'ns1/kv/data/app', { token })).status, 200);
    assert.equal((await raw(vault, 'GET', 'secret/data/app/key', { token })).status, 403);
    assert.equal(vault.tokens().find((t) => t.token === token)?.namespace, 'ns1/');
  });

  test('runs AppRole inside a namespace', async () => {
    await raw(vault, 'POST', 'sys/auth/approle', { ns: 'ns1', body: { type: 'approle' } });
    await raw(vault, 'POST', 'auth/approle/role/r', { ns: 'ns1', body: { token_policies: 'ns-read' } });
    const rid = (await raw(vault, 'GET', 'auth/approle/role/r/role-id', { ns: 'ns1' })).json.data.role_id;
    const sid = (await raw(vault, 'POST', 'auth/approle/role/r/secret-id', { ns: 'ns1' })).json.data.secret_id;
    const c = NodeVault({ endpoint: vault.url, namespace: 'ns1' });
    const res = await c.approleLogin({ mount_point: 'approle', role_id: rid, secret_id: sid });
    assert.equal((await raw(vault, 'GET', 'kv/data/app', { ns: 'ns1', token: res.auth.client_token })).status, 200);
    assertErrorBody(await raw(vault, 'POST', 'auth/approle/login', { token: null, body: { role_id: rid, secret_id: sid } }), 400, ['invalid role or secret ID']);
  });
});

describe('sys/health and sealing', () => {
  test('answers GET with the health body in Vault order and HEAD with the status only', async () => {
    const r = await raw(vault, 'GET', 'sys/health', { token: null });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(Object.keys(r.json), ['initialized', 'sealed', 'standby', 'performance_standby', 'replication_performance_mode', 'replication_dr_mode', 'server_time_utc', 'version', 'cluster_name', 'cluster_id']);
    assert.equal(r.json.initialized, true);
    assert.equal(r.json.sealed, false);
    assert.ok(Math.abs(r.json.server_time_utc - Date.now() / 1000) < 5);
    const head = await raw(vault, 'HEAD', 'sys/health', { token: null });
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
    assert.equal((await raw(vault, 'GET', 'sys/health?activecode=299', { token: null })).status, 299);
  });

  test('while sealed: health says 503 sealed, every other path 503 Vault is sealed; unseal restores', async () => {
    const s = await startVaultServer();
    try {
      s.seal();
      const h = await raw(s, 'GET', 'sys/health', { token: null });
      assert.equal(h.status, 503);
      assert.equal(h.json.sealed, true);
      const head = await raw(s, 'HEAD', 'sys/health', { token: null });
      assert.equal(head.status, 503);
      assert.equal(head.text, '');
      assertErrorBody(await raw(s, 'GET', 'secret/data/x'), 503, ['Vault is sealed']);
      assertErrorBody(await raw(s, 'GET', 'auth/token/lookup-self', { token: null }), 503, ['Vault is sealed']);
      assert.equal((await client(s).health()).sealed, true);
      assert.equal((await raw(s, 'GET', 'sys/seal-status', { token: null })).json.sealed, true);
      s.unseal();
      assert.equal((await raw(s, 'GET', 'sys/health', { token: null })).status, 200);
      assert.equal((await raw(s, 'GET', 'auth/token/lookup-self')).status, 200);
    } finally {
      await s.close();
    }
  });
});

describe('faults, counters, stop and start', () => {
  test('faults.latencyMs delays every response and faults.status answers every request with that status', async () => {
    const s = await startVaultServer();
    try {
      s.faults.latencyMs = 300;
      const t0 = Date.now();
      assert.equal((await raw(s, 'GET', 'sys/health', { token: null })).status, 200);
      assert.ok(Date.now() - t0 >= 290, `took ${Date.now() - t0} ms`);
      s.faults.latencyMs = 0;
      s.faults.status = 500;
      assertErrorBody(await raw(s, 'GET', 'secret/data/x'), 500, ['internal error']);
      assertErrorBody(await raw(s, 'GET', 'sys/health', { token: null }), 500, ['internal error']);
      s.faults.status = 503;
      assert.equal((await rejectedStatus(client(s).read('secret/data/x'))).status, 503);
      s.faults.status = undefined;
      assert.equal((await raw(s, 'GET', 'sys/health', { token: null })).status, 200);
    } finally {
      await s.close();
    }
  });

  test('count() counts requests by path prefix and method', async () => {
    const s = await startVaultServer();
    try {
      await raw(s, 'GET', 'auth/token/lookup-self');
      await raw(s, 'POST', 'auth/token/renew-self');
      await raw(s, 'GET', 'auth/token/lookup-self');
      assert.equal(s.count('auth/token/lookup-self'), 2);
      assert.equal(s.count('auth/token/'), 3);
      assert.equal(s.count('auth/token/', 'POST'), 1);
      assert.equal(s.count('secret/'), 0);
      assert.equal(s.requests[0].hasToken, true);
    } finally {
      await s.close();
    }
  });

  test('stop() refuses connections and start() listens again on the same port with the state kept', async () => {
    const s = await startVaultServer();
    try {
      await raw(s, 'POST', 'secret/data/kept', { body: { data: { v: 'still here' } } });
      await s.stop();
      await assert.rejects(raw(s, 'GET', 'secret/data/kept'), (e: NodeJS.ErrnoException) => /ECONNREFUSED/.test(`${e.code} ${e.message}`));
      await s.start();
      assert.equal((await raw(s, 'GET', 'secret/data/kept')).json.data.data.v, 'still here');
    } finally {
      await s.close();
    }
  });

  test('stop() drops a request that is waiting on injected latency', async () => {
    const s = await startVaultServer();
    try {
      s.faults.latencyMs = 5000;
      const pending = raw(s, 'GET', 'sys/health', { token: null });
      await delay(100);
      const t0 = Date.now();
      await s.stop();
      await assert.rejects(pending);
      assert.ok(Date.now() - t0 < 2000);
    } finally {
      await s.close();
    }
  });
});

describe('CLI', () => {
  test('prints one line when listening, serves requests, and exits on SIGTERM', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [join(__dirname, 'vault.js'), '--port', String(port), '--token', 'cli-root', '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const rl = createInterface({ input: child.stdout });
        rl.once('line', resolve);
        child.once('exit', (code) => reject(new Error(`CLI exited early with ${code}`)));
        setTimeout(() => reject(new Error('CLI printed nothing within 10 s')), 10_000).unref();
      });
      assert.equal(line, `vault test server listening on http://127.0.0.1:${port} (root token: cli-root)`);
      const r = await request(`http://127.0.0.1:${port}/v1/auth/token/lookup-self`, { headers: { 'x-vault-token': 'cli-root' } });
      assert.equal(r.statusCode, 200);
      assert.deepEqual(JSON.parse(await r.body.text()).data.policies, ['root']);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
