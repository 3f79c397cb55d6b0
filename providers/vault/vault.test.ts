// The vault provider (create → get, node-vault underneath) against the Vault test server over real HTTP(S).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { inspect } from 'node:util';
import Ajv from 'ajv';
import { request } from 'undici';
import NodeVault = require('node-vault');
import vaultProvider, { VaultProviderError } from './index';
import type { VaultConfig } from './schema';
import type { Logger, SecretBackend } from '../../core/sdk';
import { startVaultServer, type VaultServer } from '../../test/servers/vault';
import { tapLog } from '../../test/helpers/leak-tap';

// ---------------------------------------------------------------------------------------------
// helpers

interface LogLine {
  level: string;
  msg?: string;
  [k: string]: unknown;
}

function memoryLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const make = (bindings: Record<string, unknown>): Logger => {
    const at = (level: string) => (obj: object | string, msg?: string) => {
      const line = typeof obj === 'string' ? { level, ...bindings, msg: obj } : { level, ...bindings, ...obj, msg };
      lines.push(line);
      // scanned for planted secrets with the rest of the run's output (test/helpers/leak-scan.ts)
      tapLog(inspect(line, { depth: 6, breakLength: Infinity }) + '\n');
    };
    return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (b) => make({ ...bindings, ...b }) };
  };
  return { logger: make({}), lines };
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Raw call to the test server with its root token (setup only). */
async function admin(server: VaultServer, method: string, path: string, body?: unknown, ns?: string): Promise<any> {
  const headers: Record<string, string> = { 'x-vault-token': server.rootToken };
  if (ns) headers['x-vault-namespace'] = ns;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await request(`${server.url}/v1/${path}`, { method: method as 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.body.text();
  assert.ok(r.statusCode < 300, `${method} ${path}: ${r.statusCode} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

type Conf = Partial<VaultConfig> & Pick<VaultConfig, 'uri' | 'prefix'>;

const backends: SecretBackend[] = [];
async function backend(conf: Conf, logger: Logger = memoryLogger().logger): Promise<SecretBackend> {
  const b = await vaultProvider.create({ kv_version: 'auto', timeout: 5, ...conf } as VaultConfig, { logger, clock: { now: () => Date.now() }, resolvePath });
  backends.push(b);
  return b;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  assert.fail('expected a rejection');
}

/** Every way an error could be printed, logged or serialised. */
function everything(err: Error): string {
  return [err.message, err.stack, inspect(err, { depth: 10, showHidden: true }), JSON.stringify(err), String((err as { cause?: unknown }).cause ?? '')].join('\n');
}

function assertNoLeak(text: string, secrets: Record<string, string>): void {
  for (const [what, s] of Object.entries(secrets)) assert.equal(text.includes(s), false, `the ${what} leaked`);
}

const POLICY = `
path "secret/data/gw/*" { capabilities = ["read"] }
path "kv/data/apisix/*" { capabilities = ["read"] }
`;

let vault: VaultServer;
let roleId: string;
let secretId: string;
const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-vault-'));

before(async () => {
  vault = await startVaultServer();
  const s = vault;
  await admin(s, 'POST', 'sys/mounts/legacy', { type: 'kv' });
  await admin(s, 'POST', 'sys/mounts/kv', { type: 'kv', options: { version: '2' } });
  await admin(s, 'POST', 'legacy/gw/jack', { 'auth-key': 'legacy-jack-key' });
  await admin(s, 'POST', 'legacy/gw/short', { 'auth-key': 'short-lived', ttl: '1h' });
  await admin(s, 'POST', 'secret/data/gw/jack', { data: { 'auth-key': 'jack-key-v1' } });
  await admin(s, 'POST', 'secret/data/gw/jack', { data: { 'auth-key': 'jack-key-v2' } });
  await admin(s, 'POST', 'secret/data/gw/typed', { data: { port: 5432, enabled: true, obj: { a: 1 }, nothing: null } });
  await admin(s, 'POST', 'secret/data/gw/deleted', { data: { k: 'old' } });
  await admin(s, 'POST', 'secret/data/gw/deleted', { data: { k: 'newest' } });
  await admin(s, 'DELETE', 'secret/data/gw/deleted');
  await admin(s, 'POST', 'secret/data/gw/destroyed', { data: { k: 'burnt' } });
  await admin(s, 'POST', 'secret/data/gw/destroyed', { data: { k: 'current' } });
  await admin(s, 'POST', 'secret/destroy/gw/destroyed', { versions: [1] });
  await admin(s, 'POST', 'secret/data/elsewhere/x', { data: { k: 'not for the gateway' } });
  await admin(s, 'POST', 'kv/data/apisix/jack', { data: { 'auth-key': 'apisix-jack-key' } });
  await admin(s, 'PUT', 'sys/policies/acl/gw-read', { policy: POLICY });
  await admin(s, 'POST', 'sys/auth/approle', { type: 'approle' });
  await admin(s, 'POST', 'auth/approle/role/gw', { token_policies: ['gw-read'], token_ttl: '5m' });
  roleId = (await admin(s, 'GET', 'auth/approle/role/gw/role-id')).data.role_id;
  secretId = (await admin(s, 'POST', 'auth/approle/role/gw/secret-id', {})).data.secret_id;
});

after(async () => {
  for (const b of backends) await b.close?.();
  await vault?.close();
  rmSync(tmp, { recursive: true, force: true });
});

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

describe('failures', () => {
  test('a server that is down makes get reject with a clear error naming the path', async () => {
    const s = await startVaultServer();
    const b = await backend({ uri: s.url, prefix: 'secret', token: s.rootToken, kv_version: 2 });
    await s.close();
    const err = await rejection(b.get({ path: 'gw/jack', field: 'auth-key' }));
    assert.ok(err instanceof VaultProviderError);
    assert.equal(err.code, 'ECONNREFUSED');
    assert.equal(err.message, `vault ${s.url}: GET secret/data/gw/jack failed: connection refused (ECONNREFUSED)`);
  });

  test('a slow server makes get reject after the timeout, not after the delay', async () => {
    const s = await startVaultServer();
    try {
      const b = await backend({ uri: s.url, prefix: 'secret', token: s.rootToken, kv_version: 2, timeout: 0.3 });
      s.faults.latencyMs = 5000;
      const t0 = Date.now();
      const err = await rejection(b.get({ path: 'gw/jack', field: 'auth-key' }));
      const took = Date.now() - t0;
      assert.ok(took < 2000, `took ${took} ms`);
      assert.match(err.message, /GET secret\/data\/gw\/jack failed: no answer within 0\.3 s \(timeout\)/);
    } finally {
      await s.close();
    }
  });

  test('a 5xx and a sealed Vault make get reject with the status and Vault’s words', async () => {
    const s = await startVaultServer();
    try {
      const b = await backend({ uri: s.url, prefix: 'secret', token: s.rootToken, kv_version: 2 });
      s.faults.status = 500;
      assert.match((await rejection(b.get({ path: 'gw/jack', field: 'auth-key' }))).message, /HTTP 500 \(internal error\)$/);
      s.faults.status = undefined;
      s.seal();
      const sealed = await rejection(b.get({ path: 'gw/jack', field: 'auth-key' }));
      assert.equal((sealed as VaultProviderError).status, 503);
      assert.match(sealed.message, /HTTP 503 \(Vault is sealed\)$/);
      s.unseal();
      assert.equal(await b.get({ path: 'gw/jack', field: 'auth-key' }), undefined);
    } finally {
      await s.close();
    }
  });

  test('a failed version detection is retried by the next read', async () => {
    const s = await startVaultServer();
    try {
      await admin(s, 'POST', 'secret/data/gw/jack', { data: { 'auth-key': 'k' } });
      const b = await backend({ uri: s.url, prefix: 'secret', token: s.rootToken });
      s.faults.status = 502;
      await rejection(b.get({ path: 'gw/jack', field: 'auth-key' }));
      s.faults.status = undefined;
      assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'k');
    } finally {
      await s.close();
    }
  });

  test('errors and logs never contain the secret value, the token or the secret_id', async () => {
    const planted = 'planted-S3CRET-value-7f3a9c';
    const s = await startVaultServer();
    const log = memoryLogger();
    try {
      await admin(s, 'PUT', 'sys/policies/acl/gw-read', { policy: POLICY });
      await admin(s, 'POST', 'secret/data/gw/jack', { data: { 'auth-key': planted } });
      await admin(s, 'POST', 'sys/auth/approle', { type: 'approle' });
      await admin(s, 'POST', 'auth/approle/role/gw', { token_policies: 'gw-read', token_ttl: '1h' });
      const rid = (await admin(s, 'GET', 'auth/approle/role/gw/role-id')).data.role_id;
      const sid = (await admin(s, 'POST', 'auth/approle/role/gw/secret-id', {})).data.secret_id;
      const static_ = (await admin(s, 'POST', 'auth/token/create', { policies: ['gw-read'] })).auth.client_token;
      const viaRole = await backend({ uri: s.url, prefix: 'secret', auth: { method: 'approle', role_id: rid, secret_id: sid }, timeout: 0.3 }, log.logger);
      const viaToken = await backend({ uri: s.url, prefix: 'secret', token: static_, timeout: 0.3 }, log.logger);
      assert.equal((await viaRole.get({ path: 'gw/jack', field: 'auth-key' }))?.value, planted);
      assert.equal((await viaToken.get({ path: 'gw/jack', field: 'auth-key' }))?.value, planted);
      const loginToken = s.tokens().find((t) => t.path === 'auth/approle/login')?.token as string;
      const secrets = { 'secret value': planted, 'static token': static_, 'login token': loginToken, 'secret id': sid, 'root token': s.rootToken };

      const errors: Error[] = [];
      for (const b of [viaRole, viaToken]) {
        errors.push(await rejection(b.get({ path: 'elsewhere/x', field: 'k' })));
        s.faults.status = 500;
        errors.push(await rejection(b.get({ path: 'gw/jack', field: 'auth-key' })));
        s.faults.status = undefined;
        s.faults.latencyMs = 2000;
        errors.push(await rejection(b.get({ path: 'gw/jack', field: 'auth-key' })));
        s.faults.latencyMs = 0;
        errors.push(await rejection(b.get({ path: 'gw/jack', field: 'auth-key', version: 'x' })));
      }
      s.revokeToken(static_);
      errors.push(await rejection(viaToken.get({ path: 'gw/jack', field: 'auth-key' })));
      await s.stop();
      errors.push(await rejection(viaRole.get({ path: 'gw/jack', field: 'auth-key' })));
      errors.push(await rejection(viaToken.get({ path: 'gw/jack', field: 'auth-key' })));
      assert.equal(errors.length, 11);
      for (const e of errors) assertNoLeak(everything(e), secrets);
      assertNoLeak(JSON.stringify(log.lines), secrets);
    } finally {
      await s.close();
    }
  });
});

describe('TLS', () => {
  const dir = join(tmp, 'tls');

  function openssl(args: string[]): void {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  }

  let server: VaultServer;
  before(async () => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
    } catch {
      assert.fail('the openssl CLI is needed to generate the test CA and server certificate: install it (apt-get install openssl)');
    }
    execFileSync('mkdir', ['-p', dir]);
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Gatehouse Test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
    openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf']);
    server = await startVaultServer({ tls: { key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) } });
    const seeder = NodeVault({ endpoint: server.url, token: server.rootToken, requestOptions: { ca: readFileSync(join(dir, 'ca.pem'), 'utf8'), timeout: 5000 } });
    await seeder.write('secret/data/gw/jack', { data: { 'auth-key': 'over-tls' } });
  });
  after(async () => {
    await server?.close();
  });

  test('verifies the server against tls.ca given as a file path or as PEM text', async () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:/);
    const token = server.rootToken;
    const byPath = await backend({ uri: server.url, prefix: 'secret', token, tls: { ca: join(dir, 'ca.pem') } });
    assert.equal((await byPath.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'over-tls');
    const byPem = await backend({ uri: server.url, prefix: 'secret', token, tls: { ca: readFileSync(join(dir, 'ca.pem'), 'utf8') } });
    assert.equal((await byPem.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'over-tls');
  });

  test('refuses a server certificate it cannot verify, unless tls.verify is false', async () => {
    const strict = await backend({ uri: server.url, prefix: 'secret', token: server.rootToken, kv_version: 2 });
    const err = await rejection(strict.get({ path: 'gw/jack', field: 'auth-key' }));
    // the whole message, the same on every Node version (without Node 24's --use-system-ca hint: tls.ca is the setting here)
    assert.equal(err.message, `vault ${server.url}: GET secret/data/gw/jack failed: unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`);
    assertNoLeak(everything(err), { token: server.rootToken });
    const log = memoryLogger();
    const lax = await backend({ uri: server.url, prefix: 'secret', token: server.rootToken, kv_version: 2, tls: { verify: false } }, log.logger);
    assert.equal((await lax.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'over-tls');
    assert.ok(log.lines.some((l) => l.level === 'warn' && /verification is disabled/.test(String(l.msg))));
  });

  test('reads a relative tls.ca from the folder services.resolvePath resolves from (the config file\'s), not the working directory', async () => {
    const services = { logger: memoryLogger().logger, clock: { now: Date.now }, resolvePath: (p: string) => resolvePath(dir, p) };
    const b = await vaultProvider.create({ uri: server.url, prefix: 'secret', token: server.rootToken, kv_version: 2, timeout: 5, tls: { ca: 'ca.pem' } }, services);
    assert.equal((await b.get({ path: 'gw/jack', field: 'auth-key' }))?.value, 'over-tls');
    await b.close?.();
  });

  test('names an unreadable tls.ca file at create', async () => {
    await assert.rejects(async () => vaultProvider.create({ uri: server.url, prefix: 'secret', token: 't', kv_version: 'auto', timeout: 5, tls: { ca: join(dir, 'missing.pem') } }, { logger: memoryLogger().logger, clock: { now: Date.now }, resolvePath }), /tls\.ca: cannot read PEM file ".*missing\.pem" \(ENOENT\)/);
  });
});

describe('configuration', () => {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
  const validate = ajv.compile(vaultProvider.schema);
  const valid = (c: Record<string, unknown>) => validate(structuredClone(c));

  test('the schema accepts token, AppRole and Kubernetes configs and applies defaults', () => {
    const c: Record<string, unknown> = { uri: 'http://127.0.0.1:8200', prefix: 'kv/apisix', token: '$env://VAULT_TOKEN' };
    assert.equal(validate(c), true, JSON.stringify(validate.errors));
    assert.equal(c.kv_version, 'auto');
    assert.equal(c.timeout, 5);
    assert.equal(valid({ uri: 'https://v:8200', prefix: 'kv', auth: { method: 'approle', role_id: 'r', secret_id: 's', mount: 'approle' }, namespace: 'ns1', kv_version: 2, timeout: 2, tls: { ca: '/etc/ca.pem' } }), true);
    assert.equal(valid({ uri: 'https://v:8200', prefix: 'kv', auth: { method: 'kubernetes', role: 'gw' } }), true);
  });

  test('the schema refuses both token and auth, neither, mixed auth fields and unknown fields', () => {
    assert.equal(valid({ uri: 'u', prefix: 'p', token: 't', auth: { method: 'approle', role_id: 'r', secret_id: 's' } }), false);
    assert.equal(valid({ uri: 'u', prefix: 'p' }), false);
    assert.equal(valid({ uri: 'u', prefix: 'p', auth: { method: 'approle', role_id: 'r' } }), false);
    assert.equal(valid({ uri: 'u', prefix: 'p', auth: { method: 'kubernetes', role: 'r', secret_id: 's' } }), false);
    assert.equal(valid({ uri: 'u', prefix: 'p', auth: { method: 'ldap' } }), false);
    assert.equal(valid({ uri: 'u', prefix: 'p', token: 't', kv_version: 3 }), false);
    assert.equal(valid({ uri: 'u', prefix: 'p', token: 't', extra: 1 }), false);
  });

  test('the schema marks the plaintext secrets writeOnly so the Admin API redacts them', () => {
    const props = (vaultProvider.schema as any).properties;
    assert.equal(props.token.writeOnly, true);
    assert.equal(props.auth.properties.secret_id.writeOnly, true);
    assert.equal(props.tls.properties.key.writeOnly, true);
    assert.equal(props.uri.writeOnly, undefined);
  });

  test('create refuses configs the schema cannot see once references are resolved', async () => {
    const services = { logger: memoryLogger().logger, clock: { now: Date.now }, resolvePath };
    const base = { uri: 'http://127.0.0.1:8200', prefix: 'kv', kv_version: 'auto', timeout: 5 } as const;
    await assert.rejects(async () => vaultProvider.create({ ...base, token: 't', auth: { method: 'approle', role_id: 'r', secret_id: 's' } }, services), /exactly one of "token" and "auth"/);
    await assert.rejects(async () => vaultProvider.create({ ...base }, services), /exactly one of "token" and "auth"/);
    await assert.rejects(async () => vaultProvider.create({ ...base, uri: 'vault:8200', token: 't' }, services), /must be http:\/\/ or https:\/\//);
    await assert.rejects(async () => vaultProvider.create({ ...base, uri: 'not a url', token: 't' }, services), /is not a URL/);
    await assert.rejects(async () => vaultProvider.create({ ...base, prefix: '/', token: 't' }, services), /prefix must name a KV mount/);
  });

  test('the provider is named vault and ignores VAULT_TOKEN / VAULT_NAMESPACE from the environment', async () => {
    assert.equal(vaultProvider.name, 'vault');
    const s = await startVaultServer();
    const saved = { t: process.env.VAULT_TOKEN, n: process.env.VAULT_NAMESPACE };
    try {
      process.env.VAULT_TOKEN = 'env-token-must-not-be-sent';
      process.env.VAULT_NAMESPACE = 'env-ns';
      const b = await backend({ uri: s.url, prefix: 'secret', auth: { method: 'approle', role_id: 'r', secret_id: 's' } });
      await rejection(b.get({ path: 'x', field: 'y' }));
      assert.ok(s.requests.length >= 1);
      assert.ok(s.requests.every((r) => !r.hasToken && r.namespace === undefined));
    } finally {
      if (saved.t === undefined) delete process.env.VAULT_TOKEN;
      else process.env.VAULT_TOKEN = saved.t;
      if (saved.n === undefined) delete process.env.VAULT_NAMESPACE;
      else process.env.VAULT_NAMESPACE = saved.n;
      await s.close();
    }
  });
});
