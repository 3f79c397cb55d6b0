// The vault provider (create → get, node-vault underneath) against the Vault test server over real
// HTTP: KV v1 and v2 reads, token, AppRole, Kubernetes and namespace authentication, and the token's
// lifetime (renewal, login again). Failures, TLS and the config: vault-failures.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VaultProviderError } from './index';
import { startVaultServer } from '../../test/servers/vault';
import { admin, assertNoLeak, backend, delay, everything, memoryLogger, POLICY, rejection, roleId, secretId, tmp, useSeededVault, vault } from './vault.fixture';

useSeededVault();

// ---------------------------------------------------------------------------------------------

describe('KV reads', () => {
  test('reads a KV v1 field with the mount lease as ttl and a ttl field as a shorter one', async () => {
    const b = await backend({ uri: vault.url, prefix: 'legacy', token: vault.rootToken, kv_version: 1 });
    assert.deepEqual(await b.get({ path: 'gw/jack', field: 'auth-key' }), { value: 'legacy-jack-key', ttl: 2764800, version: undefined });
    assert.deepEqual(await b.get({ path: 'gw/short', field: 'auth-key' }), { value: 'short-lived', ttl: 3600, version: undefined });
  });

  test('reads the latest KV v2 version with its version number and no ttl', async () => {
    const b = await backend({ uri: vault.url, prefix: 'secret', token: vault.rootToken, kv_version: 2 });
    assert.deepEqual(await b.get({ path: 'gw/jack', field: 'auth-key' }), { value: 'jack-key-v2', ttl: undefined, version: '2' });
  });

  test('reads a pinned KV v2 version', async () => {
    const b = await backend({ uri: vault.url, prefix: 'secret', token: vault.rootToken });
    assert.deepEqual(await b.get({ path: 'gw/jack', field: 'auth-key', version: '1' }), { value: 'jack-key-v1', ttl: undefined, version: '1' });
    assert.equal(await b.get({ path: 'gw/jack', field: 'auth-key', version: '9' }), undefined);
  });

  test('answers undefined for a soft-deleted latest version and a destroyed version, but reads older live ones', async () => {
    const b = await backend({ uri: vault.url, prefix: 'secret', token: vault.rootToken });
    assert.equal(await b.get({ path: 'gw/deleted', field: 'k' }), undefined);
    assert.equal((await b.get({ path: 'gw/deleted', field: 'k', version: '1' }))?.value, 'old');
    assert.equal(await b.get({ path: 'gw/destroyed', field: 'k', version: '1' }), undefined);
    assert.equal((await b.get({ path: 'gw/destroyed', field: 'k' }))?.value, 'current');
  });

  test('answers undefined for a missing secret, a missing field and a null field', async () => {
    const b = await backend({ uri: vault.url, prefix: 'secret', token: vault.rootToken });
    assert.equal(await b.get({ path: 'gw/nobody', field: 'auth-key' }), undefined);
    assert.equal(await b.get({ path: 'gw/jack', field: 'no-such-field' }), undefined);
    assert.equal(await b.get({ path: 'gw/typed', field: 'nothing' }), undefined);
    const v1 = await backend({ uri: vault.url, prefix: 'legacy', token: vault.rootToken });
    assert.equal(await v1.get({ path: 'gw/nobody', field: 'auth-key' }), undefined);
    assert.equal(await v1.get({ path: 'gw/jack', field: 'nope' }), undefined);
  });

  test('hands out non-string fields as their JSON text', async () => {
    const b = await backend({ uri: vault.url, prefix: 'secret', token: vault.rootToken });
    assert.equal((await b.get({ path: 'gw/typed', field: 'port' }))?.value, '5432');
    assert.equal((await b.get({ path: 'gw/typed', field: 'enabled' }))?.value, 'true');
    assert.equal((await b.get({ path: 'gw/typed', field: 'obj' }))?.value, '{"a":1}');
  });

  test('reads a prefix with a sub-path from <mount>/data/<sub-path>/<path>', async () => {
    for (const kv_version of [2, 'auto'] as const) {
      const b = await backend({ uri: vault.url, prefix: 'kv/apisix', token: vault.rootToken, kv_version });
      assert.equal((await b.get({ path: 'jack', field: 'auth-key' }))?.value, 'apisix-jack-key');
    }
    assert.ok(vault.requests.some((r) => r.path === 'kv/data/apisix/jack' && r.method === 'GET'));
    const v1 = await backend({ uri: vault.url, prefix: '/legacy/gw/', token: vault.rootToken });
    assert.equal((await v1.get({ path: 'jack', field: 'auth-key' }))?.value, 'legacy-jack-key');
  });

  test('kv_version auto asks sys/internal/ui/mounts once per backend, for a v1 and a v2 mount', async () => {
    const before = vault.count('sys/internal/ui/mounts/');
    const v2 = await backend({ uri: vault.url, prefix: 'secret/gw', token: vault.rootToken });
    const v1 = await backend({ uri: vault.url, prefix: 'legacy/gw', token: vault.rootToken });
    for (let i = 0; i < 3; i++) {
      assert.equal((await v2.get({ path: 'jack', field: 'auth-key' }))?.value, 'jack-key-v2');
      assert.equal((await v1.get({ path: 'jack', field: 'auth-key' }))?.value, 'legacy-jack-key');
    }
    assert.equal(vault.count('sys/internal/ui/mounts/') - before, 2);
    assert.ok(vault.requests.some((r) => r.path === 'sys/internal/ui/mounts/secret/gw'));
  });

  test('explicit kv_version does not ask for the mount', async () => {
    const before = vault.count('sys/internal/ui/mounts/');
    const b = await backend({ uri: vault.url, prefix: 'legacy', token: vault.rootToken, kv_version: 1 });
    await b.get({ path: 'gw/jack', field: 'auth-key' });
    assert.equal(vault.count('sys/internal/ui/mounts/'), before);
  });

  test('treats a prefix without a mount (preflight 403) as KV v1, as the Vault CLI does', async () => {
    const b = await backend({ uri: vault.url, prefix: 'nomount', token: vault.rootToken });
    assert.equal(await b.get({ path: 'x', field: 'y' }), undefined);
    assert.ok(vault.requests.some((r) => r.path === 'nomount/x'));
  });

  test('rejects a version that is not a number, and any version on a KV v1 mount', async () => {
    const v2 = await backend({ uri: vault.url, prefix: 'secret', token: vault.rootToken });
    assert.match((await rejection(v2.get({ path: 'gw/jack', field: 'auth-key', version: 'latest' }))).message, /version "latest".*not a KV v2 version number/);
    const v1 = await backend({ uri: vault.url, prefix: 'legacy', token: vault.rootToken });
    assert.match((await rejection(v1.get({ path: 'gw/jack', field: 'auth-key', version: '2' }))).message, /KV v1 mount, which has no versions/);
  });
});

