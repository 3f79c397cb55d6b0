// The reference policy's checks on a validated config (docs/configuration.md#secret_policy): the
// gateway's own credentials whatever reference names them, env patterns, destinations, and what
// each secret resource's credentials are bound by. The end-to-end checks against real servers are
// test/secret-policy.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import keyAuth from '../../plugins/key-auth';
import envProvider from '../../providers/env';
import vaultProvider from '../../providers/vault';
import awsProvider from '../../providers/aws';
import { createRegistry } from './registry';
import { validateConfig } from './validate';
import { checkSecretPolicy } from './secret-policy';

const registry = createRegistry([keyAuth], [envProvider, vaultProvider, awsProvider]);

function check(doc: Record<string, unknown>) {
  const v = validateConfig(doc, registry);
  assert.equal(v.issues, undefined, JSON.stringify(v.issues));
  return checkSecretPolicy(v.config!, v.refs!, registry, { baseDir: '/srv/gatehouse', protectedFiles: [] });
}

const consumer = (key: string) => ({ username: 'u', plugins: { 'key-auth': { key } } });
const vault = { id: 'vault/a', uri: 'https://Vault.Example.com:443/v1', prefix: 'kv', token: '$ENV://VAULT_TOKEN' };

test('every reference the gateway\'s own credentials use is refused in data sections: admin.key as a $secret://, the etcd password and key by variable', () => {
  const r = check({
    admin: { key: '$secret://vault/a/gateway/admin-key' },
    config_store: { password: '$env://ETCD_PW', encryption_key: '$env://ETCD_KEY/hex', user: 'gw' },
    secrets: [vault],
    consumers: [consumer('$secret://vault/a/gateway/admin-key#2'), { ...consumer('$env://ETCD_PW'), username: 'v' }, { ...consumer('$env://ETCD_KEY'), username: 'w' }],
  });
  assert.deepEqual(
    r.issues.map((i) => `${i.path}: ${i.message}`),
    [
      "consumers[0].plugins.key-auth.key: $secret://vault/a/gateway/admin-key is the gateway's own credential (admin.key): routes, consumers and secret resources can never reference it",
      "consumers[1].plugins.key-auth.key: $env://ETCD_PW holds the gateway's own credential (config_store.password): routes, consumers and secret resources can never reference it",
      "consumers[2].plugins.key-auth.key: $env://ETCD_KEY holds the gateway's own credential (config_store.encryption_key): routes, consumers and secret resources can never reference it",
    ],
  );
});

test('secret_policy.env takes exact names and prefixes; an empty list forbids $env:// in data sections, not in gateway settings', () => {
  const ok = check({ secret_policy: { env: ['APP_*', 'VAULT_TOKEN'] }, admin: { key: '$env://OTHER' }, secrets: [vault], consumers: [consumer('$env://APP_JACK')] });
  assert.deepEqual(ok.issues, []);
  const none = check({ secret_policy: { env: [] }, secrets: [vault], consumers: [consumer('$env://APP_JACK')] });
  assert.deepEqual(
    none.issues.map((i) => i.path),
    ['consumers[0].plugins.key-auth.key', 'secrets[0].token'],
  );
  assert.match(none.issues[0].message, /^\$env:\/\/APP_JACK is not allowed by secret_policy\.env/);
});

test('credentials are named without case, field or version, bound to the normalised origin; destinations mark what may go anywhere', () => {
  const r = check({
    secret_policy: { destinations: ['https://vault.example.com', 'not a url'] },
    secrets: [
      { ...vault, namespace: '$env://VAULT_TOKEN/ns' },
      { id: 'aws/a', region: 'eu-west-1' },
      { id: 'aws/b', endpoint_url: 'http://127.0.0.1:4566', access_key_id: '$secret://vault/a/aws/id#3', secret_access_key: 'literal' },
    ],
  });
  assert.deepEqual(
    r.issues.map((i) => i.path),
    ['secret_policy.destinations[1]'],
  );
  assert.deepEqual(r.uses, [
    { path: 'secrets[0]', credential: '$env://VAULT_TOKEN', destination: 'https://vault.example.com', allowed: true },
    { path: 'secrets[1]', credential: 'aws:default-credential-chain', destination: 'https://secretsmanager.eu-west-1.amazonaws.com', allowed: false },
    { path: 'secrets[2]', credential: '$secret://vault/a/aws/id', destination: 'http://127.0.0.1:4566', allowed: false },
  ]);
});

test('where credentials go and which files are read must be written literally', () => {
  const r = check({ secrets: [{ ...vault, uri: '$env://VAULT_ADDR' }, { id: 'vault/k', uri: 'https://v:8200', prefix: 'kv', auth: { method: 'kubernetes', role: 'r', jwt_path: '$env://JWT' } }] });
  assert.deepEqual(
    r.issues.map((i) => i.path),
    ['secrets[0]', 'secrets[1].auth.jwt_path'],
  );
  // nothing is bound for a destination that is not known before resolving
  assert.equal(r.uses.some((u) => u.path === 'secrets[0]'), false);
});
