// A secret's value is data, never code, and a value a plugin cannot use fails closed only for what
// depends on it, end to end through the real node-vault client and the protocol-faithful Vault:
// - a proxy-rewrite header whose Vault value reads like a template (`Bearer abc$host`, `$Zq9x…`)
//   reaches the upstream byte for byte;
// - a referenced regex that rotates to an invalid one makes that route answer 503 (one log line
//   naming the reference, never the value), and never blocks the rebuilds that follow: a key-auth key
//   rotated in Vault works at once and the old one is refused once rotation_grace ends; an unrelated
//   Admin write answers 201;
// - a jwt-auth secret (base64_secret) that rotates to a non-base64 value fails closed for that
//   consumer only; later rotations still apply;
// - an Admin write whose literal key equals another consumer's Vault-held key is answered as a wrong
//   guess is, and neither consumer authenticates with that key afterwards (logged without it).
// Every value planted here is scanned for in every log line and Admin API answer (leak scan).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import NodeVault from 'node-vault';
import { request } from 'undici';
import { plantSecret } from '../core/testing';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootGateway, delay, eventually, runCli, startUpstream, tempDir, type TestGateway, type Upstream } from './helpers/harness';
import { startVaultServer, type VaultServer } from './servers/vault';

const MARK = randomBytes(5).toString('hex');
const VAULT_TOKEN = `hvs.planted-${MARK}-token`;
const ADMIN_KEY = `planted-${MARK}-admin-key`;
const KEY_V1 = `planted-${MARK}-jack-key-1`;
const KEY_V2 = `planted-${MARK}-jack-key-2`;
const KEY_V3 = `planted-${MARK}-jack-key-3`;
/** Text that would be a variable if the value were read as a template (and is a canary). */
const CANARY = `Zq9x${MARK}canary`;
const HEADER_V1 = `Bearer abc$host ${KEY_V1.slice(-4)}`;
const HEADER_V2 = `Bearer $${CANARY} \\$uri $1`;
const REGEX_OK = '^/rx/(.*)';
const REGEX_BAD = `^/rx/(${CANARY}`;
const CAT_SECRET_V1 = Buffer.from(`planted-${MARK}-cat-secret-1`).toString('base64');
const CAT_SECRET_BAD = `planted-${MARK}-cat*not-base64`;
const CAT_SECRET_V3 = Buffer.from(`planted-${MARK}-cat-secret-3`).toString('base64');
const TTL = 1;
const GRACE = 2;

let vault: VaultServer;
let vaultClient: ReturnType<typeof NodeVault>;
let up: Upstream;
let g: TestGateway;
let admin: string;
const seen: Array<Record<string, string | string[] | undefined>> = [];

const write = (path: string, data: Record<string, string>) => vaultClient.write(`apisix/${path}`, data);

before(async () => {
  plantSecret('secret-values-data', KEY_V1, KEY_V2, KEY_V3, CANARY, HEADER_V2, REGEX_BAD, CAT_SECRET_V1, CAT_SECRET_BAD, CAT_SECRET_V3);
  vault = await startVaultServer({ rootToken: VAULT_TOKEN });
  vaultClient = NodeVault({ endpoint: vault.url, token: VAULT_TOKEN, requestOptions: { timeout: 5000 } });
  await vaultClient.mount({ mount_point: 'apisix', type: 'kv', options: { version: '1' } });
  await write('jack', { 'auth-key': KEY_V1 });
  await write('hdr', { token: HEADER_V1 });
  await write('rx', { re: REGEX_OK });
  await write('cat', { secret: CAT_SECRET_V1 });
  up = await startUpstream((req, res) => {
    seen.push(req.headers);
    req.resume();
    res.end(JSON.stringify({ url: req.url, consumer: req.headers['x-consumer-username'] ?? null }));
  });
  process.env.GH_SVD_VAULT_TOKEN = VAULT_TOKEN;
  process.env.GH_SVD_ADMIN_KEY = ADMIN_KEY;
  const upstream = { nodes: { [up.node]: 1 } };
  g = await bootGateway(
    {
      admin: { key: '$env://GH_SVD_ADMIN_KEY' },
      secret_cache: { ttl: TTL, rotation_grace: GRACE },
      secrets: [{ id: 'vault/gw', uri: vault.url, prefix: 'apisix', token: '$env://GH_SVD_VAULT_TOKEN', kv_version: 1 }],
      consumers: [
        { username: 'jack', plugins: { 'key-auth': { key: '$secret://vault/gw/jack/auth-key' } } },
        { username: 'cat', plugins: { 'jwt-auth': { key: 'cat-key', secret: '$secret://vault/gw/cat/secret', base64_secret: true } } },
        { username: 'dan', plugins: { 'jwt-auth': { key: 'dan-key', secret: 'dan-secret' } } },
      ],
      routes: [
        { id: 'ip', uri: '/ip', plugins: { 'key-auth': {}, 'proxy-rewrite': { headers: { set: { 'X-Upstream-Token': '$secret://vault/gw/hdr/token' } } } }, upstream },
        { id: 'rx', uri: '/rx/*', plugins: { 'proxy-rewrite': { regex_uri: ['$secret://vault/gw/rx/re', '/rewritten/$1'] } }, upstream },
        { id: 'jwt', uri: '/jwt', plugins: { 'jwt-auth': {} }, upstream },
      ],
    },
    { adminListen: '127.0.0.1:0' },
  );
  admin = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
});

