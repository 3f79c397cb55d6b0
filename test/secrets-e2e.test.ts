// End to end: references in plugin config resolved from Vault (KV v1, KV v2) and AWS Secrets
// Manager through the real node-vault and AWS SDK clients talking to the protocol-faithful test
// servers; failures, stale serving, recovery, and a leak scan of everything the gateway said.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import NodeVault from 'node-vault';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { request } from 'undici';
import { bootGateway, delay, type TestGateway } from './helpers/harness';
import { showSecret } from './helpers/plugins';
import { parseReference } from '../core/secrets/reference';
import { startVaultServer, type VaultServer } from './servers/vault';
import { startSecretsManagerServer, type SecretsManagerServer } from './servers/secrets-manager';

// values planted to prove they never leak into logs, errors or metrics
const PLANTED = {
  kv1: 'planted-kv1-9f1c2e',
  kv2v1: 'planted-kv2-first-77aa',
  kv2v2: 'planted-kv2-second-88bb',
  aws: 'planted-aws-3c3c3c',
  awsRotated: 'planted-aws-rotated-4d4d',
  vaultToken: 'hvs-planted-root-token-0000',
  awsSecretKey: 'planted-aws-secret-key-5e5e',
};

let vault: VaultServer;
let sm: SecretsManagerServer;
let smClient: SecretsManagerClient;
const gateways: TestGateway[] = [];

before(async () => {
  vault = await startVaultServer({ rootToken: PLANTED.vaultToken });
  const v = NodeVault({ endpoint: vault.url, token: PLANTED.vaultToken, requestOptions: { timeout: 5000 } });
  await v.mount({ mount_point: 'apisix', type: 'kv', options: { version: '1' } });
  await v.write('apisix/jack', { 'auth-key': PLANTED.kv1 });
  await v.mount({ mount_point: 'kv', type: 'kv', options: { version: '2' } });
  await v.write('kv/data/gateway/jack', { data: { 'auth-key': PLANTED.kv2v1 } });
  await v.write('kv/data/gateway/jack', { data: { 'auth-key': PLANTED.kv2v2 } });

  sm = await startSecretsManagerServer({ accessKeyId: 'test', secretAccessKey: PLANTED.awsSecretKey });
  smClient = new SecretsManagerClient({ region: 'us-east-1', endpoint: sm.url, credentials: { accessKeyId: 'test', secretAccessKey: PLANTED.awsSecretKey } });
  await smClient.send(new CreateSecretCommand({ Name: 'gateway/jack', SecretString: JSON.stringify({ 'auth-key': PLANTED.aws }) }));

  process.env.GH_E2E_VAULT_TOKEN = PLANTED.vaultToken;
  process.env.GH_E2E_AWS_SECRET = PLANTED.awsSecretKey;
});

after(async () => {
  for (const g of gateways) await g.close();
  smClient?.destroy();
  await vault?.close();
  await sm?.close();
});

const secrets = () => [
  { id: 'vault/v1', uri: vault.url, prefix: 'apisix', token: '$env://GH_E2E_VAULT_TOKEN', kv_version: 1 },
  { id: 'vault/v2', uri: vault.url, prefix: 'kv/gateway', token: '$env://GH_E2E_VAULT_TOKEN' },
  { id: 'aws/prod', region: 'us-east-1', endpoint_url: sm.url, access_key_id: 'test', secret_access_key: '$env://GH_E2E_AWS_SECRET' },
];

const route = (id: string, value: string) => ({ id, uri: `/${id}`, plugins: { 'show-secret': { value } } });

async function boot(extra: Record<string, unknown> = {}): Promise<TestGateway> {
  const g = await bootGateway(
    {
      secrets: secrets(),
      routes: [
        route('kv1', '$secret://vault/v1/jack/auth-key'),
        route('kv2', '$secret://vault/v2/jack/auth-key'),
        route('kv2-pinned', '$secret://vault/v2/jack/auth-key#1'),
        route('aws', '$secret://aws/prod/gateway/jack/auth-key'),
      ],
      ...extra,
    },
    { extensions: [showSecret] },
  );
  gateways.push(g);
  return g;
}

async function value(g: TestGateway, path: string): Promise<{ status: number; value?: string }> {
  const r = await request(`${g.url}${path}`);
  await r.body.text();
  return { status: r.statusCode, value: r.headers['x-value'] as string | undefined };
}

