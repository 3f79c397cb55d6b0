// The vault provider against the Vault test server: failures (down, slow, 5xx, sealed) and what
// errors and logs may hold, TLS (tls.ca, tls.verify), and the config's schema and checks at create.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import Ajv from 'ajv';
import NodeVault = require('node-vault');
import vaultProvider, { VaultProviderError } from './index';
import { startVaultServer, type VaultServer } from '../../test/servers/vault';
import { admin, assertNoLeak, backend, delay, everything, memoryLogger, POLICY, rejection, tmp, useSeededVault } from './vault.fixture';

useSeededVault();

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
