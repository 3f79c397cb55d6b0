// The reference policy against an Admin API key holder (docs/security.md): data sections cannot name
// the gateway's own credentials or variables outside secret_policy.env, secret resources read no
// file outside secret_policy.files (never /proc, whatever the links), and a credential stays bound
// to the address it was first sent to: moving it elsewhere is refused before any backend is
// contacted (the second server counts zero requests) unless secret_policy.destinations lists the
// new address. Real node-vault against the Vault test server, the real AWS SDK against the Secrets
// Manager test server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { plantSecret } from '../core/testing';
import { Gateway } from '../core/gateway';
import { GatehouseError } from '../core/errors';
import { silentLogger } from '../core/observe/log';
import { MemoryConfigStore } from '../core/stores/file-store';
import { adminCall, type AnswerLog } from './helpers/admin-client';
import { bootGateway, runCli, startUpstream, tempDir, type TestGateway, type Upstream } from './helpers/harness';
import { startVaultServer, type VaultServer } from './servers/vault';
import { startSecretsManagerServer, type SecretsManagerServer } from './servers/secrets-manager';

const ADMIN_KEY = `policy-admin-${randomBytes(12).toString('hex')}`;
const VAULT_TOKEN = `hvs.policy-${randomBytes(12).toString('hex')}`;
const APP_KEY = `policy-app-key-${randomBytes(8).toString('hex')}`;
const OTHER = `policy-other-${randomBytes(8).toString('hex')}`;
const FILE_CANARY = `policy-file-${randomBytes(8).toString('hex')}`;
const AWS_SECRET = `policy-aws-secret-${randomBytes(8).toString('hex')}`;
const JACK_A = 'jack-key-from-vault-a';
const JACK_B = 'jack-key-from-vault-b';

let dir: string;
let up: Upstream;
let vaultA: VaultServer;
let vaultB: VaultServer;
const answers: AnswerLog = [];

before(async () => {
  process.env.GH_POLICY_ADMIN_KEY = ADMIN_KEY;
  process.env.GH_POLICY_VAULT_TOKEN = VAULT_TOKEN;
  process.env.GH_POLICY_APP_KEY = APP_KEY;
  process.env.GH_POLICY_OTHER = OTHER;
  process.env.GH_POLICY_AWS_ID = 'policy-key-id';
  process.env.GH_POLICY_AWS_SECRET = AWS_SECRET;
  plantSecret('secret-policy test', ADMIN_KEY, VAULT_TOKEN, APP_KEY, OTHER, FILE_CANARY, AWS_SECRET);
  dir = tempDir('gatehouse-secret-policy-');
  up = await startUpstream();
  // two Vaults that take the same token: the second one is the address an Admin key holder controls
  vaultA = await startVaultServer({ rootToken: VAULT_TOKEN });
  vaultB = await startVaultServer({ rootToken: VAULT_TOKEN });
  for (const [v, key] of [
    [vaultA, JACK_A],
    [vaultB, JACK_B],
  ] as const) {
    await vaultPut(v, 'sys/mounts/apisix', { type: 'kv', options: { version: '1' } });
    await vaultPut(v, 'apisix/jack', { 'auth-key': key });
  }
});

after(async () => {
  await vaultA?.close();
  await vaultB?.close();
  await up?.close();
  for (const answer of answers) assert.doesNotMatch(answer.text, new RegExp(`${ADMIN_KEY}|${VAULT_TOKEN}|${APP_KEY}|${OTHER}|${FILE_CANARY}|${AWS_SECRET}`), `${answer.call} carries a planted secret`);
});

async function vaultPut(v: VaultServer, path: string, body: unknown): Promise<void> {
  const r = await request(`${v.url}/v1/${path}`, { method: 'POST', headers: { 'x-vault-token': VAULT_TOKEN, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.ok(r.statusCode < 300, `${path}: ${r.statusCode} ${await r.body.text()}`);
}

/** A gateway with an Admin API over a memory store (so a test can change the config file's own sections and reload). */
async function adminGateway(t: { after(fn: () => unknown): void }, own: Record<string, unknown> = {}): Promise<{ g: TestGateway; store: MemoryConfigStore; admin: (method: string, path: string, body?: unknown) => ReturnType<typeof adminCall> }> {
  const store = new MemoryConfigStore({ admin: { key: '$env://GH_POLICY_ADMIN_KEY' }, ...own });
  const g = await bootGateway(undefined as unknown as Record<string, unknown>, { store, adminListen: '127.0.0.1:0', watch: false });
  t.after(() => g.close());
  const base = `http://127.0.0.1:${g.gw.adminAddress!.port}/admin`;
  return { g, store, admin: (method, path, body) => adminCall(answers, base, method, path, { body, key: ADMIN_KEY }) };
}

const vaultResource = (v: VaultServer, more: Record<string, unknown> = {}) => ({ uri: v.url, prefix: 'apisix', token: '$ENV://GH_POLICY_VAULT_TOKEN', ...more });
const keyAuthRoute = () => ({ uri: '/p', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.node]: 1 } } });

