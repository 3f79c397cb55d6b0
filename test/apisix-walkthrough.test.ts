// Apache APISIX's secret walkthrough ("Use HashiCorp Vault to manage secrets"), command for
// command, against `gatehouse start` run as a real process whose config has only an `admin:`
// section: jack's key is written to Vault KV v1 as `vault kv put apisix/jack auth-key=...` does,
// then the secret resource, the consumer and the route are created with the walkthrough's curl
// calls (PUT, `-d` body, `X-API-KEY`) on the /apisix/admin/ alias. The route must then refuse a
// request without a key and proxy one with `apikey: secret-key`; and no Admin API answer may carry
// the Vault token or the key. Run twice: the Vault token as a literal, then as `$ENV://VAULT_TOKEN`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { freePort, startGatehouse, tempDir, upstreamFor, waitForPort, type GatehouseProcess } from './helpers/harness';
import { startVaultServer } from './servers/vault';

const KEY = 'secret-key';
const REF = '$secret://vault/gateway/jack/auth-key';

/** What `curl <url> -H "X-API-KEY: $admin_key" -X PUT -d '<data>'` sends, and the answer. */
async function curlPut(url: string, adminKey: string, data: string): Promise<{ status: number; text: string; json: any }> {
  const r = await request(url, {
    method: 'PUT',
    // curl's own headers, then -H; -d makes the body form-encoded as far as curl knows
    headers: { 'user-agent': 'curl/8.5.0', accept: '*/*', 'X-API-KEY': adminKey, 'content-type': 'application/x-www-form-urlencoded' },
    body: data,
  });
  const text = await r.body.text();
  return { status: r.statusCode, text, json: JSON.parse(text) };
}

/** `curl <url> -H "X-API-KEY: $admin_key"`. */
async function curlGet(url: string, adminKey: string): Promise<{ status: number; text: string; json: any }> {
  const r = await request(url, { headers: { 'user-agent': 'curl/8.5.0', accept: '*/*', 'X-API-KEY': adminKey } });
  const text = await r.body.text();
  return { status: r.statusCode, text, json: JSON.parse(text) };
}