test('references resolve from Vault KV v1, KV v2 (latest and pinned) and AWS Secrets Manager through the real clients', async () => {
  const g = await boot();
  assert.deepEqual(await value(g, '/kv1'), { status: 200, value: PLANTED.kv1 });
  assert.deepEqual(await value(g, '/kv2'), { status: 200, value: PLANTED.kv2v2 });
  assert.deepEqual(await value(g, '/kv2-pinned'), { status: 200, value: PLANTED.kv2v1 });
  assert.deepEqual(await value(g, '/aws'), { status: 200, value: PLANTED.aws });
  assert.ok(sm.count('BatchGetSecretValue') >= 1, 'AWS references were warmed with BatchGetSecretValue');
});

test('Vault down after warm-up: the last good value keeps serving with zero failed requests; a change after it returns is picked up', async () => {
  const g = await boot({ secret_cache: { ttl: 1, stale_if_error: 3600 } });
  assert.equal((await value(g, '/kv1')).value, PLANTED.kv1);
  await vault.stop();
  try {
    const t0 = Date.now();
    let failed = 0;
    let n = 0;
    while (Date.now() - t0 < 2500) {
      const r = await value(g, '/kv1');
      n++;
      if (r.status !== 200 || r.value !== PLANTED.kv1) failed++;
      await delay(20);
    }
    assert.equal(failed, 0, `${failed} of ${n} requests failed while Vault was down`);
    assert.ok(g.logs.lines.some((l) => l.msg === 'secret refresh failed; serving the last good value' && l.reference === '$secret://vault/v1/jack/auth-key'));
  } finally {
    await vault.start();
  }
  const v = NodeVault({ endpoint: vault.url, token: PLANTED.vaultToken, requestOptions: { timeout: 5000 } });
  await v.write('apisix/jack', { 'auth-key': `${PLANTED.kv1}-rotated` });
  let seen: string | undefined;
  for (let i = 0; i < 150 && seen !== `${PLANTED.kv1}-rotated`; i++) {
    await delay(50);
    seen = (await value(g, '/kv1')).value;
  }
  await v.write('apisix/jack', { 'auth-key': PLANTED.kv1 });
  assert.equal(seen, `${PLANTED.kv1}-rotated`, 'the new value was served after Vault came back, with no restart');
});

test('Vault down before the first fetch: the route fails closed with 503, then recovers when Vault returns', async () => {
  await vault.stop();
  let g: TestGateway;
  try {
    g = await boot();
    const r = await value(g, '/kv1');
    assert.equal(r.status, 503);
    assert.equal(r.value, undefined);
    const line = g.logs.lines.find((l) => l.msg === 'secret unavailable' && l.reference === '$secret://vault/v1/jack/auth-key');
    assert.ok(line, 'one line names the reference');
    assert.equal(line.provider, 'vault');
    assert.match(line.cause, /ECONNREFUSED|ECONNRESET|connect/i);
    assert.equal((await value(g, '/aws')).status, 200, 'routes on other backends keep serving');
  } finally {
    await vault.start();
  }
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i++) {
    await delay(50);
    status = (await value(g!, '/kv1')).status;
  }
  assert.equal(status, 200);
});

test('an AWS rotation (new AWSCURRENT version) is served after a forced refresh, with no restart', async () => {
  const g = await boot();
  assert.equal((await value(g, '/aws')).value, PLANTED.aws);
  await smClient.send(new PutSecretValueCommand({ SecretId: 'gateway/jack', SecretString: JSON.stringify({ 'auth-key': PLANTED.awsRotated }) }));
  await g.gw.builder.resolver.refreshResource('aws/prod');
  let seen: string | undefined;
  for (let i = 0; i < 50 && seen !== PLANTED.awsRotated; i++) {
    await delay(20);
    seen = (await value(g, '/aws')).value;
  }
  assert.equal(seen, PLANTED.awsRotated);
});

test('no planted secret value or credential appears in any log line, error or metric the gateways produced', async () => {
  const texts: string[] = [];
  for (const g of gateways) {
    texts.push(g.logs.text());
    texts.push(await g.gw.metrics.render());
  }
  // errors from unreachable backends, as a caller would see them
  const g = gateways[0];
  const bad = await g.gw.builder.resolver.resolve(parseReference('$secret://vault/v1/nobody/auth-key')).catch((e: Error) => e);
  assert.ok(bad instanceof Error);
  texts.push(String(bad.message), String(bad.stack));
  const all = texts.join('\n');
  assert.ok(all.length > 1000, 'there is something to scan');
  for (const [name, v] of Object.entries(PLANTED)) assert.equal(all.includes(v), false, `${name} leaked`);
});