after(async () => {
  await g?.close();
  await vault?.close();
  await up?.close();
});

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const r = await request(`${g.url}${path}`, { headers });
  return { status: r.statusCode, body: await r.body.text() };
}

async function adminCall(method: 'PUT' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await request(`${admin}${path}`, { method, headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.body.text();
  return { status: r.statusCode, json: text ? JSON.parse(text) : undefined };
}

const b64url = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
function hs256(key: string, secret: Buffer | string): string {
  const signed = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ key })}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}

test('a Vault value in a proxy-rewrite header is sent byte for byte: $host is not a variable', async () => {
  assert.equal((await get('/ip', { apikey: KEY_V1, host: 'client.example' })).status, 200);
  assert.equal(seen.at(-1)!['x-upstream-token'], HEADER_V1);
  assert.equal((await get('/rx/a')).body, '{"url":"/rewritten/a","consumer":null}');
});

test('values a plugin rejects fail closed for what depends on them; rotations and revocations go on; the value is never said', async () => {
  // the header becomes text with an unknown "variable", the regex an invalid one, cat's secret not base64
  await write('hdr', { token: HEADER_V2 });
  await write('rx', { re: REGEX_BAD });
  await write('cat', { secret: CAT_SECRET_BAD });
  await eventually('the /rx route fails closed', async () => (await get('/rx/a')).status === 503, 5000);
  assert.equal((await get('/rx/a')).body, '{"message":"secret unavailable"}');
  assert.equal((await get('/ip', { apikey: KEY_V1 })).status, 200);
  assert.equal(seen.at(-1)!['x-upstream-token'], HEADER_V2, 'the header is the value, byte for byte');
  await eventually('cat fails closed', async () => (await get('/jwt', { authorization: hs256('cat-key', Buffer.from(CAT_SECRET_V1, 'base64')) })).status === 401, 5000);
  assert.equal((await get('/jwt', { authorization: hs256('dan-key', 'dan-secret') })).status, 200, 'another jwt-auth consumer still verifies');

  // jack's key rotates: the new one works at once, the old one stops when the grace ends
  const rotatedAt = Date.now();
  await write('jack', { 'auth-key': KEY_V2 });
  await eventually('the new key works', async () => (await get('/ip', { apikey: KEY_V2 })).status === 200, 5000);
  await delay(Math.max(0, rotatedAt + (TTL + GRACE) * 1000 + 800 - Date.now()));
  await eventually('the old key is refused after the grace', async () => (await get('/ip', { apikey: KEY_V1 })).status === 401, 3000);
  assert.equal((await get('/ip', { apikey: KEY_V2 })).status, 200);

  // an unrelated Admin write goes through
  const put = await adminCall('PUT', '/apisix/admin/routes/unrelated', { uri: '/unrelated', plugins: { mocking: { response_example: 'ok' } } });
  assert.equal(put.status, 201);
  assert.equal((await get('/unrelated')).body, 'ok');

  // cat's secret recovers: later rotations still apply to it
  await write('cat', { secret: CAT_SECRET_V3 });
  await eventually('cat verifies with the new secret', async () => (await get('/jwt', { authorization: hs256('cat-key', Buffer.from(CAT_SECRET_V3, 'base64')) })).status === 200, 5000);
  await write('rx', { re: REGEX_OK });
  await eventually('the /rx route is back', async () => (await get('/rx/b')).status === 200, 5000);

  // one line per failure, naming the route or consumer, the plugin and the reference
  const lines = g.logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('fails closed'));
  assert.deepEqual(lines.map((l) => JSON.stringify([l.route ?? l.consumer, l.plugin, l.references])).sort(), [
    JSON.stringify(['cat', 'jwt-auth', ['$secret://vault/gw/cat/secret']]),
    JSON.stringify(['rx', 'proxy-rewrite', ['$secret://vault/gw/rx/re']]),
  ]);
  assert.equal(g.logs.text().includes(CANARY), false);
  assert.equal(g.logs.text().includes(MARK), false);
  assert.equal(g.logs.lines.some((l) => /config reload rejected/.test(String(l.msg))), false, 'no rebuild was refused');
});