/** One HTTP call to Vault as the `vault` CLI makes it (token in X-Vault-Token). */
async function vaultCall(base: string, token: string, method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const r = await request(`${base}/v1/${path}`, { method, headers: { 'X-Vault-Token': token, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.statusCode, text: await r.body.text() };
}

async function walkthrough(t: { after(fn: () => unknown): void; diagnostic(msg: string): void }, tokenMode: 'literal' | 'env'): Promise<void> {
  const rootToken = `hvs.walkthrough-${randomBytes(12).toString('hex')}`;
  const adminKey = randomBytes(16).toString('hex');
  const vault = await startVaultServer({ rootToken });
  t.after(() => vault.close());
  const upstream = await upstreamFor(t, undefined, 'walkthrough-upstream');

  // Step 1 of the walkthrough, with a KV v1 engine at apisix/ (what APISIX supports):
  //   vault secrets enable -path=apisix -version=1 kv
  //   vault kv put apisix/jack auth-key=secret-key
  const mounted = await vaultCall(vault.url, rootToken, 'POST', 'sys/mounts/apisix', { type: 'kv', options: { version: '1' } });
  assert.equal(mounted.status, 204, mounted.text);
  // `vault kv put` first asks which KV version the path is on, then writes with PUT
  const preflight = await vaultCall(vault.url, rootToken, 'GET', 'sys/internal/ui/mounts/apisix/jack');
  assert.equal(preflight.status, 200, preflight.text);
  assert.equal(JSON.parse(preflight.text).data.options.version, '1');
  const put = await vaultCall(vault.url, rootToken, 'PUT', 'apisix/jack', { 'auth-key': KEY });
  assert.equal(put.status, 204, put.text);

  // A gateway with an admin section and no data sections, in a fresh directory (the data file
  // for Admin API writes goes beside the config)
  const dir = tempDir('gatehouse-apisix-walkthrough-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(dir, 'gatehouse.yaml');
  writeFileSync(config, `gateway:\n  listen: "127.0.0.1:${port}"\nadmin:\n  listen: "127.0.0.1:${adminPort}"\n  key: "${adminKey}"\n`);
  const env: NodeJS.ProcessEnv = tokenMode === 'env' ? { VAULT_TOKEN: rootToken } : {};
  const gh: GatehouseProcess = await startGatehouse(config, port, env);
  t.after(async () => {
    gh.child.kill('SIGTERM');
    const done = await Promise.race([gh.exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5000).unref())]);
    if (!done) await gh.kill();
  });
  await waitForPort(adminPort, 10000);
  const admin = `http://127.0.0.1:${adminPort}/apisix/admin`;
  const answers: string[] = [];

  // Step 2: the secret resource
  const tokenField = tokenMode === 'env' ? '$ENV://VAULT_TOKEN' : rootToken;
  const secret = await curlPut(
    `${admin}/secrets/vault/gateway`,
    adminKey,
    `
{
    "uri": "${vault.url}",
    "prefix": "apisix",
    "token": "${tokenField}"
}`,
  );
  answers.push(secret.text);
  assert.equal(secret.status, 201, secret.text);
  assert.equal(secret.json.key, '/apisix/secrets/vault/gateway');
  assert.equal(secret.json.value.uri, vault.url);
  assert.equal(secret.json.value.prefix, 'apisix');
  assert.equal(secret.json.value.token, tokenMode === 'env' ? '$ENV://VAULT_TOKEN' : '******');

  // Step 3: the consumer, its key a reference into Vault
  const consumer = await curlPut(
    `${admin}/consumers`,
    adminKey,
    `
{
    "username": "jack",
    "plugins": {
        "key-auth": {
            "key": "${REF}"
        }
    }
}`,
  );
  answers.push(consumer.text);
  assert.equal(consumer.status, 201, consumer.text);
  assert.equal(consumer.json.key, '/apisix/consumers/jack');
  assert.equal(consumer.json.value.plugins['key-auth'].key, REF);

  // The route of APISIX's getting-started, protected by key-auth
  const route = await curlPut(
    `${admin}/routes/getting-started-ip`,
    adminKey,
    `
{
    "uri": "/ip",
    "plugins": {
        "key-auth": {}
    },
    "upstream": {
        "type": "roundrobin",
        "nodes": {
            "${upstream.node}": 1
        }
    }
}`,
  );
  answers.push(route.text);
  assert.equal(route.status, 201, route.text);
  assert.equal(route.json.key, '/apisix/routes/getting-started-ip');

  // Reading everything back shows references as written and plaintext secrets as ******
  for (const path of ['/secrets', '/secrets/vault/gateway', '/consumers', '/consumers/jack', '/routes', '/routes/getting-started-ip']) {
    const r = await curlGet(`${admin}${path}`, adminKey);
    assert.equal(r.status, 200, `GET ${path}: ${r.text}`);
    answers.push(r.text);
  }
  const readSecret = await curlGet(`${admin}/secrets/vault/gateway`, adminKey);
  assert.equal(readSecret.json.value.token, tokenMode === 'env' ? '$ENV://VAULT_TOKEN' : '******');
  assert.equal((await curlGet(`${admin}/consumers/jack`, adminKey)).json.value.plugins['key-auth'].key, REF);

  for (const [i, text] of answers.entries()) {
    assert.equal(text.includes(rootToken), false, `Admin API answer ${i} carries the Vault token: ${text}`);
    assert.equal(text.includes(KEY), false, `Admin API answer ${i} carries jack's key: ${text}`);
  }

  // The writes were persisted as written: the key is nowhere in the data file, nor the token when
  // it is a reference
  // the data file and the journal of writes beside it
  const journal = join(dir, 'gatehouse.data.json.journal');
  const data = readFileSync(join(dir, 'gatehouse.data.json'), 'utf8') + (existsSync(journal) ? readFileSync(journal, 'utf8') : '');
  assert.equal(data.includes(KEY), false, 'the data file holds no key');
  assert.ok(data.includes(REF));
  if (tokenMode === 'env') assert.equal(data.includes(rootToken), false, 'the data file holds no Vault token');

  // Verify: no key → 401; a wrong key → 401; jack's key from Vault → 200 from the upstream
  const gw = `http://127.0.0.1:${port}`;
  const none = await request(`${gw}/ip`);
  assert.equal(none.statusCode, 401);
  assert.equal(await none.body.text(), '{"message":"Missing API key found in request"}');
  const wrong = await request(`${gw}/ip`, { headers: { apikey: 'not-the-key' } });
  assert.equal(wrong.statusCode, 401);
  assert.equal(await wrong.body.text(), '{"message":"Invalid API key in request"}');
  assert.equal(upstream.seen.length, 0, 'refused requests never reach the upstream');

  const good = await request(`${gw}/ip`, { headers: { apikey: KEY } });
  const body = await good.body.text();
  assert.equal(good.statusCode, 200, body);
  const echoed = JSON.parse(body);
  assert.equal(echoed.name, 'walkthrough-upstream', 'the upstream answered');
  assert.equal(echoed.url, '/ip');
  assert.equal(echoed.headers['x-consumer-username'], 'jack');
  assert.equal(upstream.seen.length, 1);
  assert.ok(vault.count('apisix/jack', 'GET') >= 1, 'the key was read from Vault');
  t.diagnostic(`gateway pid ${gh.child.pid}; Vault reads of apisix/jack: ${vault.count('apisix/jack', 'GET')}`);
}

test('APISIX Vault walkthrough over the Admin API, Vault token as a literal (answered as ******)', { timeout: 60000 }, async (t) => {
  await walkthrough(t, 'literal');
});

test('the same with "token": "$ENV://VAULT_TOKEN", VAULT_TOKEN in the gateway\'s environment (answered as written)', { timeout: 60000 }, async (t) => {
  await walkthrough(t, 'env');
});
