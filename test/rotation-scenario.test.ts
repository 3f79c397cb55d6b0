// The scenario Gatehouse exists for, end to end through real HTTP and the real clients: a
// consumer key held in Vault KV v1, KV v2 or AWS Secrets Manager protects a route; rotating it in
// the backend under steady load fails no request that carries the current or the in-grace key.
import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import NodeVault from 'node-vault';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Agent, request } from 'undici';
import { bootGateway, delay, startUpstream, type TestGateway, type Upstream } from './helpers/harness';
import { startVaultServer, type VaultServer } from './servers/vault';
import { startSecretsManagerServer, type SecretsManagerServer } from './servers/secrets-manager';

const TTL = 1; // seconds: how fast a change in the backend is seen
const GRACE = 3; // seconds the previous key keeps working

let vault: VaultServer;
let sm: SecretsManagerServer;
let smClient: SecretsManagerClient;
let upstream: Upstream;
const agent = new Agent({ connections: 32 });

type Backend = {
  name: string;
  secret: () => Record<string, unknown>;
  ref: string;
  write: (key: string) => Promise<void>;
};

let vaultClient: ReturnType<typeof NodeVault>;
const backends: Backend[] = [
  {
    name: 'Vault KV v1',
    secret: () => ({ id: 'vault/gateway', uri: vault.url, prefix: 'apisix', token: '$env://VAULT_TOKEN' }),
    ref: '$secret://vault/gateway/jack/auth-key',
    write: async (key) => void (await vaultClient.write('apisix/jack', { 'auth-key': key })),
  },
  {
    name: 'Vault KV v2',
    secret: () => ({ id: 'vault/gateway', uri: vault.url, prefix: 'kv/apisix', token: '$env://VAULT_TOKEN' }),
    ref: '$secret://vault/gateway/jack/auth-key',
    write: async (key) => void (await vaultClient.write('kv/data/apisix/jack', { data: { 'auth-key': key } })),
  },
  {
    name: 'AWS Secrets Manager',
    secret: () => ({ id: 'aws/gateway', region: 'us-east-1', endpoint_url: sm.url, access_key_id: 'test', secret_access_key: 'test' }),
    ref: '$secret://aws/gateway/jack/auth-key',
    write: async (key) => void (await smClient.send(new PutSecretValueCommand({ SecretId: 'jack', SecretString: JSON.stringify({ 'auth-key': key }) }))),
  },
];

before(async () => {
  vault = await startVaultServer({ rootToken: 'seed-root-token' });
  process.env.VAULT_TOKEN = 'seed-root-token';
  vaultClient = NodeVault({ endpoint: vault.url, token: 'seed-root-token', requestOptions: { timeout: 5000 } });
  await vaultClient.mount({ mount_point: 'apisix', type: 'kv', options: { version: '1' } });
  await vaultClient.mount({ mount_point: 'kv', type: 'kv', options: { version: '2' } });
  sm = await startSecretsManagerServer();
  smClient = new SecretsManagerClient({ region: 'us-east-1', endpoint: sm.url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  await smClient.send(new CreateSecretCommand({ Name: 'jack', SecretString: JSON.stringify({ 'auth-key': 'secret-key' }) }));
  upstream = await startUpstream((req, res) => {
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ origin: '127.0.0.1', consumer: req.headers['x-consumer-username'] ?? null }));
  });
});

after(async () => {
  await agent.close();
  smClient?.destroy();
  await vault?.close();
  await sm?.close();
  await upstream?.close();
});

async function get(g: TestGateway, key?: string): Promise<{ status: number; body: string }> {
  const r = await request(`${g.url}/ip`, { headers: key === undefined ? {} : { apikey: key }, dispatcher: agent });
  return { status: r.statusCode, body: await r.body.text() };
}

for (const b of backends) {
  describe(`key rotation under load with ${b.name}`, () => {
    let g: TestGateway;
    before(async () => {
      await b.write('secret-key');
      g = await bootGateway({
        secret_cache: { ttl: TTL, rotation_grace: GRACE },
        secrets: [b.secret()],
        consumers: [{ username: 'jack', plugins: { 'key-auth': { key: b.ref } } }],
        routes: [{ id: 'getting-started-ip', uri: '/ip', plugins: { 'key-auth': {} }, upstream: { type: 'roundrobin', nodes: { [upstream.node]: 1 } } }],
      });
    });
    after(() => g?.close());

    test('without a key: 401 Missing API key', async () => {
      assert.deepEqual(await get(g), { status: 401, body: '{"message":"Missing API key found in request"}' });
    });

    test('with apikey: secret-key: 200 and the upstream body, as consumer jack', async () => {
      assert.deepEqual(await get(g, 'secret-key'), { status: 200, body: '{"origin":"127.0.0.1","consumer":"jack"}' });
      assert.equal((await get(g, 'wrong-key')).status, 401);
    });

    test('rotated in the backend under steady load: zero rejected requests with the current or in-grace key; the old key stops after the grace', async (t) => {
      let current = 'secret-key';
      let sent = 0;
      const rejected: string[] = [];
      let stop = false;
      const clients = Array.from({ length: 8 }, async () => {
        while (!stop) {
          const key = current;
          const r = await get(g, key);
          sent++;
          if (r.status !== 200) rejected.push(`${r.status} with ${key === 'secret-key' ? 'old' : 'new'} key`);
        }
      });
      await delay(300);
      const rotatedAt = Date.now();
      await b.write('rotated-key');
      // the gateway sees the change within ttl (refreshed ahead of expiry); after that clients use
      // the new key while the old one is still in its grace
      await delay(TTL * 1000 + 700);
      current = 'rotated-key';
      await delay(800);
      stop = true;
      await Promise.all(clients);
      assert.ok(sent > 100, `steady load: ${sent} requests`);
      assert.deepEqual(rejected, [], `${rejected.length} of ${sent} requests rejected`);
      t.diagnostic(`${sent} requests during the rotation, ${rejected.length} rejected`);
      assert.equal((await get(g, 'rotated-key')).status, 200);
      // the old key is refused once the grace that started when the gateway saw the change ends
      const graceEnd = rotatedAt + (TTL + GRACE) * 1000 + 600;
      await delay(Math.max(0, graceEnd - Date.now()));
      assert.equal((await get(g, 'secret-key')).status, 401, 'the previous key stops working after the grace');
      assert.equal((await get(g, 'rotated-key')).status, 200);
      await b.write('secret-key'); // leave the backend as the next scenario expects
    });
  });
}