test('a file resource cannot read /, /proc through a link or "..", or anything outside secret_policy.files; a link out of an allowed folder is refused at read', async (t) => {
  const allowed = join(dir, 'allowed');
  const outside = join(dir, 'outside');
  mkdirSync(allowed);
  mkdirSync(outside);
  writeFileSync(join(outside, 'key'), `${FILE_CANARY}\n`);
  writeFileSync(join(allowed, 'jack'), 'jack-file-key\n');
  symlinkSync('/proc/self', join(allowed, 'proc-link'));
  symlinkSync(outside, join(allowed, 'out-link'));
  symlinkSync(join(outside, 'key'), join(allowed, 'leak'));
  const { g, admin } = await adminGateway(t, { secret_policy: { files: [allowed] } });
  for (const d of ['/', '/proc/self', join(allowed, 'proc-link'), join(allowed, '..', '..', '..', '..', '..', '..', 'proc', 'self')]) {
    const r = await admin('PUT', '/secrets/file/f', { dir: d });
    assert.equal(r.status, 400, `${d}: ${r.text}`);
    assert.match(r.json.error_msg, /^secrets\[0\]\.dir: names a file that is or holds \/proc/, d);
  }
  for (const d of [outside, join(allowed, 'out-link')]) {
    const r = await admin('PUT', '/secrets/file/f', { dir: d });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error_msg, /^secrets\[0\]\.dir: names a file outside the folders secret_policy\.files allows/);
  }
  assert.equal((await admin('GET', '/secrets')).json.total, 0, 'nothing refused was stored');
  // inside the allowed folder: read, but a file in it that links outside is not
  assert.equal((await admin('PUT', '/secrets/file/f', { dir: allowed })).status, 201);
  assert.equal((await admin('PUT', '/consumers', { username: 'jack', plugins: { 'key-auth': { key: '$secret://file/f/jack' } } })).status, 201);
  assert.equal((await admin('PUT', '/consumers', { username: 'mallory', plugins: { 'key-auth': { key: '$secret://file/f/leak' } } })).status, 201);
  assert.equal((await admin('PUT', '/routes/p', keyAuthRoute())).status, 201);
  assert.equal((await g.request('/p', { headers: { apikey: 'jack-file-key' } })).status, 200);
  assert.equal((await g.request('/p', { headers: { apikey: FILE_CANARY } })).status, 401, 'the linked file was not read');
  assert.match(g.logs.text(), /leak is a link that leads out of the secret folder: refused/);
});