test("an Admin write with another consumer's Vault-held key is answered as a wrong guess, and neither consumer authenticates with it", async () => {
  await write('jack', { 'auth-key': KEY_V3 });
  await eventually('jack uses the third key', async () => (await get('/ip', { apikey: KEY_V3 })).status === 200, 5000);
  const shape = (r: { status: number; json: any }) => ({ status: r.status, keys: Object.keys(r.json).sort(), value: { ...r.json.value, id: 'x', username: 'x', create_time: 0, update_time: 0 } });
  const wrong = await adminCall('PUT', '/apisix/admin/consumers/guess1', { plugins: { 'key-auth': { key: `planted-${MARK}-wrong-guess` } } });
  const right = await adminCall('PUT', '/apisix/admin/consumers/guess2', { plugins: { 'key-auth': { key: KEY_V3 } } });
  assert.deepEqual(shape(right), shape(wrong));
  assert.equal(right.status, 201);
  assert.equal((await get('/ip', { apikey: KEY_V3 })).status, 401, 'a key two consumers share identifies neither');
  const lines = g.logs.lines.filter((l) => l.plugin === 'key-auth' && l.msg === 'fails closed: the consumer cannot authenticate with this plugin');
  assert.deepEqual(
    lines.map((l) => [l.consumer, l.references]),
    [
      ['jack', ['$secret://vault/gw/jack/auth-key']],
      ['guess2', []],
    ],
  );
  assert.match(lines[0].cause, /consumer "guess2"/);
  // once the other consumer is gone, the key is jack's again
  assert.equal((await adminCall('DELETE', '/apisix/admin/consumers/guess2')).status, 200);
  assert.equal((await get('/ip', { apikey: KEY_V3 })).status, 200);
  assert.equal(g.logs.text().includes(MARK), false);
});

test('gatehouse validate: a referenced value that reads like a template, or that a plugin rejects, is no config error and is never printed', async () => {
  process.env.GH_SVD_CLI_HEADER = HEADER_V2;
  process.env.GH_SVD_CLI_RE = REGEX_BAD;
  const f = join(tempDir(), 'gatehouse.yaml');
  const upstream = '{ nodes: { "127.0.0.1:1": 1 } }';
  writeFileSync(
    f,
    [
      'routes:',
      `  - { id: h, uri: /h, plugins: { proxy-rewrite: { headers: { set: { X-Token: $env://GH_SVD_CLI_HEADER } } } }, upstream: ${upstream} }`,
      `  - { id: r, uri: /r/*, plugins: { proxy-rewrite: { regex_uri: [$env://GH_SVD_CLI_RE, /x/$1] } }, upstream: ${upstream} }`,
      '',
    ].join('\n'),
  );
  const r = await runCli(['validate', '-c', f]);
  assert.equal(r.stdout.includes(CANARY) || r.stderr.includes(CANARY), false);
  assert.equal(r.code, 0, r.stderr.includes(MARK) ? 'refused (output withheld: it quotes a planted value)' : r.stderr);
  assert.match(r.stdout, /ok \(2 routes\)/);
});
