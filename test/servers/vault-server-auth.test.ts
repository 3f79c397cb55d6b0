// The Vault test server, access: policies, tokens, AppRole, Kubernetes auth and namespaces (which
// log in with AppRole and check the root mount refuses the namespace's role), driven by the real
// node-vault client and by raw HTTP (undici) for exact wire checks.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import NodeVault = require('node-vault');
import { startVaultServer } from './vault';
import { INVALID_TOKEN, assertErrorBody, client, createToken, delay, policy, raw, rejectedStatus, useVaultServer, vault } from '../helpers/vault-server';

function jwt(claims: Record<string, unknown>, key: KeyObject, alg: 'RS256' | 'ES256'): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc({ alg, typ: 'JWT', kid: 'test' })}.${enc(claims)}`;
  const sig = alg === 'RS256' ? sign('sha256', Buffer.from(input), key) : sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

useVaultServer();

// ---------------------------------------------------------------------------------------------

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