describe('authentication', () => {
  test('a static token is looked up once and used for every read', async () => {
    const token = (await admin(vault, 'POST', 'auth/token/create', { policies: ['gw-read'] })).auth.client_token;
    const before = vault.count('auth/token/lookup-self');
    const b = await backend({ uri: vault.url, prefix: 'secret', token });
    for (let i = 0; i < 3; i++) assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    await delay(50);
    assert.equal(vault.count('auth/token/lookup-self') - before, 1);
  });

  test('a static token outside its policy fails with 403 and no login attempt', async () => {
    const token = (await admin(vault, 'POST', 'auth/token/create', { policies: ['gw-read'] })).auth.client_token;
    const logins = vault.count('auth/approle/login');
    const b = await backend({ uri: vault.url, prefix: 'secret', token });
    const err = await rejection(b.get({ path: 'elsewhere/x', field: 'k' }));
    assert.ok(err instanceof VaultProviderError);
    assert.equal(err.status, 403);
    assert.match(err.message, /GET secret\/data\/elsewhere\/x failed: HTTP 403 \(permission denied\)/);
    assert.equal(vault.count('auth/approle/login'), logins);
  });

  test('a revoked static token fails with invalid token and is never replaced', async () => {
    const token = (await admin(vault, 'POST', 'auth/token/create', { policies: ['gw-read'] })).auth.client_token;
    const b = await backend({ uri: vault.url, prefix: 'secret', token });
    assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    vault.revokeToken(token);
    const err = await rejection(b.get({ path: 'gw/jack', field: 'auth-key' }));
    assert.match(err.message, /HTTP 403 \(permission denied; invalid token\)/);
    assertNoLeak(everything(err), { token });
  });

  test('AppRole: logs in once (with mount_point) and reads within the role policy', async () => {
    const before = vault.count('auth/approle/login');
    const b = await backend({ uri: vault.url, prefix: 'secret', auth: { method: 'approle', role_id: roleId, secret_id: secretId } });
    const values = await Promise.all([1, 2, 3].map(() => b.get({ path: 'gw/jack', field: 'auth-key' })));
    assert.deepEqual(
      values.map((v) => v?.value),
      ['jack-key-v2', 'jack-key-v2', 'jack-key-v2'],
    );
    assert.equal(vault.count('auth/approle/login') - before, 1);
  });

  test('AppRole: a read outside the policy fails without logging in again', async () => {
    const b = await backend({ uri: vault.url, prefix: 'secret', auth: { method: 'approle', role_id: roleId, secret_id: secretId } });
    await b.get({ path: 'gw/jack', field: 'auth-key' });
    const before = vault.count('auth/approle/login');
    const err = await rejection(b.get({ path: 'elsewhere/x', field: 'k' }));
    assert.match(err.message, /HTTP 403 \(permission denied\)/);
    assert.equal(vault.count('auth/approle/login'), before);
  });

  test('AppRole: a wrong secret_id fails with the login cause and one warn line, never the secret_id', async () => {
    const log = memoryLogger();
    const b = await backend({ uri: vault.url, prefix: 'secret', auth: { method: 'approle', role_id: roleId, secret_id: 'wrong-secret-id-123' } }, log.logger);
    const err = await rejection(b.get({ path: 'gw/jack', field: 'auth-key' }));
    assert.match(err.message, /AppRole login at auth\/approle\/login failed: HTTP 400 \(invalid role or secret ID\)/);
    const warns = log.lines.filter((l) => l.level === 'warn');
    assert.equal(warns.length, 1);
    assert.equal(warns[0].msg, 'vault login failed');
    assertNoLeak(everything(err) + JSON.stringify(log.lines), { 'secret id': 'wrong-secret-id-123' });
  });

  test('AppRole on a custom mount path', async () => {
    await admin(vault, 'POST', 'sys/auth/approle-edge', { type: 'approle' });
    await admin(vault, 'POST', 'auth/approle-edge/role/gw', { token_policies: 'gw-read' });
    const rid = (await admin(vault, 'GET', 'auth/approle-edge/role/gw/role-id')).data.role_id;
    const sid = (await admin(vault, 'POST', 'auth/approle-edge/role/gw/secret-id', {})).data.secret_id;
    const b = await backend({ uri: vault.url, prefix: 'secret', auth: { method: 'approle', role_id: rid, secret_id: sid, mount: 'approle-edge' } });
    assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    assert.equal(vault.count('auth/approle-edge/login'), 1);
  });

  test('Kubernetes: logs in with the service-account JWT read from jwt_path', async () => {
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await admin(vault, 'POST', 'sys/auth/k8s', { type: 'kubernetes' });
    await admin(vault, 'POST', 'auth/k8s/config', { kubernetes_host: 'https://127.0.0.1:6443', pem_keys: [keys.publicKey.export({ type: 'spki', format: 'pem' })] });
    await admin(vault, 'POST', 'auth/k8s/role/gatehouse', { bound_service_account_names: 'gatehouse', bound_service_account_namespaces: 'edge', token_policies: 'gw-read', token_ttl: '10m' });
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const input = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc({ exp, iss: 'https://kubernetes.default.svc', 'kubernetes.io': { namespace: 'edge', serviceaccount: { name: 'gatehouse', uid: 'sa-uid-1' } }, sub: 'system:serviceaccount:edge:gatehouse' })}`;
    const jwt = `${input}.${sign('sha256', Buffer.from(input), keys.privateKey).toString('base64url')}`;
    const jwtPath = join(tmp, 'token');
    writeFileSync(jwtPath, `${jwt}\n`);
    const b = await backend({ uri: vault.url, prefix: 'secret/gw', auth: { method: 'kubernetes', role: 'gatehouse', jwt_path: jwtPath, mount: 'k8s' } });
    assert.equal((await b.get({ path: 'jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    const issued = vault.tokens().find((t) => t.path === 'auth/k8s/login');
    assert.ok(issued);
    assert.deepEqual(issued.policies, ['default', 'gw-read']);

    const missing = await backend({ uri: vault.url, prefix: 'secret/gw', auth: { method: 'kubernetes', role: 'gatehouse', jwt_path: join(tmp, 'absent'), mount: 'k8s' } });
    assert.match((await rejection(missing.get({ path: 'jack', field: 'auth-key' }))).message, /cannot read the service-account token file ".*absent" \(ENOENT\)/);

    // flip one character in the middle of the signature (the last one may only carry padding bits)
    const at = jwt.length - 20;
    writeFileSync(jwtPath, jwt.slice(0, at) + (jwt[at] === 'A' ? 'B' : 'A') + jwt.slice(at + 1));
    const forged = await backend({ uri: vault.url, prefix: 'secret/gw', auth: { method: 'kubernetes', role: 'gatehouse', jwt_path: jwtPath, mount: 'k8s' } });
    const err = await rejection(forged.get({ path: 'jack', field: 'auth-key' }));
    assert.match(err.message, /Kubernetes login at auth\/k8s\/login failed: HTTP 403 \(permission denied\)/);
    assertNoLeak(everything(err), { jwt });
  });

  test('namespace: sends X-Vault-Namespace on every request and reads that namespace’s mounts', async () => {
    await admin(vault, 'POST', 'sys/namespaces/team1', {});
    await admin(vault, 'POST', 'sys/mounts/nskv', { type: 'kv', options: { version: '2' } }, 'team1');
    await admin(vault, 'POST', 'nskv/data/gw/jack', { data: { 'auth-key': 'team1-key' } }, 'team1');
    const mark = vault.requests.length;
    const b = await backend({ uri: vault.url, prefix: 'nskv/gw', token: vault.rootToken, namespace: 'team1' });
    assert.deepEqual(await b.get({ path: 'jack', field: 'auth-key' }), { value: 'team1-key', ttl: undefined, version: '1' });
    // (other backends' timers may talk to the server meanwhile: look at this backend's paths only)
    const sent = vault.requests.slice(mark).filter((r) => r.path.includes('nskv'));
    assert.ok(sent.length >= 2);
    assert.ok(sent.every((r) => r.namespace === 'team1'));
    const outside = await backend({ uri: vault.url, prefix: 'nskv/gw', token: vault.rootToken });
    assert.equal(await outside.get({ path: 'jack', field: 'auth-key' }), undefined);
  });
});

describe('token lifetime', () => {
  test('renews an AppRole token before it expires and keeps reading past its first TTL; close() stops renewing', async () => {
    await admin(vault, 'POST', 'auth/approle/role/short', { token_policies: 'gw-read', token_ttl: '4s', token_max_ttl: '60s' });
    const rid = (await admin(vault, 'GET', 'auth/approle/role/short/role-id')).data.role_id;
    const sid = (await admin(vault, 'POST', 'auth/approle/role/short/secret-id', {})).data.secret_id;
    const logins = vault.count('auth/approle/login');
    const renewals = vault.count('auth/token/renew-self');
    const b = await backend({ uri: vault.url, prefix: 'secret', auth: { method: 'approle', role_id: rid, secret_id: sid } });
    assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    await delay(4600);
    assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    assert.ok(vault.count('auth/token/renew-self') - renewals >= 1, 'renew-self was called');
    assert.equal(vault.count('auth/approle/login') - logins, 1, 'no second login was needed');
    await b.close?.();
    const after = vault.count('auth/token/renew-self');
    await delay(1500);
    assert.equal(vault.count('auth/token/renew-self'), after);
    await assert.rejects(b.get({ path: 'gw/jack', field: 'auth-key' }), /closed/);
  });

  test('renews a renewable static token found by lookup-self', async () => {
    const token = (await admin(vault, 'POST', 'auth/token/create', { policies: ['gw-read'], ttl: '4s' })).auth.client_token;
    const renewals = vault.count('auth/token/renew-self');
    const b = await backend({ uri: vault.url, prefix: 'secret', token });
    assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    await delay(4600);
    assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    assert.ok(vault.count('auth/token/renew-self') - renewals >= 1);
  });

  test('a renewal that fails (token revoked) is followed by a new login before any read needs one', async () => {
    await admin(vault, 'POST', 'auth/approle/role/fragile', { token_policies: 'gw-read', token_ttl: '3s', token_max_ttl: '60s' });
    const rid = (await admin(vault, 'GET', 'auth/approle/role/fragile/role-id')).data.role_id;
    const sid = (await admin(vault, 'POST', 'auth/approle/role/fragile/secret-id', {})).data.secret_id;
    const log = memoryLogger();
    const b = await backend({ uri: vault.url, prefix: 'secret', auth: { method: 'approle', role_id: rid, secret_id: sid } }, log.logger);
    const logins = vault.count('auth/approle/login');
    assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    const first = vault.tokens().filter((t) => t.path === 'auth/approle/login' && t.expireAt - Date.now() < 3500);
    assert.equal(first.length, 1);
    vault.revokeToken(first[0].token);
    const deadline = Date.now() + 6000;
    while (vault.count('auth/approle/login') - logins < 2 && Date.now() < deadline) await delay(50);
    assert.equal(vault.count('auth/approle/login') - logins, 2, 'logged in again after the failed renewal');
    assert.ok(log.lines.some((l) => l.level === 'warn' && l.msg === 'vault token renewal failed; logging in again' && /HTTP 403/.test(String(l.cause))));
    assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    assert.equal(vault.count('auth/approle/login') - logins, 2);
    assertNoLeak(JSON.stringify(log.lines), { token: first[0].token, 'secret id': sid });
  });

  test('a token living longer than a timer can wait (100 days) is not renewed in a loop', async () => {
    const s = await startVaultServer({ maxLeaseTtl: 200 * 86400 });
    try {
      await admin(s, 'PUT', 'sys/policies/acl/gw-read', { policy: POLICY });
      const token = (await admin(s, 'POST', 'auth/token/create', { policies: ['gw-read'], ttl: '2400h' })).auth.client_token;
      await admin(s, 'POST', 'secret/data/gw/jack', { data: { 'auth-key': 'k' } });
      const b = await backend({ uri: s.url, prefix: 'secret', token, kv_version: 2 });
      assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'k');
      await delay(400);
      assert.equal(s.count('auth/token/lookup-self'), 1);
      assert.equal(s.count('auth/token/renew-self'), 0);
    } finally {
      await s.close();
    }
  });

  test('logs in again once when its token was revoked, even for concurrent reads', async () => {
    const b = await backend({ uri: vault.url, prefix: 'secret', auth: { method: 'approle', role_id: roleId, secret_id: secretId } });
    assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'jack-key-v2');
    const mine = vault.tokens().filter((t) => t.path === 'auth/approle/login');
    for (const t of mine) vault.revokeToken(t.token);
    const before = vault.count('auth/approle/login');
    const values = await Promise.all([1, 2, 3, 4].map(() => b.get({ path: 'gw/jack', field: 'auth-key' })));
    assert.deepEqual(new Set(values.map((v) => v?.value)), new Set(['jack-key-v2']));
    assert.equal(vault.count('auth/approle/login') - before, 1);
  });

  test('logs in again when the server says its token expired', async () => {
    const s = await startVaultServer();
    try {
      await admin(s, 'PUT', 'sys/policies/acl/gw-read', { policy: POLICY });
      await admin(s, 'POST', 'secret/data/gw/jack', { data: { 'auth-key': 'k' } });
      await admin(s, 'POST', 'sys/auth/approle', { type: 'approle' });
      await admin(s, 'POST', 'auth/approle/role/gw', { token_policies: 'gw-read', token_ttl: '1h' });
      const rid = (await admin(s, 'GET', 'auth/approle/role/gw/role-id')).data.role_id;
      const sid = (await admin(s, 'POST', 'auth/approle/role/gw/secret-id', {})).data.secret_id;
      const b = await backend({ uri: s.url, prefix: 'secret', auth: { method: 'approle', role_id: rid, secret_id: sid } });
      assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'k');
      s.advanceClock(2 * 3600 * 1000);
      assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'k');
      assert.equal(s.count('auth/approle/login'), 2);
    } finally {
      await s.close();
    }
  });
});