test('a config file whose file resource reads / or the config file\'s own folder is refused by validate and start, naming the field', async () => {
  const cfgDir = join(dir, 'cfg');
  mkdirSync(cfgDir);
  const file = join(cfgDir, 'gatehouse.yaml');
  writeFileSync(file, 'secrets:\n  - id: file/root\n    dir: /\n');
  const v = await runCli(['validate', '-c', file]);
  assert.equal(v.code, 1);
  assert.match(v.stderr, /secrets\[0\]\.dir: names a file that is or holds \/proc/);
  // the folder of the config file, even when the policy allows it: the config and data files are never read
  writeFileSync(file, `secret_policy: { files: ["${cfgDir}"] }\nsecrets:\n  - id: file/own\n    dir: .\n`);
  const err = await Gateway.create({ configPath: file, logger: silentLogger(), watch: false }).then(
    () => assert.fail('started'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof GatehouseError);
  assert.deepEqual(
    err.issues.map((i) => i.path),
    ['secrets[0].dir'],
  );
  assert.match(err.issues[0].message, /a file of the gateway itself/);
});

test('data sections cannot reference the admin key\'s variable, nor one outside secret_policy.env; one inside works', async (t) => {
  const { g, admin } = await adminGateway(t, { secret_policy: { env: ['GH_POLICY_APP_*', 'GH_POLICY_VAULT_TOKEN'] } });
  const contacted = vaultB.count('');
  const own = /\$env:\/\/GH_POLICY_ADMIN_KEY holds the gateway's own credential \(admin\.key\)/;
  const outside = /\$env:\/\/GH_POLICY_OTHER is not allowed by secret_policy\.env/;
  for (const [ref, why] of [
    ['$env://GH_POLICY_ADMIN_KEY', own],
    ['$ENV://GH_POLICY_ADMIN_KEY', own],
    ['$env://GH_POLICY_OTHER', outside],
  ] as const) {
    const route = await admin('PUT', '/routes/leak', { ...keyAuthRoute(), uri: '/leak', plugins: { 'proxy-rewrite': { headers: { set: { 'x-leak': ref } } } } });
    assert.equal(route.status, 400, route.text);
    assert.match(route.json.error_msg, /^routes\[0\]\.plugins\.proxy-rewrite\.headers\.set\.x-leak: /);
    assert.match(route.json.error_msg, why);
    const consumer = await admin('PUT', '/consumers', { username: 'mallory', plugins: { 'key-auth': { key: ref } } });
    assert.equal(consumer.status, 400, consumer.text);
    assert.match(consumer.json.error_msg, why);
    const secret = await admin('PUT', '/secrets/vault/leak', vaultResource(vaultB, { token: ref }));
    assert.equal(secret.status, 400, secret.text);
    assert.match(secret.json.error_msg, /^secrets\[0\]\.token: /);
    assert.match(secret.json.error_msg, why);
  }
  // a $secret:// reference of the env manager reads the same variables: the same rules
  const viaResource = await admin('PUT', '/consumers', { username: 'mallory', plugins: { 'key-auth': { key: '$secret://env/e/GH_POLICY_ADMIN_KEY/x' } } });
  assert.equal(viaResource.status, 400, viaResource.text);
  assert.match(viaResource.json.error_msg, /GH_POLICY_ADMIN_KEY holds the gateway's own credential/);
  assert.equal(vaultB.count(''), contacted, 'no refused resource contacted its Vault');
  // allowed by the policy
  assert.equal((await admin('PUT', '/consumers', { username: 'app', plugins: { 'key-auth': { key: '$env://GH_POLICY_APP_KEY' } } })).status, 201);
  assert.equal((await admin('PUT', '/routes/p', keyAuthRoute())).status, 201);
  assert.equal((await g.request('/p', { headers: { apikey: APP_KEY } })).status, 200);
  assert.equal((await g.request('/p', { headers: { apikey: OTHER } })).status, 401);
});

test('without a secret_policy every variable may be named but the gateway\'s own credentials', async (t) => {
  const { admin } = await adminGateway(t);
  assert.equal((await admin('PUT', '/consumers', { username: 'other', plugins: { 'key-auth': { key: '$env://GH_POLICY_OTHER' } } })).status, 201);
  const r = await admin('PUT', '/consumers', { username: 'mallory', plugins: { 'key-auth': { key: '$env://GH_POLICY_ADMIN_KEY' } } });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error_msg, /holds the gateway's own credential \(admin\.key\)/);
});

test('a Vault resource cannot take its bound token to another Vault (PUT, PATCH, a new resource, a reload): refused before the second Vault is contacted; allowed once secret_policy.destinations lists it', async (t) => {
  const { g, store, admin } = await adminGateway(t);
  const before = vaultB.count('');
  assert.equal((await admin('PUT', '/secrets/vault/gw', vaultResource(vaultA))).status, 201);
  assert.equal((await admin('PUT', '/consumers', { username: 'jack', plugins: { 'key-auth': { key: '$secret://vault/gw/jack/auth-key' } } })).status, 201);
  assert.equal((await admin('PUT', '/routes/p', keyAuthRoute())).status, 201);
  assert.equal((await g.request('/p', { headers: { apikey: JACK_A } })).status, 200);
  assert.ok(vaultA.count('apisix/jack') > 0);

  const bound = new RegExp(`^secrets\\[\\d\\]: \\$env://GH_POLICY_VAULT_TOKEN is bound to ${vaultA.url.replace(/[.]/g, '\\.')}, so it is not sent to ${vaultB.url.replace(/[.]/g, '\\.')}.*secret_policy\\.destinations`);
  const moved = await admin('PUT', '/secrets/vault/gw', vaultResource(vaultB));
  assert.equal(moved.status, 400, moved.text);
  assert.match(moved.json.error_msg, bound);
  const patched = await admin('PATCH', '/secrets/vault/gw', { uri: vaultB.url });
  assert.equal(patched.status, 400, patched.text);
  assert.match(patched.json.error_msg, bound);
  const another = await admin('PUT', '/secrets/vault/other', vaultResource(vaultB));
  assert.equal(another.status, 400, another.text);
  assert.match(another.json.error_msg, bound);
  // the config file's own reload is held to the bindings too
  const doc = await store.load();
  store.set({ ...doc, secrets: [{ id: 'vault/gw', ...vaultResource(vaultB) }] });
  const reload = await g.gw.reload();
  assert.equal(reload.ok, false);
  assert.equal(vaultB.count(''), before, 'the second Vault received no request');
  assert.equal((await g.request('/p', { headers: { apikey: JACK_A } })).status, 200, 'the first Vault still serves');

  // the operator allows the second address
  store.set({ ...doc, secret_policy: { destinations: [vaultB.url] } });
  assert.equal((await g.gw.reload()).ok, true);
  assert.equal((await admin('PATCH', '/secrets/vault/gw', { uri: vaultB.url })).status, 200);
  assert.ok(vaultB.count('apisix/jack') > 0, 'the second Vault is used');
  assert.equal((await g.request('/p', { headers: { apikey: JACK_B } })).status, 200);
});

test('a load refused after its credentials were admitted binds nothing: the same credential may then go elsewhere', async (t) => {
  process.env.GH_POLICY_FRESH_TOKEN = VAULT_TOKEN;
  const { g, store } = await adminGateway(t);
  const doc = await store.load();
  const fresh = (v: VaultServer) => [{ id: 'vault/fresh', ...vaultResource(v, { token: '$env://GH_POLICY_FRESH_TOKEN' }) }];
  // refused by the build, after admission: a regex_uri that is no regular expression
  const broken = [{ id: 'bad', uri: '/bad', plugins: { 'proxy-rewrite': { regex_uri: ['(', '/x'] } }, upstream: { nodes: { [up.node]: 1 } } }];
  store.set({ ...doc, secrets: fresh(vaultB), routes: broken });
  const refused = await g.gw.reload();
  assert.equal(refused.ok, false);
  assert.match(refused.ok ? '' : refused.message, /regex_uri\[0\]/);
  store.set({ ...doc, secrets: fresh(vaultA) });
  const r = await g.gw.reload();
  assert.equal(r.ok, true, r.ok ? '' : r.message);
  // and now it is bound to the first Vault
  store.set({ ...doc, secrets: fresh(vaultB) });
  assert.equal((await g.gw.reload()).ok, false);
});

test('Kubernetes auth with jwt_path /proc/self/environ is refused, nothing is posted; the default service-account path is allowed', async (t) => {
  const { admin } = await adminGateway(t);
  const r = await admin('PUT', '/secrets/vault/k8s', { uri: vaultA.url, prefix: 'apisix', auth: { method: 'kubernetes', role: 'gw', jwt_path: '/proc/self/environ' } });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error_msg, /^secrets\[0\]\.auth\.jwt_path: names a file that is or holds \/proc/);
  const rel = await admin('PUT', '/secrets/vault/k8s', { uri: vaultA.url, prefix: 'apisix', auth: { method: 'kubernetes', role: 'gw', jwt_path: join(dir, 'token') } });
  assert.equal(rel.status, 400, rel.text);
  assert.match(rel.json.error_msg, /^secrets\[0\]\.auth\.jwt_path: names a file outside the folders secret_policy\.files allows/);
  assert.equal(vaultA.count('auth/kubernetes/login'), 0);
  assert.equal((await admin('PUT', '/secrets/vault/k8s', { uri: vaultA.url, prefix: 'apisix', auth: { method: 'kubernetes', role: 'gw' } })).status, 201);
});

test('an AWS resource cannot take its bound keys, or the default credential chain, to another endpoint: refused, zero requests there', async (t) => {
  const sm1 = await startSecretsManagerServer({ accessKeyId: 'policy-key-id', secretAccessKey: AWS_SECRET });
  const sm2 = await startSecretsManagerServer({ accessKeyId: 'policy-key-id', secretAccessKey: AWS_SECRET });
  t.after(() => Promise.all([sm1.close(), sm2.close()]));
  const { g, admin } = await adminGateway(t);
  const keys = { region: 'us-east-1', access_key_id: '$env://GH_POLICY_AWS_ID', secret_access_key: '$env://GH_POLICY_AWS_SECRET' };
  assert.equal((await admin('PUT', '/secrets/aws/a', { ...keys, endpoint_url: sm1.url, max_attempts: 1 })).status, 201);
  assert.equal((await admin('PUT', '/consumers', { username: 'jack', plugins: { 'key-auth': { key: '$secret://aws/a/gateway/jack' } } })).status, 201);
  await g.request('/p');
  assert.ok(sm1.count() > 0, 'the first endpoint is used');
  const moved = await admin('PATCH', '/secrets/aws/a', { endpoint_url: sm2.url });
  assert.equal(moved.status, 400, moved.text);
  assert.match(moved.json.error_msg, new RegExp(`^secrets\\[0\\]: \\$env://GH_POLICY_AWS_(ID|SECRET) is bound to ${sm1.url.replace(/[.]/g, '\\.')}`));
  // no keys: the SDK's default chain is the credential, bound the same way
  assert.equal((await admin('PUT', '/secrets/aws/chain', { region: 'us-east-1', endpoint_url: sm1.url })).status, 201);
  const chain = await admin('PATCH', '/secrets/aws/chain', { endpoint_url: sm2.url });
  assert.equal(chain.status, 400, chain.text);
  assert.match(chain.json.error_msg, /aws:default-credential-chain is bound to/);
  assert.equal(sm2.count(), 0, 'the second endpoint received no request');
});
